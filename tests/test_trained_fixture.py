"""The session's tiny export (``conftest.vtracer_export``) holds a *trained* model, so the
tests that use it can fail (issue #30): an untrained one predicted SSIM 0.483-0.494 for
every parameter set, and the "never worse than the defaults" and objective tests passed
by keeping the defaults.

The first test is what an untrained model fails (its predictions spread ~0.01); the
second gives the size objective a logo where it must leave the defaults for a set the
model proposed, so the verified choice goes through the objective. Both read the
fixture's test-split logos (never trained on) and compare with real VTracer conversions
scored by the label contract.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from svg_quality.paramspace import PARAM_NAMES
from svg_quality.serving.predictor import Predictor

CANDIDATES = 64
REAL_SETS = 12  # of the 64, converted for real (~5 ms each at the fixture's 96 px)


@pytest.fixture(scope="module")
def pipeline(vtracer_export: dict[str, Path]) -> dict[str, Path]:
    return vtracer_export


@pytest.fixture(scope="module")
def predictor(pipeline: dict[str, Path]) -> Predictor:
    return Predictor.load(pipeline["out"])


def held_out(pipeline: dict[str, Path], logo_type: str) -> Path:
    """The fixture's test-split logo of ``logo_type``."""
    logos = pd.read_csv(pipeline["logos_csv"], dtype={"image_id": str})
    row = logos[(logos["split"] == "test") & (logos["logo_type"] == logo_type)].iloc[0]
    return pipeline["logos_dir"] / row["path"]


@pytest.mark.parametrize("logo_type", ["simple", "text"])
def test_predictions_follow_the_parameters(
    pipeline: dict[str, Path], predictor: Predictor, logo_type: str
) -> None:
    """Over suggest's 64 Sobol sets the predicted SSIM spreads (the untrained model's
    spread was ~0.01), and on a dozen of them the predicted SSIM and SVG size rise and
    fall with the real ones."""
    from svg_quality.images import load_rgb
    from svg_quality.vectorize import score
    from svg_quality.verify import candidate_matrix, vtracer_config

    path = held_out(pipeline, logo_type)
    key = tuple((n, *map(float, predictor.ranges[n])) for n in PARAM_NAMES)
    raw = candidate_matrix(key, CANDIDATES, 0)
    ssim, log10_bytes = predictor.score_candidates(predictor.prepare(path), raw)
    assert ssim.max() - ssim.min() > 0.05, f"predicted SSIM {ssim.min():.3f}-{ssim.max():.3f}"

    rgb, cfg = load_rgb(path), vtracer_config(predictor.metadata)
    picks = np.linspace(0, len(raw) - 1, REAL_SETS).astype(int)
    real = [score(rgb, dict(zip(PARAM_NAMES, raw[i], strict=True)), cfg) for i in picks]
    r = float(np.corrcoef(ssim[picks], [s.ssim for s in real])[0, 1])
    assert r > 0.3, f"Pearson r {r:.3f} between predicted and real SSIM on {REAL_SETS} sets"
    # the size head too (untrained, it predicted ~970 bytes for every set)
    r = float(np.corrcoef(log10_bytes[picks], np.log10([s.svg_bytes for s in real]))[0, 1])
    assert r > 0.5, f"Pearson r {r:.3f} between predicted and real log10 bytes"


def test_size_objective_wins_with_a_model_candidate(
    pipeline: dict[str, Path], predictor: Predictor
) -> None:
    """On the held-out simple logo, suggest's size objective returns a set the model found:
    smaller than VTracer's defaults and than every path_precision fallback that reaches the
    bar, at an SSIM within the tolerance of the defaults' (all real conversions): the
    choice goes through the objective, not the "keep the defaults" exit."""
    from svg_quality.objectives import DEFAULT_TOLERANCE
    from svg_quality.verify import suggest

    res = suggest(
        predictor, held_out(pipeline, "simple"), objective="size", verify=2, candidates=CANDIDATES
    )
    default, chosen = res.verified[0], res.chosen
    assert default.candidate.origin == "defaults" and default.error is None
    assert {v.candidate.origin for v in res.verified[1:]} == {"fallback", "model"}
    assert chosen.candidate.origin == "model" and not res.fell_back, res.to_dict()["verified"]
    assert chosen.candidate.params != default.candidate.params
    assert chosen.svg_bytes < default.svg_bytes
    assert chosen.ssim >= default.ssim - DEFAULT_TOLERANCE
    bar = default.ssim - DEFAULT_TOLERANCE
    for fb in (v for v in res.verified if v.candidate.origin == "fallback" and v.ssim >= bar):
        assert chosen.svg_bytes < fb.svg_bytes, (chosen.svg_bytes, fb.to_dict())
