"""The 8 VTracer parameters: names, types, hard limits, defaults and normalization.

The *ranges* used for sampling and normalization come from params.yaml
(``vtracer.ranges``); the *limits* below are what VTracer itself accepts and means.
A range outside its limit is rejected with the key, the value and the limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: type  # int or float
    limit: tuple[float, float]  # what VTracer accepts and means (inclusive)
    default: float  # VTracer's own default


# Order matters: it is the model's input order and the exported metadata's order.
# ``limit`` is what the vtracer 0.6.15 Python binding accepts *and* gives meaning to,
# established by reading its source and by probing it on 256 px logos (simple, text,
# gradient, busy); the sampled ranges in params.yaml sit inside these limits and
# their comments there say why each was chosen.
PARAM_SPECS: tuple[ParamSpec, ...] = (
    # Significant bits per RGB channel (VTracer uses 8 - value as "precision loss").
    # 0 (and negatives) panic: `assertion failed: is_same_color_a < 8`. 9 and 10 are
    # accepted but wrap around and behave exactly like 1 and 2.
    ParamSpec("color_precision", int, (1, 8), 6),
    # Colour difference between gradient layers. 0 is a switch (diagonal clustering),
    # values >= 255 are all the same (one layer); negatives are accepted but meaningless.
    ParamSpec("layer_difference", int, (0, 255), 16),
    # Degrees. Values above 180 behave exactly like 180.
    ParamSpec("corner_threshold", int, (0, 180), 60),
    # Pixels. Only meaningful in [3.5, 10] (VTracer's own documentation and CLI check);
    # values outside run but are outside what the algorithm was designed for.
    ParamSpec("length_threshold", float, (3.5, 10.0), 4.0),
    # Subdivide-smooth iterations. 0 panics: `assertion failed: max_iterations > 0`.
    # Results stop changing after ~5 on logos; 100 is a generous hard cap.
    ParamSpec("max_iterations", int, (1, 100), 10),
    # Degrees. Above 180 is accepted but no longer an angle (360 differs from 180).
    ParamSpec("splice_threshold", int, (0, 180), 45),
    # Decimal places of SVG coordinates. Omitting it means *unrounded* coordinates in
    # the Python binding; 8 is the binding's documented default, so we always pass it.
    ParamSpec("path_precision", int, (0, 16), 8),
    # Side in px of the smallest patch kept (area = value^2). Negatives raise
    # OverflowError; at 128 a 256 px logo collapses to one or two paths.
    ParamSpec("filter_speckle", int, (0, 128), 4),
)

PARAM_NAMES: tuple[str, ...] = tuple(s.name for s in PARAM_SPECS)
SPECS: dict[str, ParamSpec] = {s.name: s for s in PARAM_SPECS}
VTRACER_DEFAULTS: dict[str, float] = {s.name: s.default for s in PARAM_SPECS}
# The most Sobol sets one suggestion scores: 65,536 peak at ~2.1 GB (RSS of `suggest` on a
# stats+vtracer+probe model, ~16 s on 2 cores); 2,000,000 would need ~60 GB.
MAX_CANDIDATES = 1 << 16
SHOWN_CHARS = 80  # the most of a value (or key) an error message renders


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters for an error message: a megabyte value
    must not become a megabyte message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text):,} chars)"


def validate_ranges(ranges: Mapping[str, Sequence[float]]) -> None:
    """Check a ``vtracer.ranges`` mapping: all 8 names, ``[low, high]``, inside VTracer's limits."""

    unknown = sorted(set(ranges) - set(PARAM_NAMES))
    if unknown:
        raise ValueError(
            f"params.yaml: unknown VTracer parameter {shown('vtracer.ranges.' + unknown[0])}; "
            f"known: {', '.join(PARAM_NAMES)}"
        )
    missing = [n for n in PARAM_NAMES if n not in ranges]
    if missing:
        raise ValueError(
            f"params.yaml: vtracer.ranges.{missing[0]} is missing; give [low, high] for each of "
            f"{', '.join(PARAM_NAMES)}"
        )
    for name in PARAM_NAMES:
        key = f"vtracer.ranges.{name}"
        rng = ranges[name]
        if len(rng) != 2:
            raise ValueError(
                f"params.yaml: {key} = {shown(list(rng))} is invalid; allowed: [low, high]"
            )
        lo, hi = rng
        spec = SPECS[name]
        if not lo < hi:
            raise ValueError(
                f"params.yaml: {key} = {shown(list(rng))} is invalid; low must be < high"
            )
        if lo < spec.limit[0] or hi > spec.limit[1]:
            raise ValueError(
                f"params.yaml: {key} = {shown(list(rng))} is outside what VTracer accepts; "
                f"allowed: within [{spec.limit[0]}, {spec.limit[1]}]"
            )
        if spec.kind is int and (lo != int(lo) or hi != int(hi)):
            raise ValueError(
                f"params.yaml: {key} = {shown(list(rng))} is invalid; allowed: integers"
            )
        if not lo <= spec.default <= hi:
            raise ValueError(
                f"params.yaml: {key} = {shown(list(rng))} must contain VTracer's default "
                f"{spec.default} (label always samples the defaults)"
            )


def check_point(point: Mapping[str, float], ranges: Mapping[str, Sequence[float]]) -> None:
    """Raise ValueError for an unknown name or a value outside its range."""
    for name, value in point.items():
        if name not in SPECS:
            raise ValueError(f"unknown VTracer parameter {name!r}; known: {', '.join(PARAM_NAMES)}")
        lo, hi = ranges[name]
        if not lo <= value <= hi:
            raise ValueError(f"{name} = {value!r} is out of range; allowed: [{lo}, {hi}]")


def normalize(values: np.ndarray, ranges: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Raw parameters ``[n, 8]`` (PARAM_NAMES order) -> min-max normalized ``[n, 8]`` float32."""
    lo = np.array([ranges[n][0] for n in PARAM_NAMES], dtype=np.float64)
    hi = np.array([ranges[n][1] for n in PARAM_NAMES], dtype=np.float64)
    return ((np.asarray(values, dtype=np.float64) - lo) / (hi - lo)).astype(np.float32)


def denormalize(unit: np.ndarray, ranges: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Inverse of :func:`normalize`; integer parameters are rounded."""
    lo = np.array([ranges[n][0] for n in PARAM_NAMES], dtype=np.float64)
    hi = np.array([ranges[n][1] for n in PARAM_NAMES], dtype=np.float64)
    raw = lo + np.asarray(unit, dtype=np.float64) * (hi - lo)
    for j, spec in enumerate(PARAM_SPECS):
        if spec.kind is int:
            raw[:, j] = np.round(raw[:, j])
    return raw


def sample_params(
    image_id: str,
    n: int,
    ranges: Mapping[str, Sequence[float]],
    seed: int,
    *,
    local_box: Mapping[str, Sequence[float]] | None = None,
    local_share: float = 0.0,
) -> list[dict[str, float]]:
    """``n`` parameter sets for one logo: VTracer's defaults first, then a mix of two designs.

    * global: scrambled Sobol points over ``ranges`` (what the model must know everywhere);
    * local: scrambled Sobol points over ``local_box`` (a box around VTracer's defaults and
      where ``suggest`` picks; names it omits span their whole range), a share
      ``local_share`` of the non-default samples. ``local_share = 0`` is the global design.

    Deterministic per ``(seed, image_id)``: the same logo gets the same sets in every
    run, on every machine, whatever else is in the dataset. Prefix-stable by
    construction: sample ``i`` depends on ``i`` and not on ``n`` (which design it uses is
    fixed by ``i``, and it takes the next point of that design's own Sobol sequence), so
    raising ``n`` only appends samples and label's resume reuses the old ones. Integers
    are drawn so each value in ``[low, high]`` gets an equal share of the unit interval.
    """
    if n < 1:
        raise ValueError(f"label.samples_per_image = {n} is invalid; allowed: at least 1")
    if not 0.0 <= local_share <= 1.0:
        raise ValueError(f"label.local_share = {local_share} is invalid; allowed: [0, 1]")
    try:
        image_key = int(image_id, 16)
    except ValueError:
        raise ValueError(
            f"image_id {image_id!r} is not a hex digest (see io.image_id_for)"
        ) from None
    # Non-default sample j = 1..n-1 is local when the running count floor(j * share)
    # steps up (an even interleave: share 0.5 alternates global, local, global, ...).
    j = np.arange(1, n)
    is_local = np.floor(j * local_share) > np.floor((j - 1) * local_share)
    box = {name: tuple((local_box or {}).get(name, ranges[name])) for name in PARAM_NAMES}
    # The global stream keeps the seed of the purely global design (so its points, and
    # the labels of rows that use them, stay what they were); the local one has its own.
    designs = ((False, [seed, image_key], ranges), (True, [seed, image_key, 1], box))
    raw = np.empty((n - 1, len(PARAM_NAMES)), dtype=np.float64)  # [n-1, 8]
    for local, entropy, bounds in designs:
        rows = np.flatnonzero(is_local == local)
        if rows.size == 0:
            continue
        rng = np.random.default_rng(np.random.SeedSequence(entropy))
        # the first k points of a power-of-two draw are the sequence's first k
        raw[rows] = from_unit(sobol_unit(rows.size, rng), bounds)
    sets: list[dict[str, float]] = [dict(VTRACER_DEFAULTS)]
    for row in raw:
        sets.append(
            {
                s.name: (int(v) if s.kind is int else float(v))
                for v, s in zip(row, PARAM_SPECS, strict=True)
            }
        )
    return sets


def sobol_candidates(ranges: Mapping[str, Sequence[float]], n: int, seed: int = 0) -> np.ndarray:
    """``n`` raw parameter sets ``[n, 8]`` float32 spread over ``ranges`` by a scrambled Sobol
    sequence (what ``suggest`` scores); integer parameters take each value in ``[low, high]``
    with equal share. ``n`` is at most ``MAX_CANDIDATES``."""
    if not 1 <= n <= MAX_CANDIDATES:
        raise ValueError(
            f"candidates = {n} is invalid; allowed: 1 to {MAX_CANDIDATES:,} (scoring "
            f"{MAX_CANDIDATES:,} sets of one logo takes about 2 GB of memory)"
        )
    return from_unit(sobol_unit(n, np.random.default_rng(seed)), ranges).astype(np.float32)


def sobol_unit(n: int, rng: np.random.Generator) -> np.ndarray:
    """The first ``n`` points ``[n, 8]`` in ``[0, 1)`` of a scrambled Sobol sequence seeded by
    ``rng``, drawn as a power of two (``2**ceil(log2 n)``) to keep the sequence's balance."""
    from scipy.stats import qmc

    sobol = qmc.Sobol(d=len(PARAM_NAMES), scramble=True, rng=rng)
    return sobol.random_base2(int(np.ceil(np.log2(n))))[:n]


def from_unit(unit: np.ndarray, ranges: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Points of the unit cube ``[n, 8]`` -> raw parameters ``[n, 8]`` float64 for sampling.

    Floats map linearly onto ``[low, high]``; each integer in ``[low, high]`` gets an equal
    share of the unit interval (unlike :func:`denormalize`, which rounds and so halves
    the share of the two end values).
    """
    unit = np.asarray(unit, dtype=np.float64)
    lo = np.array([ranges[n][0] for n in PARAM_NAMES], dtype=np.float64)
    hi = np.array([ranges[n][1] for n in PARAM_NAMES], dtype=np.float64)
    raw = lo + unit * (hi - lo)
    for j, spec in enumerate(PARAM_SPECS):
        if spec.kind is int:
            raw[:, j] = np.minimum(hi[j], lo[j] + np.floor(unit[:, j] * (hi[j] - lo[j] + 1)))
    return raw


def scale_params(params: Mapping[str, float], factor: float) -> dict[str, float]:
    """``params`` as the model scored them on its view, for a logo ``factor`` times as large
    (long side / the view's), so each means there what it meant on the view:
    ``filter_speckle`` (px, an integer >= 1) and ``length_threshold`` (px, >= 3.5, VTracer's
    documented minimum) times ``factor``; ``path_precision`` (decimals, a grid of 10^-p
    px) minus log10(``factor``), rounded, in [0, 8]: the same grid relative to the logo.
    The other five are not lengths and stay."""
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"scale factor {factor!r} is invalid; allowed: a number > 0")
    out = dict(params)
    out["filter_speckle"] = max(1, round(params["filter_speckle"] * factor))
    out["length_threshold"] = round(max(3.5, params["length_threshold"] * factor), 4)
    grid = round(params["path_precision"] - math.log10(factor))
    out["path_precision"] = min(8, max(0, int(grid)))
    return out
