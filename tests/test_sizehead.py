"""The size head: target scaling, training beside the SSIM head (which stays bit for bit
the same), the train stage's second model file and metrics, validation and CV."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from svg_quality.config import ModelConfig, TrainConfig, ValidateConfig, parse_params
from svg_quality.dataset import load_labeled, make_input_spec
from svg_quality.model import load_model
from svg_quality.report import flat_size_metrics, render_size_section
from svg_quality.sizehead import OUTPUT, SizeScale, size_metrics
from svg_quality.validation import validate_size_head
from tests.conftest import load_stage
from tests.test_train import RANGES, write_fake_data


def with_learnable_bytes(paths: dict[str, Path]) -> dict[str, Path]:
    """The fake labels' svg_bytes made a function of a statistic and two parameters."""
    labels = pd.read_parquet(paths["labels"])
    index = pd.read_csv(paths["features"] / "index.csv", dtype={"image_id": str})
    stats = np.load(paths["features"] / "stats.npy")
    row = labels["image_id"].map(dict(zip(index["image_id"], index["row"], strict=True)))
    stat0 = stats[row.to_numpy(), 0]
    lg = (
        3.0
        + 0.15 * (stat0 - 5)
        - 1.2 * labels["filter_speckle"] / 32
        + 0.1 * labels["path_precision"]
    )
    rng = np.random.default_rng(1)
    labels["svg_bytes"] = np.round(10 ** (lg + rng.normal(0, 0.02, len(lg)))).astype(int)
    labels.to_parquet(paths["labels"])
    return paths


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return with_learnable_bytes(write_fake_data(tmp_path_factory.mktemp("sizedata")))


def test_scale_maps_the_train_range_inside_the_sigmoid_and_back() -> None:
    b = np.array([300.0, 2_000.0, 500_000.0])
    scale = SizeScale.fit(b)
    u = scale.to_unit(b)
    assert u.min() == pytest.approx(0.1 + 0.8 * 0.5 / (np.ptp(np.log10(b)) + 1.0), abs=1e-6)
    assert 0.1 < u.min() < u.max() < 0.9
    np.testing.assert_allclose(10 ** scale.to_log10(u), b, rtol=1e-5)
    assert SizeScale.from_meta(scale.to_meta()) == scale
    with pytest.raises(ValueError, match="svg_bytes must be positive"):
        SizeScale.fit(np.array([100.0, 0.0]))


def test_size_metrics_on_known_errors() -> None:
    actual = np.array([1000.0, 1000.0, 1000.0, 1000.0])
    pred = np.log10([1100.0, 900.0, 1200.0, 1000.0])  # +10%, -10%, +20%, 0%
    m = size_metrics(actual, pred)
    assert m["median_abs_ratio_err"] == pytest.approx(0.10)
    assert m["n"] == 4 and np.isnan(m["pearson_log10"])  # constant actual sizes: r undefined


def stage_argv(fake: dict[str, Path], out: Path, size: bool) -> list[str]:
    argv = ["--params", "params.yaml", "--labels", str(fake["labels"])]
    argv += ["--features", str(fake["features"]), "--logos-csv", str(fake["logos"])]
    argv += ["--model", str(out / "model.pt"), "--run-json", str(out / "run.json")]
    argv += ["--work-dir", str(out / "work"), "--reports", str(out / "reports")]
    return argv + (["--size-model", str(out / "size_model.pt")] if size else [])


def test_train_stage_adds_the_size_head_and_leaves_the_ssim_head_unchanged(
    fake: dict[str, Path],
    tmp_path: Path,
    tiny_params: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    sqlite_tracking_uri: str,
) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    p = tiny_params
    p["model"].update(inputs="stats", hidden=[32, 16], dropout=[0.1, 0.0], probe=False)
    p["train"].update(epochs=20, patience=0, lr=0.01)
    parse_params(p)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    stage = load_stage("train")
    stage.main(stage_argv(fake, tmp_path / "a", size=False))
    stage.main(stage_argv(fake, tmp_path / "b", size=True))

    # the SSIM head: the same weights and history with or without the size head
    ssim_a, meta_a = load_model(tmp_path / "a" / "model.pt")
    ssim_b, meta_b = load_model(tmp_path / "b" / "model.pt")
    for k, v in ssim_a.state_dict().items():
        assert torch.equal(v, ssim_b.state_dict()[k]), k
    assert meta_a["output"] == meta_b["output"] == "ssim"
    hist = [pd.read_csv(tmp_path / d / "reports" / "history.csv") for d in "ab"]
    pd.testing.assert_frame_equal(
        hist[0].drop(columns=["epoch_s", "samples_per_s"]),
        hist[1].drop(columns=["epoch_s", "samples_per_s"]),
    )
    assert not (tmp_path / "a" / "size_model.pt").exists()

    # the size head: its own self-describing file, same inputs, its own output and scale
    size_model, size_meta = load_model(tmp_path / "b" / "size_model.pt")
    assert size_meta["output"] == OUTPUT and size_meta["input"] == meta_b["input"]
    assert set(size_meta["size_scale"]) == {"log10_low", "log10_high"}
    metrics = json.loads((tmp_path / "b" / "reports" / "metrics.json").read_text())
    assert metrics["size_val_pearson_log10"] > 0.8  # the fake bytes are learnable
    assert 0 < metrics["size_val_median_abs_ratio_err"] < 0.5
    run_id = json.loads((tmp_path / "b" / "run.json").read_text())["run_id"]
    logged = MlflowClient(sqlite_tracking_uri).get_run(run_id).data.metrics
    assert logged["train/size_val_pearson_log10"] == pytest.approx(
        metrics["size_val_pearson_log10"]
    )

    # validation: test overall and per type, grouped CV with the SSIM head's folds
    data = load_labeled(fake["labels"], fake["features"], fake["logos"])
    mcfg = ModelConfig(inputs="stats", hidden=(32, 16), dropout=(0.1, 0.0))
    tcfg = TrainConfig(epochs=20, batch_size=32, lr=0.01, device="cpu", patience=0)
    vcfg = ValidateConfig(cv_folds=2, cv_epochs=6, min_type_examples=5)
    report = validate_size_head(data, size_model, size_meta, mcfg, tcfg, vcfg, progress=False)
    assert report["test"]["pearson_log10"] > 0.8
    assert report["test"]["n"] == int(data.mask("test").sum())
    assert {t for t, m in report["per_type"].items() if m["status"] == "reported"} == {
        "simple",
        "text",
        "gradient",
        "complex",
    }
    assert report["cv"]["n_folds"] == 2 == len(report["cv"]["folds"])
    flat = flat_size_metrics(report)
    assert flat["size/test/pearson_log10"] == report["test"]["pearson_log10"]
    assert "size/test/type/text/median_abs_ratio_err" in flat
    assert "size/cv/pearson_log10_mean" in flat
    section = render_size_section(report)
    assert section.startswith("## Size head") and "| text |" in section
    assert "Grouped CV (2 folds)" in section

    # a model whose output is SSIM is refused as a size model
    with pytest.raises(ValueError, match="not a size model"):
        validate_size_head(data, ssim_b, meta_b, mcfg, tcfg, vcfg)


def test_size_inputs_follow_the_ssim_spec(fake: dict[str, Path]) -> None:
    from svg_quality.sizehead import size_arrays, svg_bytes_of

    data = load_labeled(fake["labels"], fake["features"], fake["logos"])
    spec = make_input_spec(data, "stats", RANGES)
    scale = SizeScale.fit(svg_bytes_of(data, data.mask("train")))
    a = size_arrays(data, spec, scale, data.mask("val"))
    assert a.x.shape[1] == spec.width
    np.testing.assert_allclose(
        10 ** scale.to_log10(a.y), svg_bytes_of(data, data.mask("val")), rtol=1e-4
    )
