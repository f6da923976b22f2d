"""The predictor and the CLI: torch-free preprocessing, both runtimes, suggestions, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from svg_quality import cli
from svg_quality.backbone import PREPROCESSING, letterbox, preprocess
from svg_quality.paramspace import PARAM_NAMES, SPECS, VTRACER_DEFAULTS, sobol_candidates
from svg_quality.preprocess import backbone_input, load_logo
from svg_quality.preprocess import letterbox as np_letterbox
from svg_quality.serving.predictor import Predictor
from tests.export_fixtures import REPO_ROOT, repo_ranges

RANGES = repo_ranges()


def logo(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = np.full((h, w, 4), 255, np.uint8)
    arr[h // 4 : 3 * h // 4, w // 5 : 4 * w // 5, :3] = rng.integers(0, 255, 3)
    arr[::7, :, :3] = rng.integers(0, 255, (len(arr[::7]), w, 3))  # stripes: resampling matters
    arr[..., 3] = 255
    arr[: h // 6, : w // 6, 3] = 0  # a transparent corner, composited on white
    im = Image.fromarray(arr, "RGBA")
    if mode == "RGBA":
        return im
    return (
        Image.alpha_composite(Image.new("RGBA", im.size, "white"), im).convert("RGB").convert(mode)
    )


# --------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize(
    ("w", "h", "mode"),
    [(256, 96, "RGB"), (80, 200, "RGBA"), (224, 224, "RGB"), (300, 301, "P"), (17, 5, "L")],
)
def test_numpy_preprocessing_equals_backbone_torch_preprocessing(w: int, h: int, mode: str) -> None:
    im = logo(w, h, mode)
    rgb = load_logo(im, max(w, h))  # prepare's normalization at the logo's own size: no resize
    ours = backbone_input(rgb, PREPROCESSING)
    theirs = preprocess(Image.fromarray(rgb)).numpy()
    assert ours.shape == theirs.shape == (3, 224, 224) and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() <= 1e-6
    # The letterboxed pixels themselves are identical.
    np.testing.assert_array_equal(np_letterbox(rgb), np.asarray(letterbox(Image.fromarray(rgb))))


def test_load_logo_normalizes_like_prepare_and_names_bad_files(tmp_path: Path) -> None:
    from svg_quality.images import normalize

    im = logo(300, 120, "RGBA")
    np.testing.assert_array_equal(load_logo(im, 96), np.asarray(normalize(im, 96)))
    path = tmp_path / "logo.png"
    im.save(path)
    np.testing.assert_array_equal(load_logo(path, 96), load_logo(im, 96))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load_logo(bad, 96)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_logo(tmp_path / "missing.png", 96)


def test_sobol_candidates_cover_the_ranges_with_valid_integers() -> None:
    raw = sobol_candidates(RANGES, 2048, seed=0)
    assert raw.shape == (2048, 8) and raw.dtype == np.float32
    np.testing.assert_array_equal(raw, sobol_candidates(RANGES, 2048, seed=0))
    assert not np.array_equal(raw, sobol_candidates(RANGES, 2048, seed=1))
    for j, name in enumerate(PARAM_NAMES):
        lo, hi = RANGES[name]
        assert raw[:, j].min() >= lo and raw[:, j].max() <= hi, name
        if SPECS[name].kind is int:
            assert np.all(raw[:, j] == np.round(raw[:, j])), name
            assert set(np.unique(raw[:, j])) == set(range(int(lo), int(hi) + 1)), name
    assert sobol_candidates(RANGES, 5).shape == (5, 8)  # not a power of two


# --------------------------------------------------------------------------- the predictor


@pytest.fixture(scope="module")
def pipeline(export_pipeline: dict[str, Path]) -> dict[str, Path]:
    return export_pipeline


@pytest.fixture(scope="module")
def onnx_predictor(pipeline: dict[str, Path]) -> Predictor:
    return Predictor.load(pipeline["out"])


@pytest.mark.slow  # shares the session's real export (ResNet-50 to ONNX once)
def test_onnx_predictions_match_the_pytorch_model(
    pipeline: dict, onnx_predictor: Predictor
) -> None:
    """ONNX predictor on a logo file == model.pt on featurize's stored features and stats."""
    import pandas as pd

    from svg_quality.model import InputSpec, load_model

    mlp, meta = load_model(pipeline["model"])
    spec = InputSpec.from_meta(meta["input"])
    index = pd.read_csv(pipeline["features"] / "index.csv", dtype={"image_id": str})
    feats = np.load(pipeline["features"] / "features.npy")
    stats = np.load(pipeline["features"] / "stats.npy")
    params = [{}, {"filter_speckle": 9, "color_precision": 3}, {"length_threshold": 7.25}]
    raw = np.array([[{**VTRACER_DEFAULTS, **p}[n] for n in PARAM_NAMES] for p in params])
    for image_id, row in index.head(3).itertuples(index=False):
        path = pipeline["logos_dir"] / f"{image_id}.png"
        rows = spec.assemble(
            np.repeat(feats[row : row + 1], 3, 0), np.repeat(stats[row : row + 1], 3, 0), raw
        )
        with torch.inference_mode():
            want = mlp(torch.from_numpy(rows)).numpy()
        got = np.array([onnx_predictor.predict(path, p) for p in params])
        assert np.abs(got - want).max() <= 1e-4
        many = onnx_predictor.predict_many(path, params)
        assert many.shape == (3,) and np.abs(many - got).max() <= 1e-5


@pytest.mark.slow  # shares the session's real export (ResNet-50 to ONNX once)
def test_torch_runtime_agrees_with_onnx(pipeline: dict, onnx_predictor: Predictor) -> None:
    torch_predictor = Predictor.load(pipeline["out"], runtime="torch")
    path = next(pipeline["logos_dir"].glob("*.png"))
    params = [{"corner_threshold": 100}, {"max_iterations": 3, "path_precision": 2}]
    a = torch_predictor.predict_many(path, params)
    b = onnx_predictor.predict_many(path, params)
    assert np.abs(a - b).max() <= 1e-4
    assert (
        abs(torch_predictor.predict(path, params[0]) - onnx_predictor.predict(path, params[0]))
        <= 1e-4
    )


@pytest.mark.slow  # shares the session's real export (ResNet-50 to ONNX once)
def test_suggest_ranks_candidates_including_the_defaults(pipeline: dict, onnx_predictor) -> None:
    path = next(pipeline["logos_dir"].glob("*.png"))
    res = onnx_predictor.suggest(path, top_k=4, candidates=100, seed=2)
    # the defaults + 100 Sobol sets, less the few that integer rounding made identical
    assert 90 <= res.n_candidates <= 101 and len(res.ranked) == 4
    scores = [s.predicted_ssim for s in res.ranked]
    assert scores == sorted(scores, reverse=True) and scores[0] >= res.default.predicted_ssim
    assert res.default.is_default and res.default.params == {
        n: (int(v) if SPECS[n].kind is int else v) for n, v in VTRACER_DEFAULTS.items()
    }
    assert len({tuple(s.params.values()) for s in res.ranked}) == 4  # no duplicate sets
    for s in res.ranked:  # each suggestion's score is what predict gives for it
        assert abs(onnx_predictor.predict(path, s.params) - s.predicted_ssim) <= 1e-4
        onnx_predictor.check_params(s.params)  # inside the ranges, integers where needed


@pytest.mark.slow  # shares the session's real export (ResNet-50 to ONNX once)
def test_check_params_errors_name_the_problem(onnx_predictor: Predictor) -> None:
    assert onnx_predictor.check_params({}) == VTRACER_DEFAULTS
    with pytest.raises(ValueError, match="unknown VTracer parameter 'speckle'"):
        onnx_predictor.check_params({"speckle": 3})
    with pytest.raises(
        ValueError, match=r"filter_speckle = 99 is out of range; allowed: \[1, 32\]"
    ):
        onnx_predictor.check_params({"filter_speckle": 99})
    with pytest.raises(ValueError, match="color_precision = 2.5 is invalid; allowed: an integer"):
        onnx_predictor.check_params({"color_precision": 2.5})
    with pytest.raises(ValueError, match="runtime 'tensorrt'"):
        Predictor.load(onnx_predictor.export_dir, runtime="tensorrt")


@pytest.mark.slow  # shares the session's real export (ResNet-50 to ONNX once)
def test_onnx_predictor_works_without_torch(pipeline: dict, onnx_predictor: Predictor) -> None:
    path = next(pipeline["logos_dir"].glob("*.png"))
    code = f"""
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):  # as if torch were not installed
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {{name!r}}")

sys.meta_path.insert(0, NoTorch())
from svg_quality.serving.predictor import Predictor
p = Predictor.load({str(pipeline["out"])!r})
print(p.predict({str(path)!r}, {{"filter_speckle": 8}}))
print(p.suggest({str(path)!r}, top_k=1, candidates=32).ranked[0].predicted_ssim)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert float(lines[0]) == pytest.approx(
        onnx_predictor.predict(path, {"filter_speckle": 8}), abs=1e-6
    )
    assert 0.0 <= float(lines[1]) <= 1.0
    assert lines[2] == "[]"  # nothing imported (or tried to import) torch successfully


# --------------------------------------------------------------------------- CLI


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.slow  # shares the session's real export (ResNet-50 to ONNX once)
def test_cli_predict_and_suggest(pipeline: dict, onnx_predictor, capsys) -> None:
    path = str(next(pipeline["logos_dir"].glob("*.png")))
    model = str(pipeline["out"])
    rc, out, _ = run_cli(
        capsys,
        "predict",
        path,
        "--model",
        model,
        "--param",
        "filter_speckle=8",
        "--param",
        "length_threshold=5.5",
    )
    assert rc == 0
    value = float(re.search(r"predicted SSIM (\d\.\d+)", out).group(1))
    want = onnx_predictor.predict(path, {"filter_speckle": 8, "length_threshold": 5.5})
    assert value == pytest.approx(want, abs=1e-4)

    rc, out, _ = run_cli(
        capsys, "suggest", path, "--model", model, "--top-k", "3", "--candidates", "64", "--verify"
    )
    assert rc == 0
    ranked = re.findall(r"^ ?(\d)\. predicted SSIM (\d\.\d+)", out, flags=re.M)
    assert [r[0] for r in ranked] == ["1", "2", "3"]
    assert "65 parameter sets scored" in out
    verified = re.search(
        r"chosen SSIM (\d\.\d+) \(([\d,]+) bytes SVG\), defaults SSIM "
        r"(\d\.\d+) \(([\d,]+) bytes SVG\)",
        out,
    )
    assert verified, out
    assert 0 < float(verified.group(1)) <= 1 and 0 < float(verified.group(3)) <= 1


@pytest.mark.slow  # shares the session's real export (ResNet-50 to ONNX once)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "{missing}"], "no exported model"),
        (["--param", "speckle=3"], "unknown VTracer parameter 'speckle'"),
        (["--param", "filter_speckle=500"], "filter_speckle = 500 is out of range"),
        (["--param", "filter_speckle"], "write name=value"),
    ],
)
def test_cli_errors_exit_2_naming_the_problem(pipeline: dict, capsys, args, message) -> None:
    path = str(next(pipeline["logos_dir"].glob("*.png")))
    args = [a.format(missing=pipeline["out"].parent / "no_such_export") for a in args]
    if "--model" not in args:
        args += ["--model", str(pipeline["out"])]
    rc, _, err = run_cli(capsys, "predict", path, *args)
    assert rc == 2 and message in err


@pytest.mark.slow  # shares the session's real export (ResNet-50 to ONNX once)
def test_cli_unreadable_image_exits_2(pipeline: dict, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "logo.png"
    bad.write_text("this is not an image")
    for command in ("predict", "suggest"):
        rc, _, err = run_cli(capsys, command, str(bad), "--model", str(pipeline["out"]))
        assert rc == 2 and str(bad) in err and "cannot read the image" in err
    rc, _, err = run_cli(
        capsys, "predict", str(tmp_path / "nope.png"), "--model", str(pipeline["out"])
    )
    assert rc == 2 and "nope.png" in err


@pytest.mark.slow  # shares the session's real export (ResNet-50 to ONNX once)
def test_export_metadata_alone_describes_the_inputs(pipeline: dict) -> None:
    meta = json.loads((pipeline["out"] / "metadata.json").read_text())
    assert meta["param_names"] == list(PARAM_NAMES)
    assert meta["param_ranges"]["filter_speckle"] == [1.0, 32.0]
    assert len(meta["input"]["stats_mean"]) == len(meta["stats"]["names"]) == 17
