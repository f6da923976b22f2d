"""The train area: data assembly, the training loop, checkpoints/resume, the stage + MLflow."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from svg_quality.checkpoints import load_checkpoint
from svg_quality.config import ModelConfig, TrainConfig, load_params, parse_params
from svg_quality.dataset import (
    Arrays,
    build_arrays,
    data_summary,
    load_labeled,
    make_input_spec,
    split_arrays,
)
from svg_quality.model import load_model
from svg_quality.paramspace import PARAM_NAMES, PARAM_SPECS, VTRACER_DEFAULTS
from svg_quality.trainer import (
    NonFiniteLossError,
    _Batches,
    batches_per_epoch,
    fit,
    lr_factor,
    predict,
    within_group_mse,
    within_group_rank,
)
from tests.conftest import load_stage

REPO_ROOT = Path(__file__).resolve().parents[1]
RANGES = load_params(REPO_ROOT / "params.yaml").vtracer.ranges
STAT_NAMES = ("colors", "edge_density", "entropy", "fill_ratio", "gradient", "text_like")
TIMING = ("epoch_s", "samples_per_s", "peak_gpu_mem_mb")


def write_fake_data(
    root: Path, n_images: int = 40, samples: int = 6, seed: int = 0, resnet_dim: int = 2048
) -> dict[str, Path]:
    """labels.parquet, features/ and logos.csv in the pipeline's formats (DESIGN.md).

    SSIM depends on the logo statistics and two parameters, so a model can learn it;
    a few rows fail (``status != ok``) and must be left out; feature rows are stored in
    a different order than the labels to exercise the index join.
    """
    rng = np.random.default_rng(seed)
    types = ["simple", "text", "gradient", "complex"]
    ids = [f"{i:016x}" for i in rng.choice(2**60, size=n_images, replace=False)]
    logo_type = [types[i % 4] for i in range(n_images)]
    split = np.array(["train"] * n_images, dtype=object)
    split[np.arange(n_images) % 5 == 3] = "val"
    split[np.arange(n_images) % 5 == 4] = "test"
    stats = rng.normal(size=(n_images, len(STAT_NAMES))).astype(np.float32) * 3 + 5
    feats = rng.normal(size=(n_images, resnet_dim)).astype(np.float32)

    rows = []
    for i, iid in enumerate(ids):
        for j in range(samples):
            raw = {
                s.name: (
                    rng.integers(int(RANGES[s.name][0]), int(RANGES[s.name][1]) + 1)
                    if s.kind is int
                    else rng.uniform(*RANGES[s.name])
                )
                for s in PARAM_SPECS
            }
            if j == 0:  # as the label stage: VTracer's defaults first (the probe's row)
                raw = dict(VTRACER_DEFAULTS)
            z = (
                0.6 * (stats[i, 0] - 5) / 3
                - 0.8 * (raw["filter_speckle"] / 32)
                + 0.5 * (raw["color_precision"] / 8)
            )
            ssim = float(np.clip(1 / (1 + np.exp(-z)) + rng.normal(0, 0.02), 0, 1))
            rows.append(
                {
                    "image_id": iid,
                    "logo_type": logo_type[i],
                    "split": split[i],
                    **raw,
                    "ssim": ssim,
                    "svg_bytes": 100,
                    "n_paths": 3,
                    "convert_ms": 1.0,
                    "render_ms": 1.0,
                    "status": "ok",
                    "error": None,
                }
            )
    labels = pd.DataFrame(rows)
    failed = labels.sample(5, random_state=seed).index
    labels.loc[failed, ["status", "error", "ssim"]] = ["timeout", "conversion timed out", np.nan]

    root.mkdir(parents=True, exist_ok=True)
    paths = {
        "labels": root / "labels.parquet",
        "features": root / "features",
        "logos": root / "logos.csv",
    }
    labels.to_parquet(paths["labels"])
    order = rng.permutation(n_images)  # feature row r holds image order[r]
    paths["features"].mkdir()
    np.save(paths["features"] / "features.npy", feats[order])
    np.save(paths["features"] / "stats.npy", stats[order])
    pd.DataFrame({"image_id": [ids[j] for j in order], "row": range(n_images)}).to_csv(
        paths["features"] / "index.csv", index=False
    )
    (paths["features"] / "meta.json").write_text(
        json.dumps(
            {
                "backbone": "resnet50",
                "weights": {"requested": "random", "used": "random"},
                "input_size": 224,
                "stat_names": list(STAT_NAMES),
                "fingerprint": "fake",
            }
        )
    )
    pd.DataFrame(
        {
            "image_id": ids,
            "path": [f"data/logos/{i}.png" for i in ids],
            "logo_type": logo_type,
            "source": "synthetic",
            "width": 96,
            "height": 96,
            "split": split,
        }
    ).to_csv(paths["logos"], index=False)
    return paths


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_fake_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def stats_arrays(fake: dict[str, Path]) -> dict[str, Arrays]:
    data = load_labeled(fake["labels"], fake["features"], fake["logos"])
    return split_arrays(data, "stats", RANGES)[1]


SMALL = ModelConfig(inputs="stats", hidden=(32, 16), dropout=(0.1, 0.0))


def tcfg(**kw: Any) -> TrainConfig:
    base = {"epochs": 4, "batch_size": 32, "warmup_epochs": 1, "device": "cpu", "patience": 0}
    return TrainConfig(**{**base, **kw})


def strip(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


# --------------------------------------------------------------------------- data


def test_probe_leaves_out_logos_without_a_defaults_label(tmp_path: Path) -> None:
    """A logo whose defaults conversion failed has no probe: a probe model's data leaves
    it out (and says so) instead of stopping; without probe=True the spec refuses."""
    paths = write_fake_data(tmp_path)
    labels = pd.read_parquet(paths["labels"])
    first = labels.groupby("image_id").head(1).index  # one row per image -> the defaults
    for name, value in VTRACER_DEFAULTS.items():
        labels.loc[first, name] = value
    labels.loc[first, "status"] = "ok"
    labels.loc[first, "ssim"] = 0.9
    lost = sorted(labels.loc[first, "image_id"])[:2]
    labels.loc[labels["image_id"].isin(lost) & labels.index.isin(first), "status"] = "panic"
    labels.to_parquet(paths["labels"])

    full = load_labeled(paths["labels"], paths["features"], paths["logos"])
    with pytest.raises(ValueError, match="no ok label at VTracer's defaults"):
        split_arrays(full, "stats+probe", RANGES)
    data = load_labeled(paths["labels"], paths["features"], paths["logos"], probe=True)
    assert data.left_out == tuple(lost)
    assert set(full.rows["image_id"]) - set(data.rows["image_id"]) == set(lost)
    assert len(data.rows) == len(full.rows) - int(full.rows["image_id"].isin(lost).sum())
    spec, arrays = split_arrays(data, "stats+probe", RANGES)
    assert spec.uses_probe and sum(len(a) for a in arrays.values()) == len(data.rows)
    assert np.isfinite(np.concatenate([a.x for a in arrays.values()])).all()
    assert data_summary(data)["images_left_out_no_probe"] == 2


def test_join_keeps_ok_rows_and_no_image_crosses_splits(fake: dict[str, Path]) -> None:
    data = load_labeled(fake["labels"], fake["features"], fake["logos"])
    labels = pd.read_parquet(fake["labels"])
    assert len(data.rows) == int((labels["status"] == "ok").sum()) == 40 * 6 - 5
    spec, arrays = split_arrays(data, "resnet+stats", RANGES)
    ids = {s: set(a.image_id) for s, a in arrays.items()}
    assert ids["train"] and ids["val"] and ids["test"]
    assert not ids["train"] & ids["val"]
    assert not ids["train"] & ids["test"]
    assert not ids["val"] & ids["test"]
    assert sum(len(a) for a in arrays.values()) == len(data.rows)
    # each row carries its own image's features despite the shuffled feature order
    feats = np.load(fake["features"] / "features.npy")
    index = pd.read_csv(fake["features"] / "index.csv", dtype={"image_id": str})
    row_of = dict(zip(index["image_id"], index["row"], strict=True))
    a = arrays["val"]
    for j in (0, len(a) - 1):
        np.testing.assert_array_equal(a.x[j, :2048], feats[row_of[a.image_id[j]]])
    # statistics standardized with train images' mean/std: ~N(0, 1) over train images
    train_stats = arrays["train"].x[:, 2048 : 2048 + len(STAT_NAMES)]
    per_image = pd.DataFrame(train_stats).groupby(arrays["train"].image_id).first().to_numpy()
    np.testing.assert_allclose(per_image.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(per_image.std(0), 1, atol=1e-4)
    assert spec.width == arrays["train"].x.shape[1] == 2048 + len(STAT_NAMES) + 8
    params = arrays["train"].x[:, -8:]
    assert params.min() >= 0 and params.max() <= 1


def test_image_listed_twice_in_logos_is_rejected(fake: dict[str, Path], tmp_path: Path) -> None:
    logos = pd.read_csv(fake["logos"], dtype={"image_id": str})
    first = logos.iloc[[0]].assign(split="test" if logos.iloc[0]["split"] != "test" else "val")
    bad = tmp_path / "logos.csv"
    pd.concat([logos, first]).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=f"image {logos.iloc[0]['image_id']} is listed twice"):
        load_labeled(fake["labels"], fake["features"], bad)


def test_labels_with_a_stale_split_are_rejected(fake: dict[str, Path], tmp_path: Path) -> None:
    labels = pd.read_parquet(fake["labels"])
    iid = labels.loc[labels["split"] == "train", "image_id"].iloc[0]
    labels.loc[labels["image_id"] == iid, "split"] = "test"
    labels.to_parquet(tmp_path / "labels.parquet")
    with pytest.raises(ValueError, match=f"image {iid} is in split 'test'.* but 'train'"):
        load_labeled(tmp_path / "labels.parquet", fake["features"], fake["logos"])


def test_labelled_image_without_features_names_it(fake: dict[str, Path], tmp_path: Path) -> None:
    feat = tmp_path / "features"
    feat.mkdir()
    for name in ("features.npy", "stats.npy", "meta.json"):
        (feat / name).write_bytes((fake["features"] / name).read_bytes())
    index = pd.read_csv(fake["features"] / "index.csv", dtype={"image_id": str})
    index.iloc[1:].to_csv(feat / "index.csv", index=False)
    with pytest.raises(ValueError, match=f"image {index.iloc[0]['image_id']} has labels but no"):
        load_labeled(fake["labels"], feat, fake["logos"])


# --------------------------------------------------------------------------- loop


def test_tiny_run_learns(stats_arrays: dict[str, Arrays]) -> None:
    res = fit(stats_arrays["train"], stats_arrays["val"], SMALL, tcfg(epochs=12), progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.5 * losses[0]
    assert res.best["val_pearson"] > 0.5
    assert not res.model.training
    assert set(res.history[0]) >= {
        "epoch",
        "train_loss",
        "val_loss",
        "val_rmse",
        "val_pearson",
        "lr",
        "epoch_s",
        "samples_per_s",
    }
    assert math.isclose(res.best["val_rmse"] ** 2, res.best["val_loss"], rel_tol=1e-9)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("scheduler", ["step", "none"])
def test_other_optimizers_and_schedulers_train(
    stats_arrays: dict[str, Arrays], optimizer: str, scheduler: str
) -> None:
    cfg = tcfg(epochs=3, optimizer=optimizer, scheduler=scheduler, step_size=1, lr=0.01)
    res = fit(stats_arrays["train"], stats_arrays["val"], SMALL, cfg, progress=False)
    assert all(math.isfinite(h["val_loss"]) for h in res.history)
    lrs = [h["lr"] for h in res.history]
    if scheduler == "step":  # gamma 0.5 every epoch
        assert lrs == pytest.approx([0.01, 0.005, 0.0025])
    else:
        assert lrs == [0.01] * 3


def test_within_logo_loss_is_the_pairwise_error_gap_and_batches_hold_whole_logos(
    stats_arrays: dict[str, Arrays],
) -> None:
    gen = torch.Generator().manual_seed(0)
    err = torch.randn(40, generator=gen, dtype=torch.float64)
    group = torch.randint(5, 9, (40,), generator=gen)  # ids need not start at 0
    pairs = [  # mean over each group's ordered pairs of (e_i - e_j)^2 / 2, row-weighted
        ((err[group == g][:, None] - err[group == g][None, :]) ** 2).mean() / 2 * (group == g).sum()
        for g in group.unique()
    ]
    assert within_group_mse(err, group).item() == pytest.approx(float(sum(pairs) / 40), rel=1e-12)
    assert within_group_mse(err + 3.0 * group, group).item() == pytest.approx(
        within_group_mse(err, group).item(),
        rel=1e-9,  # an error shared by a logo is ignored
    )

    train = stats_arrays["train"]
    ids = torch.as_tensor(np.unique(train.image_id, return_inverse=True)[1].reshape(-1))
    rows = _Batches(
        x=torch.zeros(len(ids), 1), y=torch.zeros(len(ids)), size=32, steps=1, group=ids
    )
    order = rows.order(torch.Generator().manual_seed(1))
    assert sorted(order.tolist()) == list(range(len(ids)))
    runs = torch.unique_consecutive(ids[order]).numel()
    assert runs == ids.unique().numel()  # each logo's rows are one run: batches of whole logos

    cfg = tcfg(epochs=3, logo_weight=2.0)
    res = fit(train, stats_arrays["val"], SMALL, cfg, progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    with pytest.raises(ValueError, match="logo_weight > 0 or train.rank_weight > 0 needs"):
        fit(SimpleNamespace(x=train.x, y=train.y), stats_arrays["val"], SMALL, cfg, progress=False)


def test_ranking_loss_is_the_mean_over_ordered_pairs_and_trains(
    stats_arrays: dict[str, Arrays],
) -> None:
    """train.rank_weight: RankNet over each logo's pairs, checked against a direct loop."""
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(30, 2, generator=gen, dtype=torch.float64)  # 2 members
    target = torch.rand(30, generator=gen, dtype=torch.float64)
    group = torch.randint(3, 7, (30,), generator=gen)
    tau = 0.05
    terms = [
        tau * math.log1p(math.exp(-(pred[i, k] - pred[j, k]).item() / tau))
        for i in range(30)
        for j in range(30)
        for k in range(2)
        if group[i] == group[j] and target[i] > target[j]
    ]
    got = within_group_rank(pred, target, group, tau)
    assert got.item() == pytest.approx(sum(terms) / len(terms), rel=1e-12)
    shifted = pred + 5.0 * group[:, None]  # a shift shared by a logo changes no order
    assert within_group_rank(shifted, target, group, tau).item() == pytest.approx(got.item())
    # ranked right by wide gaps costs ~0; the same gaps reversed cost about the gaps
    rank = target.argsort().argsort().double().unsqueeze(-1)  # gaps >= 1 = 20 tau
    assert within_group_rank(rank, target, group, tau).item() < 1e-6
    assert within_group_rank(-rank, target, group, tau).item() > 1.0
    none = within_group_rank(pred[:, 0], torch.zeros(30, dtype=torch.float64), group, tau)
    assert none.item() == 0.0  # no ordered pair: zero
    with pytest.raises(ValueError, match="train.rank_weight"):
        tcfg(rank_weight=-1.0)

    train, val = stats_arrays["train"], stats_arrays["val"]
    res = fit(train, val, SMALL, tcfg(epochs=3, rank_weight=1.0), progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    with pytest.raises(ValueError, match="train.rank_weight > 0 needs the rows' image ids"):
        fit(
            SimpleNamespace(x=train.x, y=train.y),
            val,
            SMALL,
            tcfg(epochs=1, rank_weight=1.0),
            progress=False,
        )


def test_within_logo_loss_is_the_variance_of_the_errors_inside_each_logo() -> None:
    """train.logo_weight's term: each logo's (population) variance of its errors, weighted
    by its rows; per member for [B, K] errors. Zero when a logo's errors are all equal."""
    gen = torch.Generator().manual_seed(3)
    group = torch.randint(2, 7, (24,), generator=gen)
    for err in (
        torch.randn(24, generator=gen, dtype=torch.float64),
        torch.randn(24, 3, generator=gen, dtype=torch.float64),  # 3 members
    ):
        e, g = err.numpy(), group.numpy()
        want = sum(np.var(e[g == k], axis=0).mean() * (g == k).sum() for k in np.unique(g)) / 24
        assert within_group_mse(err, group).item() == pytest.approx(want, rel=1e-9, abs=1e-12)
        per_logo = torch.randn(10, *err.shape[1:], generator=gen, dtype=torch.float64)[group]
        assert within_group_mse(per_logo, group).item() == pytest.approx(0.0, abs=1e-12)
        assert within_group_mse(err, torch.arange(24)).item() == 0.0  # one row per logo


def test_the_training_loss_is_mse_plus_the_weighted_logo_and_rank_terms(
    stats_arrays: dict[str, Arrays],
) -> None:
    """One train_epoch on one batch of every train row: its loss equals MSE +
    logo_weight x the errors' within-logo variance + rank_weight x RankNet over each
    logo's ordered pairs, all computed here in float64 from the definitions on the
    model's own (train-mode, 2-member) outputs. Each weighted term is far above the
    tolerance, so dropping either from the loop fails."""
    from svg_quality.accel import Precision
    from svg_quality.model import build_model
    from svg_quality.trainer import _groups, make_optimizer, make_scheduler, train_epoch

    train = stats_arrays["train"]
    n, tau, logo_weight, rank_weight = len(train.y), 0.03, 1.5, 0.7
    cfg = tcfg(
        epochs=1, batch_size=n, logo_weight=logo_weight, rank_weight=rank_weight, rank_tau=tau
    )
    torch.manual_seed(0)
    model_cfg = dataclasses.replace(SMALL, dropout=(0.0, 0.0), members=2)  # no dropout noise
    model = build_model(model_cfg, train.x.shape[1])
    x, group = torch.as_tensor(train.x), _groups(train)
    with torch.no_grad():  # BatchNorm on the whole batch, as the epoch's single step sees it
        pred = model.train()(x).double().numpy()  # [N, 2]
    y, g = train.y.astype(np.float64), group.numpy()
    err = pred - y[:, None]
    mse = float(np.mean(err**2))
    within = sum(np.var(err[g == k], axis=0).mean() * (g == k).sum() for k in np.unique(g)) / n
    i, j = np.nonzero((g[:, None] == g[None, :]) & (y[:, None] > y[None, :]))  # i above j
    rank = float(np.mean(tau * np.logaddexp(0.0, -(pred[i] - pred[j]) / tau)))

    # one batch of every row: the loss does not depend on the shuffled order
    rows = _Batches(x=x, y=torch.as_tensor(train.y), size=n, steps=1, group=group)
    device = torch.device("cpu")
    opt = make_optimizer(model, cfg, device)
    precision = Precision(device, None)
    got = train_epoch(
        model,
        rows,
        opt,
        make_scheduler(opt, cfg, 1),
        precision.grad_scaler(),
        precision,
        torch.Generator().manual_seed(0),
        cfg,
        1,
    )["train_loss"]
    assert got == pytest.approx(mse + logo_weight * within + rank_weight * rank, rel=1e-5)
    for term in (logo_weight * within, rank_weight * rank):
        assert term > 1e-3 * got  # without either term the loss misses by >= 100x rel


def test_members_each_learn_on_their_own_loss_and_predict_as_one(
    stats_arrays: dict[str, Arrays],
) -> None:
    """model.members = 2: one fit trains both members (train mode gives [B, 2], each
    member's MSE averaged); predict gives the ensemble's one value per row."""
    train, val = stats_arrays["train"], stats_arrays["val"]
    two = dataclasses.replace(SMALL, hidden=(64, 32), members=2)  # two of SMALL's widths
    res = fit(train, val, two, tcfg(epochs=12), progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.5 * losses[0] and res.best["val_pearson"] > 0.5
    pred = predict(res.model, val.x)
    assert pred.shape == val.y.shape
    rmse = float(np.sqrt(np.mean((pred - val.y) ** 2)))
    assert rmse == pytest.approx(res.best["val_rmse"], rel=1e-5)  # the best weights are kept
    res.model.train()
    with torch.no_grad():
        both = res.model(torch.as_tensor(val.x))
    assert both.shape == (len(val.y), 2) and (both[:, 0] - both[:, 1]).abs().max() > 1e-4  # differ

    gen = torch.Generator().manual_seed(0)
    err, group = torch.randn(40, 2, generator=gen), torch.randint(0, 6, (40,), generator=gen)
    per_member = [within_group_mse(err[:, k], group) for k in range(2)]
    assert within_group_mse(err, group).item() == pytest.approx(float(sum(per_member) / 2))


def test_cosine_schedule_warms_up_then_decays() -> None:
    cfg = tcfg(epochs=10, warmup_epochs=2)
    f = [lr_factor(cfg, s, steps_per_epoch=5) for s in range(50)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in itertools.pairwise(f[:10]))
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))
    assert f[-1] < 0.01


def test_early_stopping_on_patience(stats_arrays: dict[str, Arrays]) -> None:
    # lr 0 never improves after epoch 1, so patience 2 stops at epoch 3
    cfg = tcfg(epochs=20, lr=1e-8, scheduler="none", patience=2, monitor="val_loss")
    res = fit(stats_arrays["train"], stats_arrays["val"], SMALL, cfg, progress=False)
    assert res.stopped_early and res.epochs_run < 20
    assert res.epochs_run - res.best_epoch == 2


def test_nan_loss_names_epoch_and_batch(stats_arrays: dict[str, Arrays]) -> None:
    from svg_quality.model import build_model

    torch.manual_seed(0)
    model = build_model(SMALL, stats_arrays["train"].x.shape[1])
    calls = {"n": 0}

    def poison(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if module.training:
            calls["n"] += 1
            if calls["n"] == 7:  # 4 batches per epoch -> epoch 2, batch 3
                return output * float("nan")
        return output

    model.net[0].register_forward_hook(poison)
    assert batches_per_epoch(len(stats_arrays["train"]), 40) == 4
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 3 \(of 4\)"):
        fit(
            stats_arrays["train"],
            stats_arrays["val"],
            SMALL,
            tcfg(batch_size=40),
            model=model,
            progress=False,
        )


def test_cpu_bf16_autocast_when_forced(stats_arrays: dict[str, Arrays]) -> None:
    from svg_quality.model import build_model

    torch.manual_seed(0)
    model = build_model(SMALL, stats_arrays["train"].x.shape[1])
    dtypes: set[torch.dtype] = set()
    model.net[0].register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))
    res = fit(
        stats_arrays["train"],
        stats_arrays["val"],
        SMALL,
        tcfg(epochs=2, amp="bf16"),
        model=model,
        progress=False,
    )
    assert res.precision == "bf16" and dtypes == {torch.bfloat16}
    assert all(math.isfinite(h["train_loss"]) for h in res.history)
    # default on CPU: autocast off, full fp32
    assert (
        fit(
            stats_arrays["train"], stats_arrays["val"], SMALL, tcfg(epochs=1), progress=False
        ).precision
        == "fp32"
    )


@pytest.mark.gpu
def test_cuda_amp_run_reports_gpu_memory(stats_arrays: dict[str, Arrays]) -> None:
    res = fit(
        stats_arrays["train"],
        stats_arrays["val"],
        SMALL,
        tcfg(epochs=2, device="cuda"),
        progress=False,
    )
    assert res.device.startswith("cuda") and res.precision in ("bf16", "fp16")
    assert res.history[-1]["peak_gpu_mem_mb"] > 0
    assert all(math.isfinite(h["val_loss"]) for h in res.history)


# --------------------------------------------------------------------------- checkpoints


class Interrupt(Exception):
    pass


def test_resume_equals_uninterrupted_run(stats_arrays: dict[str, Arrays], tmp_path: Path) -> None:
    tr, va = stats_arrays["train"], stats_arrays["val"]
    cfg = tcfg(epochs=5)
    full = fit(tr, va, SMALL, cfg, checkpoint_dir=tmp_path / "a", progress=False)

    def stop_after_2(record: dict[str, float]) -> None:
        if record["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(
            tr, va, SMALL, cfg, checkpoint_dir=tmp_path / "b", on_epoch=stop_after_2, progress=False
        )
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 2
    resumed = fit(
        tr,
        va,
        SMALL,
        dataclasses.replace(cfg, resume=True),
        checkpoint_dir=tmp_path / "b",
        progress=False,
    )
    assert resumed.resumed_from == 2
    assert strip(resumed.history) == strip(full.history)
    assert resumed.best_epoch == full.best_epoch
    for name in ("last.pt", "best.pt"):
        a = load_checkpoint(tmp_path / "a" / name)["state_dict"]
        b = load_checkpoint(tmp_path / "b" / name)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a), name
    fs, rs = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(fs[k], rs[k]) for k in fs)

    # resuming a finished run trains nothing and returns the same best model
    again = fit(
        tr,
        va,
        SMALL,
        dataclasses.replace(cfg, resume=True),
        checkpoint_dir=tmp_path / "b",
        progress=False,
    )
    assert again.resumed_from == 5 and strip(again.history) == strip(full.history)
    assert all(torch.equal(fs[k], again.model.state_dict()[k]) for k in fs)

    # a changed setting cannot silently resume
    with pytest.raises(ValueError, match=r"train.lr=0.001, now 0.01"):
        fit(
            tr,
            va,
            SMALL,
            dataclasses.replace(cfg, resume=True, lr=0.01),
            checkpoint_dir=tmp_path / "b",
            progress=False,
        )


# --------------------------------------------------------------------------- the stage


def test_stage_writes_outputs_and_logs_to_mlflow(
    fake: dict[str, Path],
    tmp_path: Path,
    tiny_params: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    sqlite_tracking_uri: str,
) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = sqlite_tracking_uri
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    p = tiny_params
    p["model"].update(inputs="resnet+stats", hidden=[32, 16], dropout=[0.1, 0.0], probe=False)
    p["train"].update(epochs=3, patience=0)
    parse_params(p)  # the shrunk real config is still valid
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    out = tmp_path / "out"
    argv = [
        "--params",
        "params.yaml",
        "--labels",
        str(fake["labels"]),
        "--features",
        str(fake["features"]),
        "--logos-csv",
        str(fake["logos"]),
        "--model",
        str(out / "model.pt"),
        "--run-json",
        str(out / "run.json"),
        "--work-dir",
        str(out / "ckpt"),
        "--reports",
        str(out / "reports"),
    ]
    stage = load_stage("train")
    stage.main(argv)

    run_info = json.loads((out / "run.json").read_text())
    assert run_info["tracking_uri"] == uri
    client = MlflowClient(uri)
    run = client.get_run(run_info["run_id"])
    assert run.info.status == "FINISHED"
    hist = client.get_metric_history(run.info.run_id, "val_rmse")
    assert [m.step for m in hist] == [1, 2, 3]
    assert {"train_loss", "val_pearson", "lr", "samples_per_s"} <= set(run.data.metrics)
    assert run.data.params["train.epochs"] == "3"
    assert run.data.params["model.inputs"] == "resnet+stats"
    assert run.data.tags["dvc_exp_name"] == "exp-test"
    assert run.data.tags["features_weights"] == "random"
    assert run.data.tags["resnet_block"] == (  # asked for, so used; params.yaml's projection
        "used via a PCA projection to 8 components fitted on the train images (random trunk)"
    )
    assert len(run.data.tags["labels_digest"]) == 64
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"labels", "features"}

    history = pd.read_csv(out / "reports" / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    np.testing.assert_allclose(history["val_rmse"], [m.value for m in hist])
    metrics = json.loads((out / "reports" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["val_rmse"] == pytest.approx(
        run.data.metrics["train/val_rmse"]
    )
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["best.pt", "last.pt"]

    # models/model.pt is self-describing and weights_only-loadable
    model, meta = load_model(out / "model.pt")
    assert meta["input"]["inputs"] == "resnet+stats"
    assert meta["features"]["weights"]["used"] == "random"
    assert meta["best_epoch"] == metrics["best_epoch"]
    data = load_labeled(fake["labels"], fake["features"], fake["logos"])
    from svg_quality.model import InputSpec
    from svg_quality.trainer import predict

    val = build_arrays(data, InputSpec.from_meta(meta["input"]), data.mask("val"))
    pred = predict(model, val.x)
    rmse = float(np.sqrt(np.mean((pred.astype(np.float64) - val.y) ** 2)))
    assert rmse == pytest.approx(metrics["val_rmse"], rel=1e-5)
    spec = make_input_spec(data, "resnet+stats", RANGES)
    assert list(spec.stats_mean) == pytest.approx(meta["input"]["stats_mean"])

    # train.resume on a finished run: the same MLflow run, no epoch logged twice
    p["train"]["resume"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    stage.main(argv)
    assert json.loads((out / "run.json").read_text())["run_id"] == run_info["run_id"]
    assert len(client.get_metric_history(run.info.run_id, "val_rmse")) == 3
    assert client.get_run(run.info.run_id).info.status == "FINISHED"

    # Issue 17 row 1: a refused resume (changed train.lr) leaves the run it would continue
    # FINISHED and creates none (it used to reopen the run and close it FAILED).
    p["train"]["lr"] = p["train"]["lr"] * 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    with pytest.raises(ValueError, match=r"train.resume: .* train.lr="):
        stage.main(argv)
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert [r.info.run_id for r in client.search_runs([run.info.experiment_id])] == [
        run.info.run_id
    ]


def test_stage_marks_run_failed_on_error(
    fake: dict[str, Path],
    tmp_path: Path,
    tiny_params: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    sqlite_tracking_uri: str,
) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = sqlite_tracking_uri
    p = tiny_params
    p["model"].update(inputs="stats", hidden=[8], dropout=[0.0], probe=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    labels = pd.read_parquet(fake["labels"])
    logos = pd.read_csv(fake["logos"], dtype={"image_id": str})
    train_ids = set(logos.loc[logos["split"] == "train", "image_id"])
    row = labels.index[(labels["status"] == "ok") & labels["image_id"].isin(train_ids)][0]
    labels.loc[row, PARAM_NAMES[0]] = np.nan  # a NaN input poisons the loss
    labels.to_parquet(tmp_path / "labels.parquet")
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch"):
        load_stage("train").main(
            [
                "--params",
                "params.yaml",
                "--labels",
                str(tmp_path / "labels.parquet"),
                "--features",
                str(fake["features"]),
                "--logos-csv",
                str(fake["logos"]),
                "--model",
                "m.pt",
                "--run-json",
                "run.json",
                "--work-dir",
                "ckpt",
                "--reports",
                "reports",
            ]
        )
    runs = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name(p["tracking"]["experiment"]).experiment_id]
    )
    assert [r.info.status for r in runs] == ["FAILED"]
    assert not (tmp_path / "run.json").exists() and not (tmp_path / "m.pt").exists()


def test_kill_9_then_resume_continues_the_same_mlflow_run(
    fake: dict[str, Path], tmp_path: Path, tiny_params: dict[str, Any], sqlite_tracking_uri: str
) -> None:
    """Issue 17: kill -9 of the real train stage mid-run, then `train.resume: true`: the
    same MLflow run continues, ends FINISHED, and logs every epoch exactly once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from mlflow import MlflowClient

    p = tiny_params
    p["model"].update(
        inputs="resnet+stats", hidden=[64, 32], dropout=[0.1, 0.0], probe=False, embedding="none"
    )
    p["train"].update(epochs=20, patience=0, batch_size=16)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    argv = [sys.executable, str(REPO_ROOT / "stages" / "train.py"), "--params", "params.yaml"]
    argv += ["--labels", str(fake["labels"]), "--features", str(fake["features"])]
    argv += ["--logos-csv", str(fake["logos"]), "--model", "m.pt", "--run-json", "run.json"]
    argv += ["--work-dir", "work", "--reports", "reports"]
    env = {**os.environ, "DVC_ROOT": str(tmp_path)}
    history = tmp_path / "reports" / "history.csv"
    with (tmp_path / "first.log").open("w") as log:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 240
            while proc.poll() is None and time.monotonic() < deadline:
                if history.is_file() and history.read_text().count("\n") >= 3:  # 2 epochs
                    break
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-2000:]
    ckpt = load_checkpoint(tmp_path / "work" / "last.pt")
    assert not ckpt["finished"] and ckpt["epoch"] < 20  # really interrupted mid-run
    run_id = ckpt["meta"]["mlflow_run_id"]
    client = MlflowClient(sqlite_tracking_uri)
    assert client.get_run(run_id).info.status == "RUNNING"  # kill -9 closes nothing

    p["train"]["resume"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "run.json").read_text())["run_id"] == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert [r.info.run_id for r in client.search_runs([run.info.experiment_id])] == [run_id]
    steps = [m.step for m in client.get_metric_history(run_id, "val_rmse")]
    assert sorted(steps) == list(range(1, 21))  # each epoch once, none lost at the kill
    assert list(pd.read_csv(history)["epoch"]) == list(range(1, 21))
