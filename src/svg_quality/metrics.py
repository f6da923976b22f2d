"""Regression metrics on predicted vs. true SSIM (numpy; float64 internally).

Kept free of torch so reports and validate can use them on plain arrays.
"""

from __future__ import annotations

import numpy as np


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
