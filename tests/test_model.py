"""The MLP, its input layout, and the self-describing model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from svg_quality.config import ModelConfig, parse_params
from svg_quality.model import (
    Dropout,
    InputSpec,
    build_model,
    count_parameters,
    load_model,
    model_meta,
    save_model,
)
from svg_quality.paramspace import PARAM_NAMES, normalize


def spec_for(inputs: str, params: dict) -> InputSpec:
    ranges = parse_params(params).vtracer.ranges
    return InputSpec(
        inputs=inputs,
        resnet_dim=2048,
        stat_names=("a", "b", "c"),
        stats_mean=(1.0, 2.0, 3.0),
        stats_std=(2.0, 4.0, 0.5),
        ranges=ranges,
    )


def test_resnet_only_architecture_has_2766337_parameters(repo_params: dict) -> None:
    # the ResNet-only layout (model.inputs=resnet) with params.yaml's widths, dropout and
    # embedding (auto: none for this layout, so the MLP is the original plain one)
    # (and the raw features: resnet_pca 0)
    resnet_only = {"inputs": "resnet", "resnet_pca": 0}
    cfg = ModelConfig(**{**parse_params(repo_params).model.__dict__, **resnet_only})
    assert cfg.embedding == "auto"
    spec = spec_for("resnet", repo_params)
    model = build_model(cfg, spec.width, spec.resnet_width)
    assert spec.width == 2056
    assert count_parameters(model) == 2_766_337 and model.embed is None
    kinds = [type(m).__name__ for m in model.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 3 + ["Linear", "Sigmoid"]
    assert [m.p for m in model.net if isinstance(m, torch.nn.Dropout)] == [0.3, 0.2, 0.1]
    assert [m.out_features for m in model.net if isinstance(m, torch.nn.Linear)] == [
        1024,
        512,
        256,
        1,
    ]


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_cpu_dropout_drops_at_rate_p_and_keeps_the_expectation(p: float) -> None:
    torch.manual_seed(0)
    layer = Dropout(p)
    x = torch.ones(1000, 1001, requires_grad=True)  # an odd count: the last int64 draw is cut
    y = layer(x)
    dropped = float((y == 0).float().mean())
    assert abs(dropped - p) < 0.003  # 1M Bernoulli(p) draws: std < 5e-4
    assert torch.allclose(y[y != 0], torch.tensor(1.0 / (1.0 - p)))
    assert abs(float(y.mean()) - 1.0) < 0.01  # inverted dropout keeps E[y] = x
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # gradient = mask * scale
    # masks differ call to call, repeat under the same seed, and eval mode is the identity
    assert not torch.equal(layer(x), y)
    torch.manual_seed(0)
    assert torch.equal(Dropout(p)(x), y)
    layer.eval()
    assert layer(x) is x or torch.equal(layer(x), x)


def test_widths_dropout_and_input_dropout_come_from_params() -> None:
    cfg = ModelConfig(inputs="stats", hidden=(64, 32), dropout=(0.5, 0.25), input_dropout=0.2)
    model = build_model(cfg, 19)
    assert isinstance(model.net[0], torch.nn.Dropout) and model.net[0].p == 0.2
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(19, 64), (64, 32), (32, 1)]
    with pytest.raises(ValueError, match="model.dropout"):
        ModelConfig(hidden=(64, 32), dropout=(0.1,))


@pytest.mark.parametrize(
    ("inputs", "names", "width"),
    [
        ("resnet", ["resnet", "params"], 2056),
        ("resnet+stats", ["resnet", "stats", "params"], 2059),
        ("stats", ["stats", "params"], 11),
    ],
)
def test_layout_order_and_width(repo_params: dict, inputs: str, names: list, width: int) -> None:
    spec = spec_for(inputs, repo_params)
    layout = spec.layout()
    assert [s["name"] for s in layout] == names
    assert spec.width == width
    assert layout[-1]["columns"] == list(PARAM_NAMES)
    starts = [s["start"] for s in layout]
    assert starts == [0] + list(np.cumsum([s["width"] for s in layout])[:-1])


def test_assemble_places_standardized_stats_and_normalized_params(repo_params: dict) -> None:
    spec = spec_for("resnet+stats", repo_params)
    rng = np.random.default_rng(0)
    resnet = rng.normal(size=(5, 2048)).astype(np.float32)
    stats = rng.normal(size=(5, 3)).astype(np.float32)
    raw = np.array([[np.mean(spec.ranges[n]) for n in PARAM_NAMES]] * 5)
    x = spec.assemble(resnet, stats, raw)
    assert x.shape == (5, 2059) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, :2048], resnet)
    np.testing.assert_allclose(x[:, 2048:2051], (stats - [1, 2, 3]) / [2, 4, 0.5], rtol=1e-6)
    np.testing.assert_allclose(x[:, 2051:], normalize(raw, spec.ranges))
    np.testing.assert_allclose(x[:, 2051:], 0.5, atol=1e-6)
    with pytest.raises(ValueError, match=r"stats block must be \[5, 3\]"):
        spec.assemble(resnet, stats[:, :2], raw)


def test_stats_inputs_without_statistics_fail_clearly(repo_params: dict) -> None:
    ranges = parse_params(repo_params).vtracer.ranges
    with pytest.raises(ValueError, match="needs logo statistics"):
        InputSpec("stats", 2048, (), (), (), ranges)


def test_model_file_round_trip_weights_only(repo_params: dict, tmp_path: Path) -> None:
    spec = spec_for("stats", repo_params)
    cfg = ModelConfig(inputs="stats", hidden=(16, 8), dropout=(0.2, 0.1))
    torch.manual_seed(0)
    model = build_model(cfg, spec.width)
    model.train()
    model(torch.randn(64, spec.width))  # move BatchNorm running stats off their init
    meta = model_meta(cfg, spec, {"features": {"weights": "random"}, "best_epoch": 3})
    save_model(tmp_path / "model.pt", model, meta)

    blob = torch.load(tmp_path / "model.pt", weights_only=True)  # plain types only
    assert set(blob) == {"state_dict", "meta"}
    loaded, meta2 = load_model(tmp_path / "model.pt")
    assert not loaded.training
    assert meta2["input"]["layout"] == spec.layout() and meta2["best_epoch"] == 3
    assert InputSpec.from_meta(meta2["input"]) == spec
    x = torch.randn(10, spec.width)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_load_model_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dvc repro train"):
        load_model(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an svg-quality model file"):
        load_model(tmp_path / "other.pt")


# --------------------------------------------------------------------------- the ResNet block


def resnet_rows(n_images: int, per_image: np.ndarray, seed: int, shift: float = 0.0):
    """Arrays-like rows [resnet (64) | 8 params]: image i's features repeated per_image[i]
    times, so a per-row fit would weigh the images unequally."""
    from svg_quality.dataset import Arrays

    rng = np.random.default_rng(seed)
    feats = (rng.normal(size=(n_images, 64)) * rng.uniform(0.2, 3, 64) + shift).astype(np.float32)
    idx = np.repeat(np.arange(n_images), per_image)
    x = np.concatenate([feats[idx], rng.random((len(idx), 8), dtype=np.float32)], axis=1)
    y = rng.random(len(idx), dtype=np.float32)
    ids = np.array([f"img{seed}_{i}" for i in idx])
    return feats, Arrays(x=x, y=y, image_id=ids, logo_type=np.full(len(idx), "text"))


def test_resnet_projection_is_fitted_on_the_train_images_only() -> None:
    from svg_quality.config import TrainConfig
    from svg_quality.model import fit_pca
    from svg_quality.trainer import fit

    counts = np.arange(1, 31)  # image i has i rows
    train_feats, train = resnet_rows(30, counts, seed=0)
    _, val = resnet_rows(10, np.full(10, 3), seed=1, shift=5.0)  # far from train
    cfg = ModelConfig(inputs="resnet", hidden=(8,), dropout=(0.0,), resnet_pca=6)
    tcfg = TrainConfig(epochs=1, batch_size=64, warmup_epochs=0, device="cpu", amp="off")
    res = fit(train, val, cfg, tcfg, progress=False, resnet_width=64)
    block = res.model.resnet
    mean, proj = fit_pca(train_feats, 6)  # once per image, not per row
    np.testing.assert_allclose(block.mean.numpy(), mean, atol=1e-5)
    np.testing.assert_allclose(block.proj.numpy(), proj, atol=1e-5)
    per_row = train.x[:, :64].mean(axis=0)
    assert np.abs(block.mean.numpy() - per_row).max() > 0.05  # the row mean is another fit
    z = (train_feats - mean) @ proj  # whitened: unit variance, uncorrelated on train
    np.testing.assert_allclose(np.cov(z.T, bias=True), np.eye(6), atol=1e-4)
    assert res.model.net[0].in_features == 6 + 8  # the first Linear sees pca + params


def test_plain_mlp_folds_the_block_into_the_first_linear(tmp_path: Path, repo_params) -> None:
    from svg_quality.model import QualityMLP, plain_mlp

    feats, rows = resnet_rows(40, np.full(40, 2), seed=2)
    torch.manual_seed(0)
    mlp = QualityMLP(
        72, (16, 8), (0.2, 0.1), 0.1, resnet_width=64, resnet_pca=5, resnet_dropout=0.5
    )
    mlp.resnet.fit(feats)
    mlp.train()
    with torch.no_grad():
        mlp(torch.from_numpy(rows.x))  # BatchNorm statistics off their init
    mlp.eval()
    plain = plain_mlp(mlp)
    assert plain.resnet is None and plain.net[1].in_features == 72  # raw rows, no block
    assert count_parameters(plain) == count_parameters(QualityMLP(72, (16, 8), (0.2, 0.1)))
    x = torch.from_numpy(rows.x)
    with torch.no_grad():
        assert (plain(x) - mlp(x)).abs().max() <= 1e-5
    assert mlp.resnet is not None  # the trained module is left as it was

    # The model file rebuilds the block from the meta and its buffers from the state dict.
    spec = InputSpec("resnet", 64, (), (), (), parse_params(repo_params).vtracer.ranges)
    cfg = ModelConfig(
        inputs="resnet",
        hidden=(16, 8),
        dropout=(0.2, 0.1),
        input_dropout=0.1,
        resnet_pca=5,
        resnet_dropout=0.5,
    )
    save_model(tmp_path / "m.pt", mlp, model_meta(cfg, spec))
    loaded, meta = load_model(tmp_path / "m.pt")
    assert meta["model"]["resnet_pca"] == 5
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), mlp(x), rtol=0, atol=0)


def test_resnet_pca_larger_than_the_train_images_fails_naming_the_key() -> None:
    from svg_quality.model import fit_pca

    with pytest.raises(ValueError, match=r"model.resnet_pca = 12 needs more than 12 train"):
        fit_pca(np.random.default_rng(0).normal(size=(10, 64)), 12)


def test_describe_resnet_says_whether_and_why() -> None:
    from svg_quality.inputgroups import describe_resnet

    assert (
        describe_resnet("auto", "stats+vtracer", "random") == "left out (auto: random-init trunk)"
    )
    assert describe_resnet("stats", "stats", "imagenet") == "left out (model.inputs = stats)"
    used = describe_resnet("auto", "resnet+stats+vtracer", "imagenet", 32, 0.3)
    assert used == (
        "used via a PCA projection to 32 components fitted on the train images, block dropout 0.3 "
        "(auto: imagenet trunk)"
    )
    assert describe_resnet("resnet", "resnet", "random") == "used raw (2048) (random trunk)"


def test_periodic_embedding_round_trips_and_its_column_subsets_agree(
    tmp_path: Path, repo_params: dict
) -> None:
    """model.embedding: periodic embeds each non-ResNet column into embedding_dim values;
    the model file rebuilds it, a column subset embeds exactly those columns, and
    plain_mlp (the export's fold of the ResNet projection) is the same function."""
    from svg_quality.model import load_model, model_meta, plain_mlp, save_model

    cfg = ModelConfig(
        inputs="stats",
        hidden=(16, 8),
        dropout=(0.1, 0.0),
        embedding="periodic",
        embedding_frequencies=3,
        embedding_dim=4,
    )
    spec = spec_for("stats", repo_params)
    model = build_model(cfg, spec.width).eval()
    emb = model.embed
    assert emb is not None and emb.out_width() == spec.width * 4
    first = next(m for m in model.net if isinstance(m, torch.nn.Linear))
    assert first.in_features == spec.width * 4
    x = torch.randn(5, spec.width)
    cols = [1, 4, spec.width - 1]
    sub = emb.columns(cols).embed(x[:, cols])  # [5, 3 * 4]
    full = emb.embed(x)
    want = torch.cat([full[:, c * 4 : (c + 1) * 4] for c in cols], dim=1)
    torch.testing.assert_close(sub, want)
    assert emb.positions(4) == [16, 17, 18, 19]

    auto = build_model(ModelConfig(**{**cfg.__dict__, "embedding": "auto"}), spec.width)
    assert auto.embed is not None  # auto: periodic for any layout but the ResNet-only one
    save_model(tmp_path / "m.pt", model, model_meta(cfg, spec))
    back, meta = load_model(tmp_path / "m.pt")
    assert meta["model"]["embedding"] == "periodic" and meta["model"]["embedding_dim"] == 4
    torch.testing.assert_close(back(x), model(x))

    # with a projected ResNet block, the embedding skips it and the fold keeps the function
    rcfg = ModelConfig(**{**cfg.__dict__, "inputs": "resnet", "resnet_pca": 3})
    rspec = spec_for("resnet", repo_params)
    rmodel = build_model(rcfg, rspec.width, rspec.resnet_width)
    rmodel.resnet.fit(np.random.default_rng(0).normal(size=(20, rspec.resnet_width)))
    rmodel.eval()
    assert rmodel.embed.skip == 3 and rmodel.embed.n_columns == rspec.width - 2048
    rx = torch.randn(6, rspec.width)
    plain = plain_mlp(rmodel).eval()
    assert plain.embed.skip == 2048 and rmodel.embed.skip == 3  # the original is untouched
    torch.testing.assert_close(plain(rx), rmodel(rx), atol=1e-5, rtol=1e-4)


def test_members_are_independent_side_by_side_and_fold_into_one_plain_mlp(
    tmp_path: Path, repo_params: dict
) -> None:
    """model.members: K members in one module. Each member's prediction depends on its own
    weights only, each has exactly one single-member model's parameters, the eval output is
    the sigmoid of their mean logit, and plain_mlp (what every export holds) is that same
    function as one plain MLP; the model file rebuilds it."""
    from svg_quality.model import MaskedLinear, PeriodicEmbedding, load_model, plain_mlp

    base = dict(inputs="resnet", hidden=(12, 6), dropout=(0.0, 0.0), embedding="periodic")
    base.update(embedding_frequencies=3, embedding_dim=2, resnet_pca=3)
    spec = spec_for("resnet", repo_params)
    one = build_model(ModelConfig(**{**base, "hidden": (6, 3)}), spec.width, spec.resnet_width)
    cfg = ModelConfig(**base, members=2)  # two members of hidden (6, 3)
    model = build_model(cfg, spec.width, spec.resnet_width)
    model.resnet.fit(np.random.default_rng(0).normal(size=(20, spec.resnet_width)))
    assert count_parameters(model) == 2 * count_parameters(one)
    assert model.net[0].out_features == 12 and isinstance(model.net[0], MaskedLinear)

    x = torch.randn(32, spec.width)
    model.train()  # dropout 0: the train-mode output is deterministic per batch
    with torch.no_grad():
        before = model(x)  # [B, 2], one column per member
        assert before.shape == (32, 2)
        for name, p in model.named_parameters():  # scramble member 1's share of everything
            if name == "embed.freq":  # [n, 2 members x 3 frequencies]
                p[:, 3:] = 9.0
            elif name.startswith("embed."):  # weight [n, 2k, 2 x 2] / bias [n, 2 x 2]
                p[..., 2:] = torch.randn_like(p[..., 2:])
            else:  # Linear weights [out, in], biases and BatchNorm [out]: member 1's outputs
                p[p.shape[0] // 2 :] = torch.randn_like(p[p.shape[0] // 2 :])
        after = model(x)
    torch.testing.assert_close(after[:, 0], before[:, 0], rtol=0, atol=0)  # member 0 untouched
    assert (after[:, 1] - before[:, 1]).abs().max() > 1e-3

    model.eval()
    with torch.no_grad():
        z = model.net(model.embed(model.resnet(x)))  # [B, 2] member logits
        torch.testing.assert_close(model(x), torch.sigmoid(z.mean(dim=1)))
        plain = plain_mlp(model)
        assert plain.members == 1 and plain.resnet is None
        assert not any(isinstance(m, MaskedLinear) for m in plain.modules())
        assert isinstance(plain.embed, PeriodicEmbedding) and plain.embed.mask is None
        assert plain.net[-2].out_features == 1
        torch.testing.assert_close(plain(x), model(x), rtol=0, atol=1e-6)
        scripted = torch.jit.script(plain)  # what the TorchScript export compiles
        torch.testing.assert_close(scripted(x), model(x), rtol=0, atol=1e-6)

    save_model(tmp_path / "m.pt", model, model_meta(cfg, spec))
    back, meta = load_model(tmp_path / "m.pt")
    assert meta["model"]["members"] == 2
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="model.members"):
        ModelConfig(**base, members=0)
    with pytest.raises(ValueError, match=r"model.hidden\[1\] = 6 .*multiple of model.members"):
        ModelConfig(**base, members=4)

    # auto: two members, but the ResNet-only layout keeps its original single MLP
    auto = ModelConfig(**base, members="auto")
    assert build_model(auto, spec.width).members == 2  # no ResNet block: stats-like rows
    assert build_model(auto, spec.width, spec.resnet_width).members == 1
    assert model_meta(auto, spec)["model"]["members"] == 1
