"""Baselines the MLP has to beat, fitted on the train split and scored on the test rows.

    train rows ──> global mean, per-type mean, ridge on the parameters, gradient boosting
    on the MLP's own inputs ──> the test rows ──> metrics beside the MLP's, the best by RMSE

A model that does not beat the best of them is reported as such (validate's report.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from svg_quality.metrics import full_metrics
from svg_quality.paramspace import PARAM_NAMES, normalize

if TYPE_CHECKING:
    import pandas as pd

    from svg_quality.dataset import LabeledData
    from svg_quality.inputspec import InputSpec

BASELINE_INFO = {
    "global_mean": "mean SSIM of the train split",
    "type_mean": "mean SSIM of the train split per logo type",
    "ridge": "ridge regression (RidgeCV) on the 8 normalized parameters",
    "hist_gbr": "HistGradientBoostingRegressor on the MLP's own input rows (statistics, "
    "VTracer-conditioned values, probe, parameters; a ResNet block is left out: 2,048 "
    "columns are too slow for the trees)",
}


def baseline_predictions(
    data: LabeledData,
    spec: InputSpec,
    seed: int,
    split: str = "test",
) -> dict[str, np.ndarray]:
    """Each baseline's predictions on the rows of ``split`` (same order as
    :func:`svg_quality.validation.predict_split`), every baseline fitted on the train split only and clipped to
    [0, 1] (SSIM's range) so no baseline is penalised for leaving it. ``spec`` is the
    model's: ``hist_gbr`` sees the same inputs as the MLP."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import RidgeCV

    from svg_quality.dataset import build_arrays

    train = data.rows[data.mask("train")]
    test = data.rows[data.mask(split)]
    y = train["ssim"].to_numpy(dtype=np.float64)
    glob = float(y.mean())
    by_type = train.groupby("logo_type")["ssim"].mean()
    keep = [
        c
        for seg in spec.layout()
        if seg["name"] != "resnet"
        for c in range(seg["start"], seg["start"] + seg["width"])
    ]

    def params(rows: pd.DataFrame) -> np.ndarray:
        return rows[list(PARAM_NAMES)].to_numpy(dtype=np.float64)

    def model_rows(split_name: str) -> np.ndarray:
        return build_arrays(data, spec, data.mask(split_name)).x[:, keep]

    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(normalize(params(train), spec.ranges), y)
    hgb = HistGradientBoostingRegressor(random_state=seed).fit(model_rows("train"), y)
    preds = {
        "global_mean": np.full(len(test), glob),
        "type_mean": test["logo_type"].map(by_type).fillna(glob).to_numpy(dtype=np.float64),
        "ridge": ridge.predict(normalize(params(test), spec.ranges)),
        "hist_gbr": hgb.predict(model_rows(split)),
    }
    return {k: np.clip(v, 0.0, 1.0) for k, v in preds.items()}


def compare_baselines(
    y_true: np.ndarray, mlp_pred: np.ndarray, baselines: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """Metrics of every baseline and the MLP; the best baseline by RMSE; the MLP's reduction."""
    models = {name: full_metrics(y_true, p) for name, p in baselines.items()}
    best = min(models, key=lambda k: models[k]["rmse"])
    mlp = full_metrics(y_true, mlp_pred)
    best_rmse = models[best]["rmse"]
    reduction = 100.0 * (best_rmse - mlp["rmse"]) / best_rmse if best_rmse > 0 else math.nan
    return {
        "baselines": {
            k: {"description": BASELINE_INFO.get(k, k), "metrics": v} for k, v in models.items()
        },
        "mlp": mlp,
        "best": best,
        "best_rmse": best_rmse,
        "mlp_rmse_reduction_pct": reduction,
        "mlp_beats_best": bool(mlp["rmse"] < best_rmse),
        "fitted_on": "train split",
    }
