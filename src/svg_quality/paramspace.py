"""The 8 VTracer parameters: names, types, hard limits, defaults and normalization.

The *ranges* used for sampling and normalization come from params.yaml
(``vtracer.ranges``); the *limits* below are what VTracer itself accepts and means.
A range outside its limit is rejected with the key, the value and the limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: type  # int or float
    limit: tuple[float, float]  # what VTracer accepts and means (inclusive)
    default: float  # VTracer's own default


# Order matters: it is the model's input order and the exported metadata's order.
PARAM_SPECS: tuple[ParamSpec, ...] = (
    # A bit count per channel: 0 panics; 9-10 wrap around and behave like 1-2.
    ParamSpec("color_precision", int, (1, 8), 6),
    ParamSpec("layer_difference", int, (0, 255), 16),
    ParamSpec("corner_threshold", int, (0, 180), 60),
    # Only meaningful in [3.5, 10] (VTracer's own documentation).
    ParamSpec("length_threshold", float, (3.5, 10.0), 4.0),
    # 0 panics.
    ParamSpec("max_iterations", int, (1, 100), 10),
    ParamSpec("splice_threshold", int, (0, 180), 45),
    ParamSpec("path_precision", int, (0, 16), 8),
    ParamSpec("filter_speckle", int, (0, 128), 4),
)

PARAM_NAMES: tuple[str, ...] = tuple(s.name for s in PARAM_SPECS)
SPECS: dict[str, ParamSpec] = {s.name: s for s in PARAM_SPECS}
VTRACER_DEFAULTS: dict[str, float] = {s.name: s.default for s in PARAM_SPECS}


def validate_ranges(ranges: Mapping[str, Sequence[float]]) -> None:
    """Check a ``vtracer.ranges`` mapping: all 8 names, ``[low, high]``, inside VTracer's limits."""
    unknown = sorted(set(ranges) - set(PARAM_NAMES))
    if unknown:
        raise ValueError(
            f"params.yaml: unknown VTracer parameter 'vtracer.ranges.{unknown[0]}'; "
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
            raise ValueError(f"params.yaml: {key} = {list(rng)!r} is invalid; allowed: [low, high]")
        lo, hi = rng
        spec = SPECS[name]
        if not lo < hi:
            raise ValueError(f"params.yaml: {key} = {list(rng)!r} is invalid; low must be < high")
        if lo < spec.limit[0] or hi > spec.limit[1]:
            raise ValueError(
                f"params.yaml: {key} = {list(rng)!r} is outside what VTracer accepts; "
                f"allowed: within [{spec.limit[0]}, {spec.limit[1]}]"
            )
        if spec.kind is int and (lo != int(lo) or hi != int(hi)):
            raise ValueError(f"params.yaml: {key} = {list(rng)!r} is invalid; allowed: integers")


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
