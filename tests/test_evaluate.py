"""`svg-quality evaluate FOLDER` on a tiny real export: real prepare normalization, real
VTracer conversions and resvg renders, the exported ONNX predictor."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from svg_quality import synthetic
from svg_quality.cli import main
from svg_quality.config import LOGO_TYPES
from svg_quality.evaluate import evaluate_folder
from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS
from svg_quality.tracking import flatten_metrics


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six tiny synthetic logos in <type>/ folders, plus a corrupt and a too-small file."""
    from PIL import Image

    root = tmp_path_factory.mktemp("user_logos")
    for t, i in [(t, 0) for t in LOGO_TYPES] + [("simple", 1), ("text", 1)]:
        (root / t).mkdir(exist_ok=True)
        synthetic.generate(t, 3, i, 64).save(root / t / f"{t}_{i}.png")
    (root / "simple" / "bad.png").write_bytes(np.random.default_rng(0).bytes(300))
    Image.new("RGB", (4, 4), "red").save(root / "text" / "tiny.png")
    return root


@pytest.fixture(scope="module")
def export_dir(vtracer_export: dict[str, Path]) -> Path:
    return vtracer_export["out"]


@pytest.fixture(scope="module")
def evaluated(folder: Path, export_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("eval") / "report"
    res = evaluate_folder(folder, export_dir, out, samples=3, workers=2, progress=False)
    return res, out


def test_evaluate_reports_bad_files_and_scores_the_rest(evaluated) -> None:
    _, out = evaluated
    rejects = pd.read_csv(out / "rejects.csv")
    assert dict(zip(rejects["source"], rejects["reason"], strict=True)) == {
        "simple/bad.png": "corrupt",
        "text/tiny.png": "too_small",
    }
    pred = pd.read_csv(out / "predictions.csv", dtype={"image_id": str})
    assert pred["image_id"].nunique() == 6 and len(pred) == 18  # 6 logos x 3 sets
    assert set(pred["source"]) == {
        *(f"{t}/{t}_0.png" for t in LOGO_TYPES),
        "simple/simple_1.png",
        "text/text_1.png",
    }
    ok = pred[pred["status"] == "ok"]
    assert len(ok) >= 15 and ok["actual"].between(0, 1).all()
    assert pred["predicted"].between(0, 1).all()
    # VTracer's defaults are every logo's sample 0
    first = pred.groupby("image_id").head(1)
    for name in PARAM_NAMES:
        assert np.allclose(first[name], VTRACER_DEFAULTS[name]), name
    assert {"actual_log10_bytes", "predicted_log10_bytes"} <= set(pred.columns)


def test_metrics_json_has_overall_per_type_ranking_and_size(evaluated) -> None:
    res, out = evaluated
    m = json.loads((out / "metrics.json").read_text())
    assert m["files"] == {"logos": 6, "rejected": 2}
    assert set(m["type"]) == set(LOGO_TYPES)
    assert m["type"]["simple"]["n_images"] == 2 and m["type"]["gradient"]["n_images"] == 1
    ok = res.predictions[res.predictions["status"] == "ok"]
    rmse = float(np.sqrt(np.mean((ok["actual"] - ok["predicted"]) ** 2)))
    assert m["overall"]["rmse"] == pytest.approx(rmse) and m["overall"]["n"] == len(ok)
    assert m["rank"]["logos"] == 6 and 0 <= m["rank"]["regret_mean"] <= 1
    assert "rank" in m["type"]["text"] and m["size"]["n"] == len(ok)
    assert sum(m["label"]["status"].values()) == 18
    per_type = pd.read_csv(out / "per_type.csv")
    assert list(per_type["logo_type"]) == list(LOGO_TYPES)
    assert "top-1 regret" in (out / "report.md").read_text()


def test_rerun_reuses_the_cached_labels(evaluated, folder: Path, export_dir: Path) -> None:
    res, out = evaluated
    shards = sorted((out / ".work" / "labels").rglob("rows-*.jsonl"))
    assert shards, "the label cache moved into the report folder"
    again = evaluate_folder(folder, export_dir, out, samples=3, workers=2, progress=False)
    assert sorted((out / ".work" / "labels").rglob("rows-*.jsonl")) == shards  # nothing new
    pd.testing.assert_series_equal(again.predictions["actual"], res.predictions["actual"])


def test_a_folder_without_usable_logos_is_a_clear_error(tmp_path: Path, export_dir) -> None:
    (tmp_path / "logos" / "simple").mkdir(parents=True)
    (tmp_path / "logos" / "simple" / "bad.png").write_bytes(b"not an image")
    (tmp_path / "logos" / "loose.png").write_bytes(b"x")
    with pytest.raises(ValueError) as err:
        evaluate_folder(tmp_path / "logos", export_dir, tmp_path / "out", progress=False)
    msg = str(err.value)
    assert "no usable logo" in msg and "<logo_type>/<image file>" in msg and "simple" in msg
    assert "1 corrupt" in msg and "1 no_type_folder" in msg
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_cli_evaluate_prints_the_table_and_names_bad_input(
    folder: Path, export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "cli"
    argv = ["evaluate", str(folder), "--model", str(export_dir), "--out", str(out)]
    assert main([*argv, "--samples", "2", "--workers", "2", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "rejected simple/bad.png: corrupt" in captured.err
    assert "overall" in captured.out and "regret" in captured.out
    assert json.loads((out / "metrics.json").read_text())["label"]["samples_per_image"] == 2

    assert main(["evaluate", str(tmp_path / "nowhere"), "--model", str(export_dir)]) == 2
    err = capsys.readouterr().err
    assert "nowhere: not a folder" in err and "<logo_type>/<image file>" in err
    assert main(["evaluate", str(folder), "--model", str(tmp_path / "none")]) == 2
    assert "no exported model" in capsys.readouterr().err


def test_the_trained_model_scores_like_its_export(evaluated, vtracer_export, tmp_path) -> None:
    """validate.extra_sets' scorer (the model file, inputs built by featurize's code) gives
    the exported ONNX predictor's numbers, and the stage's step writes flat metrics."""
    from svg_quality.config import load_params
    from svg_quality.model import load_model
    from tests.conftest import load_stage

    res, _ = evaluated
    model, meta = load_model(vtracer_export["model"])
    params = load_params(vtracer_export["params"])
    params = dataclasses.replace(
        params, validate=dataclasses.replace(params.validate, extra_sets=(str(res.folder),))
    )
    args = argparse.Namespace(extra_work=tmp_path / "work")
    extra = load_stage("validate").validate_extra(args, model, meta, params)
    flat = flatten_metrics({"extra": extra})  # as report.flat_metrics writes them
    name = Path(res.folder).name
    assert flat[f"extra/{name}/files/rejected"] == 2
    assert flat[f"extra/{name}/label/samples_per_image"] == 8  # evaluate's default
    assert flat[f"extra/{name}/overall/n"] == flat[f"extra/{name}/label/status/ok"] >= 40
    assert f"extra/{name}/type/text/pearson" in flat and f"extra/{name}/rank/regret_mean" in flat

    from svg_quality.evaluate import ModelInfo, model_scorer, predictor_scorer

    onnx, info = predictor_scorer(vtracer_export["out"])
    torch_model = model_scorer(model, meta, info.vtracer)
    assert isinstance(info, ModelInfo)
    logo = next((tmp_path / "work" / name / "logos").glob("*.png"))
    raw = res.predictions.loc[:2, list(PARAM_NAMES)].to_numpy(np.float32)
    for side in info.sizes:  # the two scorers agree at every trained size
        np.testing.assert_allclose(
            torch_model(logo, raw, side)[0], onnx(logo, raw, side)[0], atol=1e-4
        )


def test_extra_sets_must_be_existing_folders(tmp_path: Path) -> None:
    from svg_quality.config import ValidateConfig, build

    with pytest.raises(ValueError, match=r"validate.extra_sets\[0\] = '/no/such' is invalid"):
        build(ValidateConfig, "validate", {"extra_sets": ["/no/such"]})
    with pytest.raises(ValueError, match=r"validate.extra_sets = 'icons' is invalid.*a list"):
        build(ValidateConfig, "validate", {"extra_sets": "icons"})
    with pytest.raises(ValueError, match=r"validate.extra_sets\[0\] = 3 is invalid"):
        build(ValidateConfig, "validate", {"extra_sets": [3]})
    (tmp_path / "a" / "icons").mkdir(parents=True)
    (tmp_path / "b" / "icons").mkdir(parents=True)
    ok = build(ValidateConfig, "validate", {"extra_sets": [str(tmp_path / "a" / "icons")]})
    assert ok.extra_sets == (str(tmp_path / "a" / "icons"),)
    both = [str(tmp_path / "a" / "icons"), str(tmp_path / "b" / "icons")]
    with pytest.raises(ValueError, match=r"extra_sets\[1\].*not named 'icons'"):
        build(ValidateConfig, "validate", {"extra_sets": both})
    assert ValidateConfig().extra_sets == ()


def test_evaluate_reports_each_size_a_logo_reaches(export_dir: Path, tmp_path: Path) -> None:
    """A size-aware model (trained at the view and twice it) is evaluated by default at its
    larger trained size too: a logo whose source reaches it is labelled there with the
    view's sets scaled, scored with the size input, and reported per size; a smaller
    source is never upsampled to it."""
    from svg_quality.serving.predictor import Predictor

    p = Predictor.load(export_dir)
    view, big = p.sizes
    folder = tmp_path / "logos"
    for t, side in (("simple", 3 * view), ("complex", 3 * view), ("text", view // 2)):
        (folder / t).mkdir(parents=True)
        synthetic.generate(t, 5, 0, side).save(folder / t / f"{t}.png")
    res = evaluate_folder(folder, export_dir, tmp_path / "report", samples=3, progress=False)
    pred = pd.read_csv(tmp_path / "report" / "predictions.csv", dtype={"image_id": str})
    assert list(pred.columns[:4]) == ["image_id", "logo_type", "source", "size"]
    counts = pred.groupby("logo_type")["size"].value_counts().to_dict()
    assert counts == {
        ("simple", view): 3,
        ("simple", big): 3,
        ("complex", view): 3,
        ("complex", big): 3,
        ("text", view): 3,
    }
    m = res.metrics
    assert set(m["by_size"]) == {str(view), str(big)}
    assert m["by_size"][str(big)]["n"] == int((pred["size"] == big).sum()) == 6
    assert m["overall"]["n"] == m["by_size"][str(view)]["n"]  # the headline stays at the view
    assert m["label"]["sizes"] == [view, big]
    # the rows at the larger size are predicted for it, from the view's pixels
    work = tmp_path / "report" / ".work" / "logos"
    for image_id, g in pred[pred["size"] == big].groupby("image_id"):
        logo = p.prepare(work / f"{image_id}.png", long_side=big)
        want = p.score_candidates(logo, g[list(PARAM_NAMES)].to_numpy(np.float32))[0]
        np.testing.assert_allclose(g["predicted"], want, atol=1e-5)
        at_view = pred[(pred["image_id"] == image_id) & (pred["size"] == view)]
        assert not np.allclose(at_view["predicted"], g["predicted"])
    assert "px" in (tmp_path / "report" / "report.md").read_text()


def test_validate_scores_extra_sets_at_the_trained_sizes(vtracer_export, tmp_path) -> None:
    """validate.extra_sets: a size-aware model file is also scored at its larger trained
    size on the logos that reach it (flat ``extra/<name>/by_size/<S>/...``)."""
    from svg_quality.config import load_params
    from svg_quality.model import load_model
    from tests.conftest import load_stage

    model, meta = load_model(vtracer_export["model"])
    view, big = meta["input"]["sizes"]
    folder = tmp_path / "extra"
    (folder / "simple").mkdir(parents=True)
    synthetic.generate("simple", 6, 0, 2 * big).save(folder / "simple" / "a.png")
    params = load_params(vtracer_export["params"])
    params = dataclasses.replace(
        params, validate=dataclasses.replace(params.validate, extra_sets=(str(folder),))
    )
    args = argparse.Namespace(extra_work=tmp_path / "work")
    flat = flatten_metrics(
        {"extra": load_stage("validate").validate_extra(args, model, meta, params)}
    )
    assert flat[f"extra/extra/by_size/{view}/n"] == flat[f"extra/extra/by_size/{big}/n"] == 8
    assert flat["extra/extra/overall/n"] == 8  # the headline at the view
