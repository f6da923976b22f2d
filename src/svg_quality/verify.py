"""Suggest by an objective, then verify with real VTracer so the answer is never worse.

    logo --the model's view (prepare: long side image_size)--> SSIM and bytes predicted
         for VTracer's defaults + N Sobol sets
         --objectives.verify_order--> the K best to verify
         --at the input's own size: vectorize.score--> actual SSIM, bytes and colour error
           of those K (pixel parameters scaled to the size), VTracer's defaults, and the
           defaults at path_precision 2 and 0 (the one-line tweaks)
         --choose: colour within bound, then objectives.best--> the verified choice

Verification is at the size the person looks at: the input's own pixels (a long side
above ``max_side`` is resampled down to it), traced, rendered at that size and compared
by the label contract's SSIM (luma, Gaussian window; :mod:`svg_quality.ssim`) and by the
mean CIEDE2000 colour error (:mod:`svg_quality.colour`), which luma SSIM cannot see. A
candidate whose colour error exceeds the defaults' by more than ``colour_tolerance`` is
refused, whatever its SSIM.

The model sees every logo at its view (long side ``image_size``, 256 px) and expresses
parameters in that view's frame, where a ``filter_speckle`` of 4 px is 1.6% of the logo;
the same set at 1024 px means a 16 px speck. :func:`scale_params` maps a candidate to the
input's size (``filter_speckle`` and ``length_threshold`` times long side / image_size,
``path_precision``'s grid likewise) so it means there what the model scored. A model
trained on labels at several long sides (``data.sizes``) also takes the size: it scores
the candidates for the size they will be traced at (clamped to the trained sizes).
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
from svg_quality.colour import ColourReference
from svg_quality.config import VtracerConfig
from svg_quality.paramspace import (
    PARAM_NAMES,
    SPECS,
    VTRACER_DEFAULTS,
    scale_params,
    sobol_candidates,
)
from svg_quality.preprocess import load_full
from svg_quality.probe import SETTINGS

MAX_SIDE = 2048  # px: a longer input is traced at this long side (and the output says so)
COLOUR_TOLERANCE = 0.5  # mean CIEDE2000 a candidate may add to the defaults' colour error
FALLBACK_PRECISIONS = (2, 0)  # VTracer's defaults are also verified at these path_precision
SCALINGS = ("scaled", "unscaled")


@dataclass(frozen=True)
class Candidate:
    """One parameter set with the model's predictions (``predicted_bytes`` None without
    a size head)."""

    params: dict[str, float]
    predicted_ssim: float
    predicted_bytes: float | None
    is_default: bool
    fallback: bool = False  # VTracer's defaults at another path_precision

    @property
    def origin(self) -> str:
        """Where the set comes from: ``defaults``, ``fallback`` or ``model``."""
        return "defaults" if self.is_default else "fallback" if self.fallback else "model"

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "predicted_ssim": self.predicted_ssim,
            "predicted_bytes": self.predicted_bytes,
            "is_default": self.is_default,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class Verified:
    """A candidate converted for real; ``error`` set (and figures None) when VTracer or
    resvg failed on it."""

    candidate: Candidate  # its params are the ones VTracer got (at the verified size)
    ssim: float | None
    svg_bytes: int | None
    n_paths: int | None
    convert_ms: float
    svg: str = field(repr=False, default="")
    error: str | None = None
    delta_e: float | None = None  # mean CIEDE2000 vs the logo (None: not measured)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.candidate.to_dict(),
            "ssim": self.ssim,
            "svg_bytes": self.svg_bytes,
            "n_paths": self.n_paths,
            "delta_e": self.delta_e,
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
    fell_back: bool = False  # True when no model candidate won (defaults or a fallback did)
    verify_ms: float = 0.0
    size: tuple[int, int] | None = None  # (width, height) verified at; None: the model's view
    input_size: tuple[int, int] | None = None  # the input's own (width, height)
    scale: float = 1.0  # verified long side / the model's view's: pixel parameters' factor
    colour_refused: int = 0  # candidates better by the objective but refused for colour
    pixels: np.ndarray | None = field(repr=False, default=None)  # uint8 [H, W, 3] verified on

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
            out["size"] = self.size
            out["input_size"] = self.input_size
            out["scale"] = self.scale
            out["colour_refused"] = self.colour_refused
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
    rng = {name: (lo, hi) for name, lo, hi in ranges}
    default = np.array([[VTRACER_DEFAULTS[k] for k in PARAM_NAMES]], dtype=np.float32)
    raw = np.concatenate([default, sobol_candidates(rng, n, seed)])
    # integer rounding makes a few Sobol sets identical: keep the first of each
    _, first = np.unique(raw, axis=0, return_index=True)
    raw = raw[np.sort(first)]  # index 0 (the defaults) always survives
    raw.setflags(write=False)
    return raw


def fallbacks(default: Candidate, ssim: np.ndarray, lg: np.ndarray | None) -> list[Candidate]:
    """VTracer's defaults at each of :data:`FALLBACK_PRECISIONS` (``ssim``/``lg``: the
    model's predictions for them, in that order)."""
    return [
        Candidate(
            params={**default.params, "path_precision": p},
            predicted_ssim=float(ssim[i]),
            predicted_bytes=None if lg is None else float(10 ** lg[i]),
            is_default=False,
            fallback=True,
        )
        for i, p in enumerate(FALLBACK_PRECISIONS)
    ]


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
    max_side: int = MAX_SIDE,
    colour_tolerance: float = COLOUR_TOLERANCE,
    scaling: str = "scaled",
    score_all: bool = True,
) -> Suggestions:
    """Rank VTracer's defaults and ``candidates`` Sobol sets by ``objective``; with
    ``verify`` = K > 0 convert the K best, VTracer's defaults and their path_precision
    fallbacks and choose on the real figures.

    ``image`` is a path, PIL image or uint8 array (verified at its own size, a long side
    above ``max_side`` resampled to it), or a prepared ``Logo`` (verified at the model's
    view). Without ``verify`` only the model's view is computed. ``predictor`` is a :class:`svg_quality.serving.predictor.Predictor` (anything
    with ``prepare``, ``ranges``, ``min_size`` and ``score_candidates(logo, raw) -> (ssim
    [N], log10 bytes [N] | None)``). ``scaling``: ``scaled`` maps the pixel parameters to
    the verified size (:func:`scale_params`), ``unscaled`` gives VTracer the model's values.
    ``score_all`` False: with the size objective only the verified sets that can win are
    rendered and scored (the same choice; ``verified`` then lists those and the failures).
    """
    if top_k < 1:
        raise ValueError(f"top_k = {top_k} is invalid; allowed: at least 1")
    if verify < 0:
        raise ValueError(f"verify = {verify} is invalid; allowed: 0 (off) or at least 1")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling {scaling!r} is invalid; allowed: {', '.join(SCALINGS)}")
    if np.isnan(colour_tolerance) or colour_tolerance < 0:
        raise ValueError(
            f"colour tolerance = {colour_tolerance:g} is invalid; allowed: >= 0 (inf: no check)"
        )
    full = input_size = None
    if verify and _is_image(image):
        full, input_size = load_full(image, max_side, getattr(predictor, "min_size", 1))
        logo = predictor.prepare(full, long_side=max(full.shape[:2]))  # scored at its size
    else:
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
    if not verify:
        return res
    order = objectives.verify_order(
        ssim, lg, objective, default=0, min_ssim=min_ssim, tolerance=tolerance
    )
    picks = [_candidate(raw, ssim, lg, i) for i in _distinct(raw, order, verify)]
    fb_raw = np.repeat(raw[:1], len(FALLBACK_PRECISIONS), axis=0)
    fb_raw[:, PARAM_NAMES.index("path_precision")] = FALLBACK_PRECISIONS
    extra = fallbacks(res.default, *predictor.score_candidates(logo, fb_raw))
    cfg = vtracer_cfg if vtracer_cfg is not None else vtracer_config(predictor.metadata)
    rgb, factor = logo.rgb, 1.0
    if full is not None:
        rgb, factor = full, max(full.shape[:2]) / max(logo.rgb.shape[:2])
        if scaling == "scaled":
            picks = [dataclasses.replace(c, params=scale_params(c.params, factor)) for c in picks]
    same_pixels = rgb.shape == logo.rgb.shape and np.array_equal(rgb, logo.rgb)
    res = verify_choice(
        res,
        rgb,
        [*extra, *picks],
        cfg,
        min_ssim=min_ssim,
        tolerance=tolerance,
        colour_tolerance=colour_tolerance,
        defaults_score=_probe_conversion(logo, cfg) if same_pixels else None,
        score_all=score_all,
    )
    h, w = rgb.shape[:2]
    return dataclasses.replace(
        res,
        size=(w, h) if full is not None else None,
        input_size=input_size,
        scale=factor,
        pixels=rgb,
    )


def _is_image(image: Any) -> bool:
    """A path, PIL image or array (verified at its own size), not a prepared Logo."""
    from pathlib import Path

    from PIL import Image

    return isinstance(image, str | Path | Image.Image | np.ndarray)


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
    return VtracerConfig(
        **metadata["vtracer"], ranges={k: tuple(v) for k, v in metadata["param_ranges"].items()}
    )


def _references(rgb: np.ndarray) -> tuple[bytes, Any, ColourReference]:
    """What every conversion of one logo is compared with: its PNG (VTracer's input), its
    SSIM reference and its colour reference."""
    from PIL import Image

    from svg_quality.ssim import SSIMReference  # lazy: scipy; the CLI imports this module

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue(), SSIMReference(rgb), ColourReference(rgb)


def convert_all(
    rgb: np.ndarray,
    cands: list[Candidate],
    vtracer_cfg: Any,
    done: Mapping[int, Any] | None = None,
    refs: tuple[bytes, Any, ColourReference] | None = None,
) -> list[Verified]:
    """Convert and score each candidate with the label contract, and measure its colour
    error; failures are kept. ``done``: candidate index -> a vectorize.Score already made
    of it (its conversion is not redone; its colour error is measured if missing).
    ``refs``: :func:`_references` of ``rgb``, when already made."""
    from svg_quality.vectorize import ConversionFailed, RenderFailed, render, score

    png, ref, colour = refs or _references(rgb)
    out, done = [], done or {}
    for j, c in enumerate(cands):
        t0 = time.perf_counter()
        try:
            if j in done:
                s = done[j]
                de = s.delta_e
                if de is None:
                    de = colour.delta_e(render(s.svg, rgb.shape[1], rgb.shape[0]))
                s = dataclasses.replace(s, delta_e=de)
            else:
                s = score(rgb, c.params, vtracer_cfg, png_bytes=png, reference=ref, colour=colour)
        except (ConversionFailed, RenderFailed) as exc:
            out.append(
                Verified(c, None, None, None, (time.perf_counter() - t0) * 1e3, "", str(exc))
            )
            continue
        out.append(
            Verified(c, s.ssim, s.svg_bytes, s.n_paths, s.convert_ms, s.svg, delta_e=s.delta_e)
        )
    return out


def convert_smallest_first(
    rgb: np.ndarray,
    cands: list[Candidate],
    vtracer_cfg: Any,
    done: Mapping[int, Any] | None = None,
    *,
    min_ssim: float | None = None,
    tolerance: float = objectives.DEFAULT_TOLERANCE,
    colour_tolerance: float = COLOUR_TOLERANCE,
) -> list[Verified]:
    """:func:`convert_all` for the size objective, scoring only the sets that can win.

    The defaults (``cands[0]``) are scored; every other set is converted (VTracer gives
    its bytes), then rendered and scored from the smallest up, stopping after the first
    size in bytes at which a set clears the SSIM bar and the colour bound. The sets left
    out are larger than that one, so :func:`choose` (and its colour-blind twin) picks from
    this list exactly what it picks from convert_all's, at a fraction of the renders and
    SSIMs. When the defaults fail, or miss the bar themselves (a ``min_ssim`` above them),
    every set is scored as convert_all does. Returns the scored sets and the failures, in
    ``cands`` order.
    """
    from svg_quality.vectorize import ConversionFailed, RenderFailed, convert, count_paths, render

    refs = _references(rgb)
    png, ref, colour = refs
    first = convert_all(rgb, cands[:1], vtracer_cfg, done, refs)[0]
    if first.error is not None:
        return [first, *convert_all(rgb, cands[1:], vtracer_cfg, None, refs)]
    bar = objectives.size_threshold(first.ssim, min_ssim, tolerance) - 1e-9  # as rank's
    if first.ssim < bar:
        return [first, *convert_all(rgb, cands[1:], vtracer_cfg, None, refs)]
    out: dict[int, Verified] = {0: first}
    converted: dict[int, tuple[str, float]] = {}
    for j, c in enumerate(cands[1:], 1):
        t0 = time.perf_counter()
        try:
            converted[j] = (convert(png, c.params, vtracer_cfg), (time.perf_counter() - t0) * 1e3)
        except ConversionFailed as exc:
            out[j] = Verified(c, None, None, None, (time.perf_counter() - t0) * 1e3, "", str(exc))
    size = {j: len(svg.encode()) for j, (svg, _) in converted.items()}
    found: int | None = None  # the bytes of the smallest set that passed
    for j in sorted(converted, key=lambda j: (size[j], j)):
        # larger than a passing set, or than the defaults (which pass): cannot be chosen
        if size[j] > (found if found is not None else first.svg_bytes):
            break
        svg, ms = converted[j]
        try:
            shown = render(svg, rgb.shape[1], rgb.shape[0])
        except RenderFailed as exc:
            out[j] = Verified(cands[j], None, None, None, ms, "", str(exc))
            continue
        ssim = float(np.clip(ref.score(shown), 0.0, 1.0))
        v = Verified(
            cands[j], ssim, size[j], count_paths(svg), ms, svg, None, colour.delta_e(shown)
        )
        out[j] = v
        if found is None and ssim >= bar and colour_ok([first, v], colour_tolerance)[1]:
            found = size[j]
    return [out[j] for j in sorted(out)]


def colour_ok(verified: list[Verified], colour_tolerance: float = COLOUR_TOLERANCE) -> list[bool]:
    """Per verified set: its colour error is at most the defaults' (``verified[0]``) plus
    ``colour_tolerance``; True where either was not measured, and for the defaults."""
    base = verified[0].delta_e
    return [
        i == 0 or v.delta_e is None or base is None or v.delta_e <= base + colour_tolerance
        for i, v in enumerate(verified)
    ]


def choose(
    verified: list[Verified],
    objective: str,
    *,
    min_ssim: float | None = None,
    tolerance: float = objectives.DEFAULT_TOLERANCE,
    colour_tolerance: float | None = COLOUR_TOLERANCE,
) -> tuple[Verified, bool]:
    """The best verified set by ``objective`` (``verified[0]`` is the defaults) among those
    whose colour error stays within ``colour_tolerance`` of the defaults' (None: colour not
    checked), and whether no model candidate won (the defaults or a fallback did). Failed
    conversions never win; if the defaults themselves failed, the best successful
    candidate is returned (a conversion beats none)."""
    keep = (
        [True] * len(verified)
        if colour_tolerance is None
        else colour_ok(verified, colour_tolerance)
    )
    ok = [v for v, k in zip(verified, keep, strict=True) if v.error is None and k]
    if not ok:
        raise RuntimeError(
            "VTracer failed on the defaults and on every candidate: "
            + "; ".join(str(v.error) for v in verified[:3])
        )
    s = np.array([v.ssim for v in ok], dtype=np.float64)
    b = np.log10(np.array([v.svg_bytes for v in ok], dtype=np.float64))
    if verified[0].error is not None:
        # No defaults to measure against: the highest actual SSIM (a conversion beats none).
        pick = ok[int(objectives.rank(s, b, "quality").order[0])]
        return pick, pick.candidate.origin != "model"
    i = objectives.best(s, b, objective, default=0, min_ssim=min_ssim, tolerance=tolerance)
    return ok[i], ok[i].candidate.origin != "model"


def verify_choice(
    res: Suggestions,
    rgb: np.ndarray,
    picks: list[Candidate],
    vtracer_cfg: Any,
    *,
    min_ssim: float | None = None,
    tolerance: float = objectives.DEFAULT_TOLERANCE,
    colour_tolerance: float = COLOUR_TOLERANCE,
    defaults_score: Any = None,
    score_all: bool = True,
) -> Suggestions:
    """``res`` with the defaults and ``picks`` converted and the verified choice made;
    ``defaults_score``: the defaults' conversion when already made (the probe's).
    ``score_all`` False with the size objective: only the sets that can win are scored
    (:func:`convert_smallest_first`; the same choice, fewer renders and SSIMs)."""
    t0 = time.perf_counter()
    done = {} if defaults_score is None else {0: defaults_score}
    cands = [res.default, *picks]
    if score_all or res.objective != "size":
        verified = convert_all(rgb, cands, vtracer_cfg, done)
    else:
        verified = convert_smallest_first(
            rgb, cands, vtracer_cfg, done, min_ssim=min_ssim, tolerance=tolerance,
            colour_tolerance=colour_tolerance,
        )  # fmt: skip
    kw = {"min_ssim": min_ssim, "tolerance": tolerance}
    chosen, fell_back = choose(verified, res.objective, colour_tolerance=colour_tolerance, **kw)
    luma_only = choose(verified, res.objective, colour_tolerance=None, **kw)[0]
    return dataclasses.replace(
        res,
        verified=verified,
        chosen=chosen,
        fell_back=fell_back,
        verify_ms=(time.perf_counter() - t0) * 1e3,
        colour_refused=int(luma_only is not chosen),
    )
