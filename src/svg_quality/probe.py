"""The probe: VTracer run once at its defaults on the logo, as model inputs.

``model.probe: true`` gives the model the logo's *real* SSIM and log10(SVG bytes) at
VTracer's defaults. Training reads them from the label stage's rows (label samples the
defaults for every logo: ``dataset.probe_values``); the predictor converts, renders and
scores the defaults once per logo (:func:`measure`), with the label stage's own
functions (:func:`svg_quality.vectorize.score`), before ranking any candidate. Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np

from svg_quality.paramspace import VTRACER_DEFAULTS

PROBE_NAMES: tuple[str, ...] = ("probe_ssim", "probe_log10_bytes")
# The VTracer settings besides the 8 parameters that a conversion depends on: a probe made
# with other settings is not the defaults conversion of this export (verify checks them).
SETTINGS: tuple[str, ...] = ("colormode", "hierarchical", "mode")


def values(ssim: float, svg_bytes: float) -> np.ndarray:
    """``float32 [2]``: the probe's inputs from one conversion's SSIM and SVG size."""
    return np.array([ssim, math.log10(max(float(svg_bytes), 1.0))], dtype=np.float32)


def measure(rgb: np.ndarray, vtracer: Mapping[str, Any]) -> tuple[np.ndarray, float, Any]:
    """Convert ``rgb`` (a normalized logo) at VTracer's defaults with the ``vtracer``
    settings (colormode, hierarchical, mode; an export's ``metadata["vtracer"]``), render
    and score it: ``(values [2], milliseconds, the vectorize.Score)``; verification reuses
    the Score as its defaults conversion."""
    import time

    # lazy: scipy; verify, the predictor and the CLI import this module
    from svg_quality.vectorize import ConversionFailed, RenderFailed, score

    cfg = SimpleNamespace(**{k: vtracer[k] for k in SETTINGS})
    t0 = time.perf_counter()
    try:
        s = score(rgb, VTRACER_DEFAULTS, cfg)  # type: ignore[arg-type]
    except ConversionFailed as exc:
        raise ConversionFailed(_failed(exc), panic=exc.panic) from exc
    except RenderFailed as exc:
        raise RenderFailed(_failed(exc)) from exc
    return values(s.ssim, s.svg_bytes), (time.perf_counter() - t0) * 1e3, s


def _failed(exc: Exception) -> str:
    return (
        "the probe (VTracer at its defaults) failed on this logo, so a model.probe "
        f"predictor cannot score it: {exc}"
    )
