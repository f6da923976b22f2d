"""Regression metrics on predicted vs. true SSIM (numpy; float64 internally), the
within-logo ranking metrics, and JSON-safe values for the metrics files.

Kept free of torch so reports and validate can use them on plain arrays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("cannot compute a metric on zero samples")
    return t, p


def mse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.mean((t - p) ** 2))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(mse(y_true, y_pred)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson r; NaN when either side is constant (r is undefined there)."""
    t, p = _pair(y_true, y_pred)
    tc, pc = t - t.mean(), p - p.mean()
    denom = np.sqrt(np.sum(tc * tc) * np.sum(pc * pc))
    if denom == 0.0:
        return float("nan")
    return float(np.sum(tc * pc) / denom)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``{"mse", "rmse", "mae", "pearson", "n"}``."""
    t, p = _pair(y_true, y_pred)
    return {
        "mse": mse(t, p),
        "rmse": rmse(t, p),
        "mae": mae(t, p),
        "pearson": pearson(t, p),
        "n": int(t.size),
    }


# --------------------------------------------------------------------------- validate's metric set
# Added for the validate stage (test metrics, cross-validation folds, baselines).

METRIC_NAMES: tuple[str, ...] = (
    "mse",
    "mae",
    "rmse",
    "pearson",
    "pearson_p",
    "spearman",
    "r2",
    "acc_0_1",
    "acc_0_05",
    "max_error",
    "median_error",
)
# Metrics where smaller is better (gates compare these with <=, the rest with >=).
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"mse", "mae", "rmse", "pearson_p", "max_error", "median_error"}
)


def pearson_pvalue(r: float, n: int) -> float:
    """Two-sided p-value of Pearson ``r`` on ``n`` pairs (t test, n - 2 degrees of freedom)."""
    from scipy import stats

    if n < 3 or not np.isfinite(r):
        return float("nan")
    r = float(np.clip(r, -1.0, 1.0))
    if abs(r) == 1.0:
        return 0.0
    t = r * np.sqrt((n - 2) / (1.0 - r * r))
    return float(2.0 * stats.t.sf(abs(t), n - 2))


def spearman(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Spearman rho: Pearson r of the ranks (ties get their average rank)."""
    from scipy.stats import rankdata

    t, p = _pair(y_true, y_pred)
    return pearson(rankdata(t), rankdata(p))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination; NaN when ``y_true`` is constant."""
    t, p = _pair(y_true, y_pred)
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((t - p) ** 2)) / ss_tot


def accuracy_within(y_true: np.ndarray, y_pred: np.ndarray, tol: float) -> float:
    """Share of predictions with ``|error| <= tol``."""
    t, p = _pair(y_true, y_pred)
    # A hair of slack so an error of exactly ``tol`` counts despite float rounding.
    return float(np.mean(np.abs(t - p) <= tol + 1e-12))


def max_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.max(np.abs(t - p)))


def median_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Median absolute error."""
    t, p = _pair(y_true, y_pred)
    return float(np.median(np.abs(t - p)))


def full_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`METRIC_NAMES`, plus ``n`` (the number of rows)."""
    t, p = _pair(y_true, y_pred)
    # A constant side (e.g. the global-mean baseline) leaves r undefined; rounding in the
    # mean would otherwise turn it into a meaningless +-1e-16.
    constant = np.ptp(t) == 0 or np.ptp(p) == 0
    r = float("nan") if constant else pearson(t, p)
    out = {
        "mse": mse(t, p),
        "mae": mae(t, p),
        "rmse": rmse(t, p),
        "pearson": r,
        "pearson_p": pearson_pvalue(r, t.size),
        "spearman": float("nan") if constant else spearman(t, p),
        "r2": r2(t, p),
        "acc_0_1": accuracy_within(t, p, 0.1),
        "acc_0_05": accuracy_within(t, p, 0.05),
        "max_error": max_error(t, p),
        "median_error": median_error(t, p),
    }
    return {**out, "n": int(t.size)}


# --------------------------------------------------------------------------- ranking

RANK_METRIC_NAMES = ("spearman_mean", "regret_mean", "beats_defaults_share")


def _defaults_mask(rows: pd.DataFrame, defaults: Mapping[str, float]) -> np.ndarray:
    """True for the rows whose parameters equal ``defaults`` (float32-tolerant)."""
    missing = [k for k in defaults if k not in rows.columns]
    if missing:
        raise ValueError(f"ranking metrics: the table lacks parameter column(s) {missing}")
    m = np.ones(len(rows), dtype=bool)
    for k, v in defaults.items():
        m &= np.isclose(rows[k].to_numpy(dtype=np.float64), float(v), rtol=1e-6, atol=1e-6)
    return m


def in_box(rows: pd.DataFrame, box: Mapping[str, Sequence[float]]) -> np.ndarray:
    """True for the rows whose parameters lie inside ``box`` (name -> [low, high]; names
    left out are free), e.g. ``label.local_box``: the region ``suggest`` picks from."""
    missing = [k for k in box if k not in rows.columns]
    if missing:
        raise ValueError(f"in_box: the table lacks parameter column(s) {missing}")
    m = np.ones(len(rows), dtype=bool)
    for k, (lo, hi) in box.items():
        v = rows[k].to_numpy(dtype=np.float64)
        m &= (v >= float(lo)) & (v <= float(hi))
    return m


def ranking_metrics(
    rows: pd.DataFrame,
    defaults: Mapping[str, float],
    group: str = "image_id",
    actual: str = "actual",
    predicted: str = "predicted",
) -> dict[str, float]:
    """How well the predictions rank the labelled parameter sets *within* each logo.

    * ``spearman_mean``: mean over logos of Spearman rho (average ranks for ties) between
      true and predicted SSIM; logos with one row or a constant column have no rho and are
      left out (``spearman_logos`` counts the rest; NaN when none is left).
    * ``regret_mean``: mean over logos of (best true SSIM) - (true SSIM of the set the model
      ranks first); ties in the prediction count the worst true SSIM among the tied sets.
    * ``beats_defaults_share``: share of the logos that have a defaults row (its params equal
      ``defaults``) whose top-ranked set has strictly higher true SSIM than the defaults row.
    """
    from scipy.stats import rankdata

    for col in (group, actual, predicted):
        if col not in rows.columns:
            raise ValueError(f"ranking metrics: the table has no column {col!r}")
    if len(rows) == 0:
        raise ValueError("cannot compute ranking metrics on zero rows")
    is_default = _defaults_mask(rows, defaults)
    rhos, regrets, beats = [], [], []
    for _, idx in rows.groupby(group, sort=True).indices.items():
        t = rows[actual].to_numpy(dtype=np.float64)[idx]
        p = rows[predicted].to_numpy(dtype=np.float64)[idx]
        top = p == p.max()
        picked = float(t[top].min())
        regrets.append(float(t.max()) - picked)
        if len(t) > 1 and np.ptp(t) > 0 and np.ptp(p) > 0:
            rt, rp = rankdata(t), rankdata(p)
            rhos.append(float(np.corrcoef(rt, rp)[0, 1]))
        d = is_default[idx]
        if d.any():
            beats.append(picked > float(t[d].max()))
    return {
        "spearman_mean": float(np.mean(rhos)) if rhos else math.nan,
        "spearman_logos": len(rhos),
        "regret_mean": float(np.mean(regrets)),
        "beats_defaults_share": float(np.mean(beats)) if beats else math.nan,
        "defaults_logos": len(beats),
        "logos": len(regrets),
    }


# --------------------------------------------------------------------------- JSON


def finite_or_none(obj: Any) -> Any:
    """Replace NaN/inf (invalid JSON, unreadable by DVC) by None, recursively."""
    if isinstance(obj, Mapping):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
