"""The validate area: metrics vs scipy/sklearn, grouped folds, gates, skipped types,
convergence, baselines, and the stage end to end on a tiny model with a real MLflow store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from sklearn import metrics as skm

from svg_quality import metrics, tracking
from svg_quality.baselines import compare_baselines
from svg_quality.config import ModelConfig, TrainConfig, ValidateConfig, parse_params
from svg_quality.crossval import grouped_folds
from svg_quality.gates import convergence, evaluate_gates
from svg_quality.paramspace import PARAM_NAMES, denormalize
from svg_quality.validation import per_type_metrics
from tests.conftest import load_repo_params, load_stage

REPO_ROOT = Path(__file__).resolve().parents[1]
TYPES = ("simple", "text", "gradient", "complex")
STAT_NAMES = ("colors_log2", "edge_density", "luma_entropy")
RANGES = load_repo_params()["vtracer"]["ranges"]


# --------------------------------------------------------------------------- metrics


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    t = rng.uniform(0.4, 1.0, 500)
    p = np.clip(t + rng.normal(0, 0.06, 500), 0, 1)
    p[:10] = np.round(p[:10], 1)  # ties, so Spearman's average ranks matter
    return t, p


def test_metrics_agree_with_scipy_and_sklearn(pair: tuple[np.ndarray, np.ndarray]) -> None:
    t, p = pair
    m = metrics.full_metrics(t, p)
    r, pval = stats.pearsonr(t, p)
    assert m["mse"] == pytest.approx(skm.mean_squared_error(t, p), rel=1e-12)
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(t, p)), rel=1e-12)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(t, p), rel=1e-12)
    assert m["pearson"] == pytest.approx(r, rel=1e-10)
    assert m["spearman"] == pytest.approx(stats.spearmanr(t, p).statistic, rel=1e-10)
    assert m["r2"] == pytest.approx(skm.r2_score(t, p), rel=1e-10)
    assert m["max_error"] == pytest.approx(skm.max_error(t, p), rel=1e-12)
    assert m["median_error"] == pytest.approx(skm.median_absolute_error(t, p), rel=1e-12)
    assert m["n"] == 500
    # A weak correlation, so the p-value is a number far from 0 to compare.
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=40), rng.normal(size=40)
    _, p2 = stats.pearsonr(a, b)
    assert metrics.pearson_pvalue(metrics.pearson(a, b), 40) == pytest.approx(p2, rel=1e-8)
    assert pval < 1e-100 and m["pearson_p"] < 1e-100  # both vanish on a strong correlation


def test_accuracy_within_tolerance_on_known_errors() -> None:
    t = np.array([0.5, 0.5, 0.5, 0.5, 0.5])
    p = np.array([0.5, 0.54, 0.56, 0.6, 0.75])  # |err| 0, .04, .06, .1, .25
    assert metrics.accuracy_within(t, p, 0.05) == pytest.approx(2 / 5)
    assert metrics.accuracy_within(t, p, 0.1) == pytest.approx(4 / 5)  # 0.1 itself counts
    m = metrics.full_metrics(t, p)
    assert (m["acc_0_05"], m["acc_0_1"]) == (pytest.approx(0.4), pytest.approx(0.8))
    assert np.isnan(m["r2"])  # constant truth: R² undefined, not a crash
    const = metrics.full_metrics(p, np.full(5, np.mean(p)))  # the global-mean baseline's shape
    assert np.isnan(const["pearson"]) and np.isnan(const["spearman"])
    with pytest.raises(ValueError, match="5 values but y_pred has 4"):
        metrics.full_metrics(t, p[:4])


# --------------------------------------------------------------------------- folds


def test_grouped_folds_never_share_an_image() -> None:
    rng = np.random.default_rng(0)
    images = np.repeat([f"img{i:03d}" for i in range(60)], rng.integers(3, 9, 60))
    types = np.array([TYPES[int(s[3:]) % 4] for s in images])
    folds = grouped_folds(images, types, 5, seed=1)
    assert len(folds) == 5
    seen: set[str] = set()
    for tr, te in folds:
        train_imgs, test_imgs = set(images[tr]), set(images[te])
        assert not train_imgs & test_imgs
        assert not seen & test_imgs  # each image is held out exactly once
        seen |= test_imgs
        assert len(tr) + len(te) == len(images)
        assert set(types[te]) == set(TYPES)  # stratified: every type in every fold
    assert seen == set(images)
    with pytest.raises(ValueError, match=r"cv_folds = 5 but only 3 images"):
        grouped_folds(["a", "b", "c"], ["simple"] * 3, 5, seed=0)


# --------------------------------------------------------------------------- per type, gates


def _predictions(counts: dict[str, int], noise: float = 0.03, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for t, n in counts.items():
        actual = rng.uniform(0.5, 1.0, n)
        for i, a in enumerate(actual):
            rows.append(
                {
                    "image_id": f"{t}{i // 4}",
                    "logo_type": t,
                    "actual": a,
                    "predicted": a + rng.normal(0, noise),
                }
            )
    return pd.DataFrame(rows)


def test_type_below_min_examples_is_skipped_with_its_count() -> None:
    pred = _predictions({"simple": 40, "text": 7, "gradient": 31})
    pt = per_type_metrics(pred, min_examples=30)
    text = pt.set_index("logo_type").loc["text"]
    assert text["status"] == "skipped" and text["n"] == 7 and text["n_images"] == 2
    assert np.isnan(text["pearson"])
    assert list(pt["logo_type"]) == ["simple", "text", "gradient"]  # canonical order
    assert (pt.set_index("logo_type").loc[["simple", "gradient"], "status"] == "reported").all()
    gates = evaluate_gates(
        metrics.full_metrics(pred.actual, pred.predicted), pt, {"type_pearson": 0.5}
    )
    assert list(gates["gates"]) == ["type_pearson/simple", "type_pearson/gradient"]  # no text


def test_gates_flip_on_a_threshold_change() -> None:
    pred = _predictions({"simple": 50, "text": 50})
    overall = metrics.full_metrics(pred.actual, pred.predicted)
    pt = per_type_metrics(pred, min_examples=30)
    rmse, r = overall["rmse"], overall["pearson"]
    loose = evaluate_gates(overall, pt, {"rmse": rmse + 1e-3, "pearson": r - 1e-3})
    assert loose["passed"] and all(g["passed"] for g in loose["gates"].values())
    tight = evaluate_gates(overall, pt, {"rmse": rmse - 1e-3, "pearson": r - 1e-3})
    assert not tight["passed"]
    assert tight["gates"]["rmse"]["passed"] is False  # rmse is "<=": lower passes
    assert tight["gates"]["pearson"]["passed"] is True
    worst = pt["pearson"].min()
    per_type = evaluate_gates(overall, pt, {"type_pearson": worst + 1e-6})
    assert not per_type["passed"] and sum(g["passed"] for g in per_type["gates"].values()) == 1
    assert evaluate_gates(overall, pt, {"type_pearson": worst - 1e-6})["passed"]
    none = evaluate_gates(overall, per_type_metrics(pred, 1000), {"type_pearson": 0.0})
    assert not none["passed"] and "no logo type" in none["gates"]["type_pearson/none"]["note"]


def test_unknown_gate_is_rejected_naming_it() -> None:
    with pytest.raises(ValueError, match="validate.gates.pearsn"):
        ValidateConfig(gates={"pearsn": 0.9})


# --------------------------------------------------------------------------- convergence, baselines


def _history(val: list[float], train: list[float]) -> pd.DataFrame:
    n = len(val)
    return pd.DataFrame(
        {
            "epoch": range(1, n + 1),
            "train_loss": train,
            "val_loss": val,
            "val_rmse": np.sqrt(val),
            "val_pearson": np.linspace(0.5, 0.9, n),
        }
    )


def test_convergence_flags_rising_val_loss_and_big_gap() -> None:
    good = convergence(
        _history(
            [0.05, 0.03, 0.02, 0.019, 0.0185, 0.018], [0.06, 0.035, 0.022, 0.02, 0.019, 0.0185]
        )
    )
    assert good["best_epoch"] == 6 and not good["overfitting"]
    over = convergence(
        _history([0.05, 0.02, 0.022, 0.025, 0.03, 0.035], [0.05, 0.019, 0.015, 0.012, 0.01, 0.008])
    )
    assert over["best_epoch"] == 2 and over["overfitting"]
    assert "rose 75%" in over["overfitting_reasons"][0]
    gap = convergence(_history([0.05, 0.04, 0.03], [0.02, 0.015, 0.01]))
    assert gap["overfitting"] and "3.0x" in gap["overfitting_reasons"][0]
    assert (
        convergence(_history([0.05, 0.04, 0.03], [0.05, 0.04, 0.03]), best_epoch=2)["best_epoch"]
        == 2
    )  # the model file's recorded best epoch wins
    assert not good["stable"]  # val r climbs 0.08 over the last 5 epochs


def test_baseline_comparison_picks_the_best_and_says_if_mlp_loses() -> None:
    t = np.linspace(0, 1, 100)
    base = {"global_mean": np.full(100, 0.5), "good": t + 0.01}
    beats = compare_baselines(t, t + 0.005, base)
    assert beats["best"] == "good" and beats["mlp_beats_best"]
    assert beats["mlp_rmse_reduction_pct"] == pytest.approx(50.0)
    loses = compare_baselines(t, t + 0.02, base)
    assert not loses["mlp_beats_best"] and loses["mlp_rmse_reduction_pct"] == pytest.approx(-100)


# --------------------------------------------------------------------------- the stage


def write_tiny_data(root: Path, n_images: int = 48, samples: int = 8, seed: int = 0) -> dict:
    """labels.parquet, features/, logos.csv in the pipeline's formats; SSIM is learnable from
    one statistic and two parameters. Test images of `complex` are few, to be skipped."""
    rng = np.random.default_rng(seed)
    ids = [f"{i:016x}" for i in rng.choice(2**60, size=n_images, replace=False)]
    ltype = [TYPES[i % 4] for i in range(n_images)]
    split = np.array(["train", "train", "train", "val", "test"] * n_images, dtype=object)[:n_images]
    split[[i for i in range(n_images) if ltype[i] == "complex" and split[i] == "test"][1:]] = (
        "train"
    )
    stats_ = rng.normal(size=(n_images, len(STAT_NAMES))).astype(np.float32)
    feats = rng.normal(size=(n_images, 2048)).astype(np.float32)
    rows = []
    for i, iid in enumerate(ids):
        for _ in range(samples):
            raw = dict(
                zip(PARAM_NAMES, denormalize(rng.uniform(size=(1, 8)), RANGES)[0], strict=True)
            )
            z = 1.5 + 0.8 * stats_[i, 0] - 2.0 * raw["filter_speckle"] / 32
            rows.append(
                {
                    "image_id": iid,
                    "logo_type": ltype[i],
                    **raw,
                    "ssim": float(np.clip(1 / (1 + np.exp(-z)) + rng.normal(0, 0.02), 0, 1)),
                    "svg_bytes": 10,
                    "n_paths": 1,
                    "convert_ms": 1.0,
                    "render_ms": 1.0,
                    "status": "ok",
                    "error": None,
                }
            )
    paths = {
        "labels": root / "labels.parquet",
        "features": root / "features",
        "logos": root / "logos.csv",
    }
    pd.DataFrame(rows).to_parquet(paths["labels"])
    paths["features"].mkdir()
    np.save(paths["features"] / "features.npy", feats)
    np.save(paths["features"] / "stats.npy", stats_)
    pd.DataFrame({"image_id": ids, "row": range(n_images)}).to_csv(
        paths["features"] / "index.csv", index=False
    )
    (paths["features"] / "meta.json").write_text(json.dumps({"stat_names": list(STAT_NAMES)}))
    pd.DataFrame(
        {
            "image_id": ids,
            "path": [f"{i}.png" for i in ids],
            "logo_type": ltype,
            "source": "synthetic",
            "width": 64,
            "height": 64,
            "split": split,
        }
    ).to_csv(paths["logos"], index=False)
    return paths


def tiny_params(tiny: dict[str, Any], tmp_path: Path) -> Path:
    """The real params.yaml, shrunk (conftest), with a small MLP on statistics inputs."""
    tiny["model"].update(inputs="resnet+stats", hidden=[32, 16], dropout=[0.1, 0.0], probe=False)
    tiny["train"].update(epochs=6, patience=0, warmup_epochs=1)
    tiny["validate"].update(cv_folds=3, cv_epochs=3, min_type_examples=12)
    parse_params(tiny)  # still a valid config
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny))
    return path


def train_tiny_model(paths: dict, params_path: Path, tmp_path: Path, uri: str) -> dict[str, Path]:
    """models/model.pt, size_model.pt, run.json (a real MLflow run) and history.csv via the
    train APIs."""
    import mlflow

    from svg_quality import tracking
    from svg_quality.config import load_params
    from svg_quality.dataset import load_labeled, split_arrays
    from svg_quality.model import model_meta, save_model
    from svg_quality.sizehead import train_and_save
    from svg_quality.trainer import fit

    params = load_params(params_path)
    data = load_labeled(paths["labels"], paths["features"], paths["logos"])
    spec, arrays = split_arrays(data, params.model.inputs, params.vtracer.ranges)
    res = fit(
        arrays["train"],
        arrays["val"],
        params.model,
        params.train,
        progress=False,
        resnet_width=spec.resnet_width,
    )
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("svg-quality")
    with mlflow.start_run() as run:
        pass
    out = {
        "model": tmp_path / "model.pt",
        "size_model": tmp_path / "size_model.pt",
        "run": tmp_path / "run.json",
        "history": tmp_path / "history.csv",
    }
    meta = model_meta(params.model, spec, {"mlflow_run_id": run.info.run_id})
    save_model(out["model"], res.model, {**meta, "best_epoch": res.best_epoch})
    train_and_save(out["size_model"], data, spec, params.model, params.train, meta, progress=False)
    tracking.write_run_json(out["run"], run, uri)
    pd.DataFrame(res.history).to_csv(out["history"], index=False)
    return out


def test_stage_reports_a_tiny_run_and_logs_into_its_mlflow_run(
    tiny_params: dict[str, Any], tmp_path: Path, sqlite_tracking_uri: str
) -> None:
    import mlflow

    uri = sqlite_tracking_uri
    paths = write_tiny_data(tmp_path)
    params_path = globals()["tiny_params"](tiny_params, tmp_path)
    model = train_tiny_model(paths, params_path, tmp_path, uri)
    out = tmp_path / "reports" / "validate"
    argv = [
        "--params",
        str(params_path),
        "--model",
        str(model["model"]),
        "--run",
        str(model["run"]),
        "--labels",
        str(paths["labels"]),
        "--features",
        str(paths["features"]),
        "--logos-csv",
        str(paths["logos"]),
        "--history",
        str(model["history"]),
        "--out",
        str(out),
        "--size-model",
        str(model["size_model"]),
    ]
    stage = load_stage("validate")
    assert stage.main(argv) == 0  # gates missed on a tiny model, but fail_on_gates is false

    names = {
        "metrics.json",
        "per_type.csv",
        "cv.json",
        "baselines.json",
        "gates.json",
        "predictions.csv",
        "report.md",
    }
    pngs = {
        f"plots/{n}.png"
        for n in ("pred_vs_actual", "per_type", "residuals", "training_curves", "ssim_by_type")
    }
    for name in names | pngs:
        assert (out / name).stat().st_size > 0, name
    assert (out / "plots/pred_vs_actual.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    m = json.loads((out / "metrics.json").read_text())
    pred = pd.read_csv(out / "predictions.csv", dtype={"image_id": str})
    assert list(pred.columns) == [
        "image_id",
        "logo_type",
        "origin",
        "size",
        *PARAM_NAMES,
        "actual",
        "predicted",
    ]
    logos = pd.read_csv(paths["logos"], dtype={"image_id": str})
    test_ids = set(logos.loc[logos.split == "test", "image_id"])
    assert set(pred.image_id) == test_ids and m["test/n"] == len(pred) == len(test_ids) * 8
    assert m["test/rmse"] == pytest.approx(
        np.sqrt(np.mean((pred.actual - pred.predicted) ** 2)), rel=1e-4
    )
    # `complex` has one test image (8 rows < 12): skipped, with its count.
    pt = pd.read_csv(out / "per_type.csv").set_index("logo_type")
    assert pt.loc["complex", "status"] == "skipped" and pt.loc["complex", "n"] == 8
    assert m["test/type/complex/n"] == 8 and "test/type/complex/pearson" not in m
    assert "test/type/simple/pearson" in m
    report = (out / "report.md").read_text()
    assert "skipped: 8 rows < validate.min_type_examples 12" in report
    from svg_quality.metrics import ranking_metrics
    from svg_quality.paramspace import VTRACER_DEFAULTS

    rank = ranking_metrics(pred, VTRACER_DEFAULTS)  # recomputed from the written predictions
    assert m["test/rank/logos"] == len(test_ids) == rank["logos"]
    for k in ("spearman_mean", "regret_mean"):
        assert m[f"test/rank/{k}"] == pytest.approx(rank[k], abs=1e-6), k
    # the tiny factory samples no defaults row: no share, written as null (not a made-up 0)
    assert rank["defaults_logos"] == m["test/rank/defaults_logos"] == 0
    assert m["test/rank/beats_defaults_share"] is None
    assert "## Ranking within a logo" in report
    # the size head: its own flat metrics file, and its section at the end of the one report
    size = json.loads((out / "size.json").read_text())
    assert size["size/test/n"] == m["test/n"] and "size/cv/rmse_log10_mean" in size
    assert all(k.startswith("size/") for k in size) and not any(k.startswith("size/") for k in m)
    assert report.count("## Size head (log10 SVG bytes)") == 1
    assert report.index("## Plots") < report.index("## Size head")
    # the same over each logo's sets inside label.local_box only
    from svg_quality.config import load_params
    from svg_quality.metrics import in_box

    box = load_params(params_path).label.local_box
    inside = pred.loc[in_box(pred, box)]
    assert 0 < len(inside) < len(pred)  # the tiny design draws sets on both sides
    rank_box = ranking_metrics(inside, VTRACER_DEFAULTS)
    assert m["test/rank_box/logos"] == rank_box["logos"]
    assert m["test/rank_box/regret_mean"] == pytest.approx(rank_box["regret_mean"], abs=1e-6)
    assert "sets inside label.local_box" in report

    cv = json.loads((out / "cv.json").read_text())
    assert cv["n_folds"] == 3 == len(cv["folds"]) and m["cv/folds"] == 3
    assert sum(f["n"] for f in cv["folds"]) == cv["rows"]
    assert m["cv/rmse_mean"] == pytest.approx(np.mean([f["rmse"] for f in cv["folds"]]))
    assert m["cv/rank/regret_mean_mean"] == pytest.approx(
        np.mean([f["rank/regret_mean"] for f in cv["folds"]])
    )

    base = json.loads((out / "baselines.json").read_text())
    assert set(base["baselines"]) == {"global_mean", "type_mean", "ridge", "hist_gbr"}
    assert m["baseline/best/rmse"] == pytest.approx(base["best_rmse"])
    verdict = (
        "lower than the best baseline"
        if base["mlp_beats_best"]
        else "The MLP does not beat the best baseline"
    )
    assert verdict in report

    gates = json.loads((out / "gates.json").read_text())
    assert m["gates/pass"] is gates["passed"]
    assert {g["gate"] for g in gates["gates"].values()} == {
        "pearson",
        "rmse",
        "acc_0_1",
        "type_pearson",
    }
    assert {"type_pearson/simple", "type_pearson/text"} <= set(gates["gates"])
    assert report.startswith("# Validation report: READY") is gates["passed"]
    failures = tracking.gate_failures(gates)  # what export reads before registering
    assert (failures == []) is gates["passed"]
    missed = [k for k, g in gates["gates"].items() if not g["passed"]]
    assert [f.split(" ")[0] for f in failures] == missed

    logged = mlflow.MlflowClient(uri).get_run(json.loads(model["run"].read_text())["run_id"])
    assert logged.data.metrics["test/rmse"] == pytest.approx(m["test/rmse"])
    assert logged.data.metrics["gates/pass"] == float(m["gates/pass"])
    assert "test/type/simple/pearson" in logged.data.metrics
    assert logged.data.metrics["test/rank/regret_mean"] == pytest.approx(m["test/rank/regret_mean"])
    assert logged.data.metrics["size/test/rmse_log10"] == pytest.approx(
        size["size/test/rmse_log10"]
    )
    arts = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(logged.info.run_id, "validate")}
    assert {"validate/report.md", "validate/metrics.json", "validate/plots"} <= arts

    # fail_on_gates: the same run exits non-zero, but only after writing every report.
    raw = yaml.safe_load(params_path.read_text())
    raw["validate"].update(fail_on_gates=True, cv_folds=0, gates={"pearson": 1.01})
    params_path.write_text(yaml.safe_dump(raw))
    (out / "report.md").unlink()
    assert stage.main(argv) == 1
    assert "NOT READY" in (out / "report.md").read_text()
    assert json.loads((out / "cv.json").read_text()) == {"enabled": False}


def test_cv_retrains_through_the_trainer_with_standardizer_per_fold(tmp_path: Path) -> None:
    from svg_quality.crossval import cross_validate
    from svg_quality.dataset import load_labeled
    from svg_quality.validation import SSIM_HEAD

    paths = write_tiny_data(tmp_path, n_images=24, samples=4)
    data = load_labeled(paths["labels"], paths["features"], paths["logos"])
    cfg = ModelConfig(inputs="stats", hidden=(8,), dropout=(0.0,))
    tcfg = TrainConfig(epochs=50, warmup_epochs=40, batch_size=16, device="cpu", patience=0)
    vcfg = ValidateConfig(cv_folds=2, cv_epochs=2, seed=5)
    cv = cross_validate(data, SSIM_HEAD, cfg, tcfg, vcfg, RANGES, progress=False)
    assert [f["epochs_run"] for f in cv["folds"]] == [2, 2]  # cv_epochs, warmup clipped to fit
    pool = data.rows[data.rows.split != "test"]
    assert cv["rows"] == len(pool) == sum(f["n"] for f in cv["folds"])
    assert all(f["stop_rows"] > 0 and f["train_rows"] > f["stop_rows"] for f in cv["folds"])
    assert np.isfinite(cv["summary"]["rmse_std"])


def test_cv_too_small_names_the_real_cause_not_a_fold_count_never_set(tmp_path: Path) -> None:
    """A 3-image folder splits 1/1/1; 2 images in train+val leave each fold 1 to train on."""
    from svg_quality.crossval import cross_validate
    from svg_quality.dataset import load_labeled
    from svg_quality.validation import SSIM_HEAD

    paths = write_tiny_data(tmp_path, n_images=3, samples=4)
    logos = pd.read_csv(paths["logos"])
    logos["logo_type"], logos["split"] = "simple", ["train", "val", "test"]
    logos.to_csv(paths["logos"], index=False)
    labels = pd.read_parquet(paths["labels"]).assign(logo_type="simple")
    labels.to_parquet(paths["labels"])
    data = load_labeled(paths["labels"], paths["features"], paths["logos"])
    cfg = ModelConfig(inputs="stats", hidden=(8,), dropout=(0.0,))
    vcfg = ValidateConfig(cv_folds=2, cv_epochs=2)
    with pytest.raises(ValueError) as exc:
        tcfg = TrainConfig(epochs=2, device="cpu")
        cross_validate(data, SSIM_HEAD, cfg, tcfg, vcfg, RANGES, progress=False)
    message = str(exc.value)
    assert "validate.cv_folds = 1" not in message
    assert "fold 1 trains on 1 image(s) (train+val hold 2 images, validate.cv_folds = 2)" in message
    assert "set validate.cv_folds: 0" in message
