"""Is the model ready? Readiness gates on the test metrics, and convergence of training.

    test metrics overall and per logo type ──validate.gates──> pass / fail per gate
    reports/train/history.csv ──> best epoch, overfitting flag, stability of val r

Each rule is reported with its threshold (gates.json, report.md), so a reader can judge it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from svg_quality.metrics import LOWER_IS_BETTER, METRIC_NAMES

# Convergence rules (reported with their thresholds, so a reader can judge them):
OVERFIT_VAL_RISE = 0.10  # val loss ends >10% above its best while train loss keeps falling
OVERFIT_GAP_RATIO = 2.0  # val loss more than twice the train loss at the best epoch
STABLE_LAST_N = 5  # epochs over which the stability of val r is measured
STABLE_STD = 0.01  # std of val r over those epochs below which training counts as settled


def _passes(metric: str, value: float, threshold: float) -> bool:
    if value is None or not math.isfinite(value):
        return False
    return value <= threshold if metric in LOWER_IS_BETTER else value >= threshold


def evaluate_gates(
    overall: Mapping[str, float], per_type: pd.DataFrame, gates: Mapping[str, float]
) -> dict[str, Any]:
    """``{"passed": all gates pass, "gates": {key: {..., "passed"}}}`` (gates.json's layout).

    An overall gate's key is its name (``rmse``); a ``type_*`` gate gets one entry per
    reported logo type (``type_pearson/text``), or one failing ``type_pearson/none`` entry
    when no type had enough test rows: readiness per type cannot be claimed without data.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, threshold in gates.items():
        metric = name.removeprefix("type_")
        if metric not in METRIC_NAMES:
            raise ValueError(f"validate.gates.{name}: unknown metric {metric!r}")
        op = "<=" if metric in LOWER_IS_BETTER else ">="
        base = {"gate": name, "metric": metric, "op": op, "threshold": float(threshold)}
        if not name.startswith("type_"):
            v = float(overall[metric])
            out[name] = {
                **base,
                "scope": "overall",
                "value": v,
                "passed": _passes(metric, v, threshold),
            }
            continue
        reported = per_type[per_type["status"] == "reported"]
        if reported.empty:
            out[f"{name}/none"] = {
                **base,
                "scope": "every type",
                "value": None,
                "passed": False,
                "note": "no logo type had enough test rows to be reported",
            }
        for t, v in zip(reported["logo_type"], reported[metric].astype(float), strict=True):
            out[f"{name}/{t}"] = {
                **base,
                "scope": str(t),
                "value": v,
                "passed": _passes(metric, v, threshold),
            }
    return {"passed": all(g["passed"] for g in out.values()), "gates": out}


# --------------------------------------------------------------------------- convergence


def convergence(
    history: pd.DataFrame, monitor: str = "val_rmse", best_epoch: int | None = None
) -> dict[str, Any]:
    """Best epoch, an overfitting flag with its reason, and the stability of the last epochs' val r.

    ``best_epoch`` (as recorded in the model file) wins over recomputing it from ``monitor``.
    """
    need = {"epoch", "train_loss", "val_loss", "val_pearson"}
    if missing := sorted(need - set(history.columns)):
        raise ValueError(f"training history lacks columns {missing}; rerun `dvc repro train`")
    if history.empty:
        raise ValueError("training history is empty; rerun `dvc repro train`")
    h = history.sort_values("epoch").reset_index(drop=True)
    if best_epoch is None or best_epoch not in set(h["epoch"].astype(int)):
        col = h[monitor] if monitor in h else h["val_loss"]
        best_i = int(col.idxmax() if monitor == "val_pearson" else col.idxmin())
        best_epoch = int(h.loc[best_i, "epoch"])
    b = h[h["epoch"] == best_epoch].iloc[0]
    last = h.iloc[-1]

    val_rise = float(last["val_loss"] / b["val_loss"] - 1.0) if b["val_loss"] > 0 else 0.0
    train_falls = bool(last["train_loss"] < b["train_loss"])
    gap = float(b["val_loss"] / b["train_loss"]) if b["train_loss"] > 0 else math.inf
    reasons = []
    if val_rise > OVERFIT_VAL_RISE and train_falls:
        reasons.append(
            f"val loss rose {100 * val_rise:.0f}% after the best epoch while train loss fell"
        )
    if gap > OVERFIT_GAP_RATIO:
        reasons.append(f"val loss is {gap:.1f}x the train loss at the best epoch")
    tail = h["val_pearson"].tail(STABLE_LAST_N).to_numpy(dtype=np.float64)
    tail_std = float(np.std(tail, ddof=0)) if len(tail) > 1 else math.nan
    return {
        "best_epoch": int(best_epoch),
        "epochs_run": len(h),
        "best_val_loss": float(b["val_loss"]),
        "best_train_loss": float(b["train_loss"]),
        "best_val_pearson": float(b["val_pearson"]),
        "last_val_loss": float(last["val_loss"]),
        "last_train_loss": float(last["train_loss"]),
        "val_loss_rise_after_best": val_rise,
        "val_train_loss_ratio": gap,
        "overfitting": bool(reasons),
        "overfitting_reasons": reasons,
        "val_pearson_std_last": tail_std,
        "last_n": len(tail),
        "stable": bool(math.isfinite(tail_std) and tail_std < STABLE_STD),
        "rules": {
            "overfit_val_rise": OVERFIT_VAL_RISE,
            "overfit_gap_ratio": OVERFIT_GAP_RATIO,
            "stable_last_n": STABLE_LAST_N,
            "stable_std": STABLE_STD,
        },
    }
