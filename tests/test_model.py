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


def test_seed_architecture_has_2766337_parameters(repo_params: dict) -> None:
    # the seed's inputs (model.inputs=resnet) with params.yaml's widths and dropout
    cfg = ModelConfig(**{**parse_params(repo_params).model.__dict__, "inputs": "resnet"})
    model = build_model(cfg, spec_for("resnet", repo_params).width)
    assert spec_for("resnet", repo_params).width == 2056
    assert count_parameters(model) == 2_766_337
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
