"""What `suggest` optimises: pure functions from (SSIM, bytes) per candidate to a choice.

Numpy in, indices out; no model, no VTracer. The same functions rank the model's
*predictions* (which candidates to show or verify) and the *verified* figures of real
conversions (which one to return), so a verified choice follows exactly the rule the
user asked for.

Objectives (candidate 0 is VTracer's defaults, always scored):

- ``quality``: the highest SSIM (ties: the smaller SVG).
- ``size``: the smallest SVG whose SSIM is at least ``min_ssim``; ``min_ssim`` defaults
  to the defaults' SSIM minus ``tolerance`` (0.002). Candidates below the bar rank after
  every candidate above it, by SSIM.
- ``balanced``: the highest ``ssim - BALANCE_PER_DOUBLING * log2(bytes / default bytes)``:
  halving the SVG is worth 0.01 SSIM (doubling it costs as much). 0.01 is about five
  times the size objective's tolerance: a visible-but-small loss for half the file.

``pareto_front`` gives the SSIM/bytes frontier (no other candidate has both a higher
SSIM and a smaller SVG), smallest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OBJECTIVES = ("quality", "size", "balanced")
DEFAULT_TOLERANCE = 0.002
BALANCE_PER_DOUBLING = 0.01  # SSIM a halving of the SVG's bytes is worth (balanced)


@dataclass(frozen=True)
class Ranking:
    order: np.ndarray  # candidate indices, best first (every candidate once)
    eligible: np.ndarray  # bool per candidate: meets the objective's SSIM bar (size) / True
    threshold: float | None  # the SSIM bar of ``size``; None for the others
    score: np.ndarray  # the objective's value per candidate (higher is better)


def _check(ssim: np.ndarray, log10_bytes: np.ndarray | None, objective: str, default: int):
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r} is invalid; allowed: {', '.join(OBJECTIVES)}")
    s = np.asarray(ssim, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("no candidates to rank")
    if not 0 <= default < s.size:
        raise ValueError(f"default index {default} is outside the {s.size} candidates")
    if log10_bytes is None:
        if objective != "quality":
            raise ValueError(
                f"objective {objective!r} needs predicted SVG sizes, but this model has no "
                "size head; re-export a model trained with the size head (`dvc repro`) or "
                "use --objective quality"
            )
        return s, None
    b = np.asarray(log10_bytes, dtype=np.float64).ravel()
    if b.shape != s.shape:
        raise ValueError(f"{s.size} SSIM values but {b.size} sizes")
    return s, b


def size_threshold(default_ssim: float, min_ssim: float | None, tolerance: float) -> float:
    """The SSIM bar of the size objective: ``min_ssim``, else the defaults' minus ``tolerance``."""
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance = {tolerance:g} is invalid; allowed: a number >= 0")
    if min_ssim is not None:
        if not 0.0 <= min_ssim <= 1.0:  # false for nan too
            raise ValueError(f"min_ssim = {min_ssim:g} is invalid; allowed: [0, 1]")
        return float(min_ssim)
    return float(default_ssim) - float(tolerance)


def rank(
    ssim: np.ndarray,
    log10_bytes: np.ndarray | None,
    objective: str = "quality",
    *,
    default: int = 0,
    min_ssim: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Ranking:
    """Order candidates by ``objective``; ``default`` is the index of VTracer's defaults."""
    s, b = _check(ssim, log10_bytes, objective, default)
    n = s.size
    eligible = np.ones(n, dtype=bool)
    threshold = None
    if objective == "quality":
        score = s
        tie = -b if b is not None else np.zeros(n)  # smaller SVG first among equal SSIM
        order = np.lexsort((np.arange(n), -tie, -score))
    elif objective == "size":
        threshold = size_threshold(s[default], min_ssim, tolerance)
        # a float32 model output compared to a bar derived from it: allow rounding noise
        eligible = s >= threshold - 1e-9
        score = np.where(eligible, -b, -np.inf)
        # eligible by bytes ascending, then the rest by SSIM descending
        order = np.lexsort((np.arange(n), -s, np.where(eligible, b, np.inf), ~eligible))
    else:
        score = s - BALANCE_PER_DOUBLING * (b - b[default]) / np.log10(2.0)
        order = np.lexsort((np.arange(n), b, -score))
    return Ranking(order=order, eligible=eligible, threshold=threshold, score=np.asarray(score))


def verify_order(
    ssim: np.ndarray,
    log10_bytes: np.ndarray | None,
    objective: str = "quality",
    *,
    default: int = 0,
    min_ssim: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> np.ndarray:
    """The order in which to *verify* candidates (convert them for real), best first.

    For ``quality`` and ``balanced`` it is :func:`rank`'s order. For ``size`` the verified
    choice must be smaller than the defaults *and* reach the SSIM bar for real, and the
    smallest predicted sets are exactly the ones whose real SSIM most often misses it; so
    the order alternates between :func:`rank`'s (the smallest predicted above the bar) and
    the sets predicted smaller than the defaults ranked by predicted SSIM (the likeliest
    to clear the bar), each index once.
    """
    r = rank(ssim, log10_bytes, objective, default=default, min_ssim=min_ssim, tolerance=tolerance)
    if objective != "size":
        return r.order
    s, b = _check(ssim, log10_bytes, objective, default)
    smaller = np.flatnonzero(b < b[default])
    safe = smaller[np.lexsort((smaller, b[smaller], -s[smaller]))]
    out: list[int] = []
    seen: set[int] = set()
    for pair in zip(r.order, np.concatenate([safe, r.order]), strict=False):
        for i in map(int, pair):
            if i not in seen:
                seen.add(i)
                out.append(i)
    return np.asarray(out, dtype=np.int64)


def best(
    ssim: np.ndarray,
    log10_bytes: np.ndarray | None,
    objective: str = "quality",
    *,
    default: int = 0,
    min_ssim: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> int:
    """The index the objective picks; falls back to ``default`` when nothing beats it.

    With measured figures this is the verified choice: the defaults are always among the
    candidates, and a candidate replaces them only when it is strictly better by the
    objective (quality: higher SSIM; size: smaller SVG above the bar; balanced: higher
    score), so the result is never worse than VTracer's defaults by the objective.
    """
    r = rank(ssim, log10_bytes, objective, default=default, min_ssim=min_ssim, tolerance=tolerance)
    top = int(r.order[0])
    if objective == "size" and not r.eligible[top]:
        return default  # nobody reaches an explicit --min-ssim: keep VTracer's defaults
    if r.score[top] <= r.score[default]:
        return default  # a tie is no reason to leave the defaults
    return top


def pareto_front(ssim: np.ndarray, log10_bytes: np.ndarray) -> np.ndarray:
    """Indices on the SSIM/bytes frontier, smallest SVG first (SSIM rising along it).

    A candidate is on it when no other has a smaller-or-equal SVG with a higher SSIM;
    of identical (bytes, SSIM) pairs the first index is kept.
    """
    s, b = _check(ssim, log10_bytes, "size", 0)
    order = np.lexsort((np.arange(s.size), -s, b))  # bytes ascending, best SSIM first
    front, best_ssim = [], -np.inf
    for i in order:
        if s[i] > best_ssim:
            front.append(int(i))
            best_ssim = s[i]
    return np.asarray(front, dtype=np.int64)
