"""Suggest by an objective, then verify with real VTracer so the answer is never worse.

    logo --predictor--> SSIM and bytes predicted for VTracer's defaults + N Sobol sets
         --objectives.rank--> the K best by the objective
         --vectorize.score (the label contract)--> actual SSIM and bytes of those K + defaults
         --objectives.best on the actual figures--> the verified choice (else the defaults)

The label contract: the logo normalized as prepare does, its PNG converted by VTracer
with the 8 parameters (plus ``vtracer`` colormode/hierarchical/mode from the export's
metadata), the SVG rendered by resvg at the logo's size on white, SSIM against the logo,
clipped to [0, 1]; exactly what the label stage measures.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from svg_quality import objectives
from svg_quality.paramspace import PARAM_NAMES, SPECS, VTRACER_DEFAULTS
from svg_quality.probe import SETTINGS


@dataclass(frozen=True)
class Candidate:
    """One parameter set with the model's predictions (``predicted_bytes`` None without
    a size head)."""

    params: dict[str, float]
    predicted_ssim: float
    predicted_bytes: float | None
    is_default: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "predicted_ssim": self.predicted_ssim,
            "predicted_bytes": self.predicted_bytes,
            "is_default": self.is_default,
        }


@dataclass(frozen=True)
class Verified:
    """A candidate converted for real; ``error`` set (and figures None) when VTracer or
    resvg failed on it."""

    candidate: Candidate
    ssim: float | None
    svg_bytes: int | None
    n_paths: int | None
    convert_ms: float
    svg: str = field(repr=False, default="")
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.candidate.to_dict(),
            "ssim": self.ssim,
            "svg_bytes": self.svg_bytes,
            "n_paths": self.n_paths,
            "convert_ms": self.convert_ms,
            "error": self.error,
        }


@dataclass(frozen=True)
class Suggestions:
    """Ranked candidates by the objective; with verification, the verified choice too."""

    objective: str
    threshold: float | None  # the predicted-SSIM bar of the size objective
    ranked: list[Candidate]  # best first, top_k of them
    default: Candidate
    pareto: list[Candidate] | None
    n_candidates: int
    score_ms: float
    verified: list[Verified] | None = None  # defaults first, then the K verified candidates
    chosen: Verified | None = None
    fell_back: bool = False  # True when no verified candidate beat the defaults
    verify_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "objective": self.objective,
            "threshold": self.threshold,
            "n_candidates": self.n_candidates,
            "score_ms": self.score_ms,
            "default": self.default.to_dict(),
            "ranked": [c.to_dict() for c in self.ranked],
        }
        if self.pareto is not None:
            out["pareto"] = [c.to_dict() for c in self.pareto]
        if self.verified is not None:
            out["verified"] = [v.to_dict() for v in self.verified]
            out["chosen"] = self.chosen.to_dict() if self.chosen else None
            out["fell_back"] = self.fell_back
            out["verify_ms"] = self.verify_ms
        return out


def _params_of(row: np.ndarray) -> dict[str, float]:
    return {
        n: (round(float(v)) if SPECS[n].kind is int else round(float(v), 4))
        for n, v in zip(PARAM_NAMES, row, strict=True)
    }


def _candidate(raw: np.ndarray, ssim: np.ndarray, lg: np.ndarray | None, i: int) -> Candidate:
    return Candidate(
        params=_params_of(raw[i]),
        predicted_ssim=float(ssim[i]),
        predicted_bytes=None if lg is None else float(10 ** lg[i]),
        is_default=i == 0,
    )


def _distinct(raw: np.ndarray, order: np.ndarray, k: int) -> list[int]:
    """The first ``k`` candidates in ``order`` that differ from the defaults (row 0) and
    from each other once rounded (integer parameters make a few Sobol sets identical), so
    no verification conversion is spent twice on one parameter set."""
    seen = {tuple(_params_of(raw[0]).values())}
    out: list[int] = []
    for i in order:
        key = tuple(_params_of(raw[int(i)]).values())
        if key not in seen:
            seen.add(key)
            out.append(int(i))
            if len(out) == k:
                break
    return out


@functools.lru_cache(maxsize=8)
def candidate_matrix(ranges: tuple, n: int, seed: int) -> np.ndarray:
    """VTracer's defaults (row 0) and ``n`` Sobol sets, duplicates dropped; the same for
    every logo, so computed once per (ranges, n, seed). Read-only."""
    from svg_quality.paramspace import sobol_candidates

    rng = {name: (lo, hi) for name, lo, hi in ranges}
    default = np.array([[VTRACER_DEFAULTS[k] for k in PARAM_NAMES]], dtype=np.float32)
    raw = np.concatenate([default, sobol_candidates(rng, n, seed)])
    # integer rounding makes a few Sobol sets identical: keep the first of each
    _, first = np.unique(raw, axis=0, return_index=True)
    raw = raw[np.sort(first)]  # index 0 (the defaults) always survives
    raw.setflags(write=False)
    return raw


def suggest(
    predictor: Any,
    image: Any,
    *,
    objective: str = "quality",
    top_k: int = 5,
    candidates: int = 2048,
    seed: int = 0,
    min_ssim: float | None = None,
    tolerance: float = objectives.DEFAULT_TOLERANCE,
    pareto: bool = False,
    verify: int = 0,
    vtracer_cfg: Any = None,
) -> Suggestions:
    """Rank VTracer's defaults and ``candidates`` Sobol sets by ``objective``; with
    ``verify`` = K > 0 convert the K best and the defaults and choose on the real figures.

    ``predictor`` is a :class:`svg_quality.serving.predictor.Predictor` (anything with ``prepare``,
    ``ranges`` and ``score_candidates(logo, raw) -> (ssim [N], log10 bytes [N] | None)``).
    """
    if top_k < 1:
        raise ValueError(f"top_k = {top_k} is invalid; allowed: at least 1")
    if verify < 0:
        raise ValueError(f"verify = {verify} is invalid; allowed: 0 (off) or at least 1")
    logo = predictor.prepare(image)
    t0 = time.perf_counter()
    key = tuple((n, *map(float, predictor.ranges[n])) for n in PARAM_NAMES)
    raw = candidate_matrix(key, candidates, seed)
    ssim, lg = predictor.score_candidates(logo, raw)
    r = objectives.rank(ssim, lg, objective, default=0, min_ssim=min_ssim, tolerance=tolerance)
    ranked = [_candidate(raw, ssim, lg, int(i)) for i in r.order[:top_k]]
    front = None
    if pareto:
        if lg is None:
            objectives.rank(ssim, lg, "size")  # raises the "no size head" error
        front = [_candidate(raw, ssim, lg, int(i)) for i in objectives.pareto_front(ssim, lg)]
    res = Suggestions(
        objective=objective,
        threshold=r.threshold,
        ranked=ranked,
        default=_candidate(raw, ssim, lg, 0),
        pareto=front,
        n_candidates=int(raw.shape[0]),
        score_ms=(time.perf_counter() - t0) * 1e3,
    )
    if verify:
        picks = [_candidate(raw, ssim, lg, i) for i in _distinct(raw, r.order, verify)]
        cfg = vtracer_cfg if vtracer_cfg is not None else vtracer_config(predictor.metadata)
        res = verify_choice(
            res,
            logo.rgb,
            picks,
            cfg,
            min_ssim=min_ssim,
            tolerance=tolerance,
            defaults_score=_probe_conversion(logo, cfg),
        )
    return res


def _probe_conversion(logo: Any, cfg: Any) -> Any:
    """The probe's conversion of the defaults (a model.probe predictor made it in prepare)
    when it used ``cfg``'s settings, so verification need not convert them again."""
    done = getattr(logo, "probe_score", None)
    used = getattr(logo, "probe_vtracer", None)
    if done is None or used is None:
        return None
    same = all(used.get(k) == getattr(cfg, k) for k in SETTINGS)
    return done if same else None


def vtracer_config(metadata: Mapping[str, Any]) -> Any:
    """The export's VTracer settings (colormode, hierarchical, mode, ranges) as a config."""
    from svg_quality.config import VtracerConfig

    return VtracerConfig(
        **metadata["vtracer"], ranges={k: tuple(v) for k, v in metadata["param_ranges"].items()}
    )


def convert_all(
    rgb: np.ndarray, cands: list[Candidate], vtracer_cfg: Any, done: Mapping[int, Any] | None = None
) -> list[Verified]:
    """Convert and score each candidate with the label contract; failures are kept.
    ``done``: candidate index -> a vectorize.Score already made of it (not redone)."""
    from PIL import Image

    from svg_quality.ssim import SSIMReference
    from svg_quality.vectorize import ConversionFailed, RenderFailed, score

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    png, ref = buf.getvalue(), SSIMReference(rgb)
    out, done = [], done or {}
    for j, c in enumerate(cands):
        if j in done:
            s = done[j]
            out.append(Verified(c, s.ssim, s.svg_bytes, s.n_paths, s.convert_ms, s.svg))
            continue
        t0 = time.perf_counter()
        try:
            s = score(rgb, c.params, vtracer_cfg, png_bytes=png, reference=ref)
        except (ConversionFailed, RenderFailed) as exc:
            out.append(
                Verified(c, None, None, None, (time.perf_counter() - t0) * 1e3, "", str(exc))
            )
            continue
        out.append(Verified(c, s.ssim, s.svg_bytes, s.n_paths, s.convert_ms, s.svg))
    return out


def choose(
    verified: list[Verified],
    objective: str,
    *,
    min_ssim: float | None = None,
    tolerance: float = objectives.DEFAULT_TOLERANCE,
) -> tuple[Verified, bool]:
    """The best verified set by ``objective`` (``verified[0]`` is the defaults) and whether
    it fell back to the defaults. Failed conversions never win; if the defaults themselves
    failed, the best successful candidate is returned (a conversion beats none)."""
    ok = [v for v in verified if v.error is None]
    if not ok:
        raise RuntimeError(
            "VTracer failed on the defaults and on every candidate: "
            + "; ".join(str(v.error) for v in verified[:3])
        )
    s = np.array([v.ssim for v in ok], dtype=np.float64)
    b = np.log10(np.array([v.svg_bytes for v in ok], dtype=np.float64))
    if verified[0].error is not None:
        # No defaults to measure against: the highest actual SSIM (a conversion beats none).
        return ok[int(objectives.rank(s, b, "quality").order[0])], False
    i = objectives.best(s, b, objective, default=0, min_ssim=min_ssim, tolerance=tolerance)
    return ok[i], i == 0


def verify_choice(
    res: Suggestions,
    rgb: np.ndarray,
    picks: list[Candidate],
    vtracer_cfg: Any,
    *,
    min_ssim: float | None = None,
    tolerance: float = objectives.DEFAULT_TOLERANCE,
    defaults_score: Any = None,
) -> Suggestions:
    """``res`` with the defaults and ``picks`` converted and the verified choice made;
    ``defaults_score``: the defaults' conversion when already made (the probe's)."""
    t0 = time.perf_counter()
    done = {} if defaults_score is None else {0: defaults_score}
    verified = convert_all(rgb, [res.default, *picks], vtracer_cfg, done)
    chosen, fell_back = choose(verified, res.objective, min_ssim=min_ssim, tolerance=tolerance)
    return dataclasses.replace(
        res,
        verified=verified,
        chosen=chosen,
        fell_back=fell_back,
        verify_ms=(time.perf_counter() - t0) * 1e3,
    )
