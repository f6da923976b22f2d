"""The exported predictor with the VTracer-aware inputs: tables, lookup and probe at inference.

One real export of a ``stats+vtracer+probe`` model with its size head (tiny upstream data,
real VTracer tables: ``conftest.vtracer_export``), shared with the convert tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS
from svg_quality.serving.predictor import Predictor
from svg_quality.serving.runtime import FILES
from tests.export_fixtures import REPO_ROOT

PARAMS = [{}, {"filter_speckle": 9, "color_precision": 3}, {"layer_difference": 40.0}]


@pytest.fixture(scope="module")
def pipeline(vtracer_export: dict[str, Path]) -> dict[str, Path]:
    return vtracer_export


@pytest.mark.slow
def test_export_verifies_every_format_and_records_the_layout(pipeline: dict) -> None:
    out = pipeline["out"]
    report = json.loads((out / FILES["report"]).read_text())
    meta = json.loads((out / FILES["metadata"]).read_text())
    assert {"onnx_candidates", "onnx_e2e", "size/onnx_candidates", "size/onnx_e2e"} <= set(
        report["parity"]
    )
    for name, p in report["parity"].items():
        assert p["passed"] and p["max_abs_diff"] <= p["tolerance"], name
    layout = [s["name"] for s in meta["input"]["layout"]]
    assert layout == ["stats", "vtracer", "probe", "size", "params"]
    assert meta["input"]["tables"]["version"] >= 1 and meta["input"]["cond_names"]
    view = meta["logo"]["image_size"]
    assert meta["input"]["sizes"] == [view, 2 * view]  # the long sides it was labelled at
    cand = {p["name"]: p["shape"] for p in meta["signatures"]["candidates"]["inputs"]}
    assert list(cand) == ["params", "stats", "vtracer", "probe", "long_side"]
    assert cand["long_side"] == [1, 1]  # one size per logo, like the other per-logo blocks


@pytest.mark.slow
def test_predictor_builds_the_training_inputs_and_predictions(pipeline: dict) -> None:
    """On a logo file, the ONNX predictor computes the same statistics and VTracer tables as
    featurize, looks the vtracer block up like training (dataset.conditioned), measures the
    probe with the label stage's own conversion, and predicts what model.pt does on those,
    at each long side the logo was labelled at (the size input)."""
    from svg_quality.dataset import conditioned, load_labeled
    from svg_quality.images import load_rgb
    from svg_quality.inputspec import InputSpec
    from svg_quality.model import load_model
    from svg_quality.vectorize import score

    predictor = Predictor.load(pipeline["out"])
    mlp, meta = load_model(pipeline["model"])
    spec = InputSpec.from_meta(meta["input"])
    data = load_labeled(pipeline["labels"], pipeline["features"], pipeline["logos_csv"])
    index = pd.read_csv(pipeline["features"] / "index.csv", dtype={"image_id": str})
    cfg = SimpleNamespace(**predictor.metadata["vtracer"])
    assert spec.uses_size and len(data.sizes) == 2
    cases = [(i, r, s) for i, r in index.head(3).itertuples(index=False) for s in data.sizes]
    seen = set()
    for image_id, row, size in cases:
        path = pipeline["logos_dir"] / f"{image_id}.png"
        logo = predictor.prepare(path, long_side=size)
        assert logo.long_side == size
        np.testing.assert_allclose(logo.stats, data.stats[row], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(logo.tables, data.tables[row], rtol=1e-6, atol=1e-6)
        want_probe = score(load_rgb(path), VTRACER_DEFAULTS, cfg)
        assert logo.probe[0] == pytest.approx(want_probe.ssim, abs=1e-6)
        assert 10 ** logo.probe[1] == pytest.approx(want_probe.svg_bytes, rel=1e-6)

        labelled = data.rows[(data.rows["image_id"] == image_id) & (data.rows["size"] == size)]
        raw = labelled[list(PARAM_NAMES)].to_numpy(dtype=np.float32)
        blocks = spec.complete({**predictor.logo_blocks(logo, None), "params": raw})
        np.testing.assert_allclose(blocks["vtracer"], conditioned(data, labelled), atol=1e-6)

        rows = spec.assemble(
            None,
            np.repeat(data.stats[row : row + 1], len(raw), 0),
            raw,
            cond=conditioned(data, labelled),
            probe=np.repeat(logo.probe[None], len(raw), 0),
            long_side=np.full((len(raw), 1), size, np.float32),
        )
        with torch.inference_mode():
            want = mlp(torch.from_numpy(rows)).numpy()
        np.testing.assert_allclose(predictor.predict_many(logo, raw), want, atol=1e-5)
        assert predictor.predict(logo, labelled[list(PARAM_NAMES)].iloc[0].to_dict()) == (
            pytest.approx(float(want[0]), abs=1e-4)
        )
        seen.add((image_id, tuple(np.round(want, 6))))
    # the size input changes the predictions: a logo's rows differ between its two sizes
    assert len(seen) == len(cases)


@pytest.mark.slow
def test_torch_runtime_agrees_and_onnx_runs_without_torch(pipeline: dict) -> None:
    path = next(pipeline["logos_dir"].glob("*.png"))
    onnx = Predictor.load(pipeline["out"])
    raw = np.array([[{**VTRACER_DEFAULTS, **p}[n] for n in PARAM_NAMES] for p in PARAMS])
    a = onnx.score_candidates(onnx.prepare(path), raw)
    b = Predictor.load(pipeline["out"], runtime="torch").score_candidates(onnx.prepare(path), raw)
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)
    np.testing.assert_allclose(a[1], b[1], atol=1e-4)
    code = f"""
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):  # as if torch were not installed
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {{name!r}}")

sys.meta_path.insert(0, NoTorch())
from svg_quality.serving.predictor import Predictor
p = Predictor.load({str(pipeline["out"])!r})
res = p.suggest({str(path)!r}, top_k=1, candidates=32)
print(res.default.predicted_ssim)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert float(lines[0]) == pytest.approx(float(a[0][0]), abs=1e-6)
    assert lines[1] == "[]"


def test_verification_reuses_the_probe_conversion_of_the_defaults(pipeline: dict) -> None:
    """A probe predictor has already converted the defaults in prepare: verification takes
    that conversion as its defaults row (same SVG, same figures) instead of a second one,
    and converts them afresh when asked for other VTracer settings."""
    import dataclasses

    from svg_quality.verify import suggest, vtracer_config

    predictor = Predictor.load(pipeline["out"])
    logo = predictor.prepare(next(pipeline["logos_dir"].glob("*.png")))
    res = suggest(predictor, logo, top_k=1, candidates=64, verify=2)
    first, done = res.verified[0], logo.probe_score
    assert first.candidate.is_default and first.svg == done.svg
    assert (first.ssim, first.svg_bytes, first.convert_ms) == (
        done.ssim,
        done.svg_bytes,
        done.convert_ms,  # the probe's own timing: nothing was converted again
    )
    other = dataclasses.replace(vtracer_config(predictor.metadata), hierarchical="cutout")
    again = suggest(predictor, logo, top_k=1, candidates=64, verify=1, vtracer_cfg=other)
    assert again.verified[0].convert_ms != done.convert_ms
    assert again.verified[0].error is None
