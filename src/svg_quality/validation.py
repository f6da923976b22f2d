"""Is the trained model fit for use? Test metrics, grouped CV, baselines, gates, convergence.

    model.pt + test rows ──> predictions ──> metrics overall and per logo type ──> gates
    train+val rows ──StratifiedGroupKFold(by image)──> trainer.fit per fold ──> CV mean ± std
    train rows ──> global mean, per-type mean, ridge, gradient boosting ──> same test rows
    reports/train/history.csv ──> best epoch, overfitting flag, stability of val r

Every function works on tables and arrays already in memory; ``stages/validate.py`` does
the reading, writing and MLflow logging. Model inputs are always assembled through
:mod:`svg_quality.dataset` (``build_arrays`` / ``make_input_spec``) and models trained
with :func:`svg_quality.trainer.fit`, so CV folds see exactly what the train stage sees.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from svg_quality.config import LOGO_TYPES, ModelConfig, TrainConfig, ValidateConfig
from svg_quality.inputspec import InputSpec
from svg_quality.metrics import (
    LOWER_IS_BETTER,
    METRIC_NAMES,
    RANK_METRIC_NAMES,
    full_metrics,
    in_box,
    ranking_metrics,
)
from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS, normalize

if TYPE_CHECKING:
    from torch import nn

    from svg_quality.dataset import LabeledData

log = logging.getLogger(__name__)

# Convergence rules (reported with their thresholds, so a reader can judge them):
OVERFIT_VAL_RISE = 0.10  # val loss ends >10% above its best while train loss keeps falling
OVERFIT_GAP_RATIO = 2.0  # val loss more than twice the train loss at the best epoch
STABLE_LAST_N = 5  # epochs over which the stability of val r is measured
STABLE_STD = 0.01  # std of val r over those epochs below which training counts as settled

PLOT_FILES = {
    "pred_vs_actual": "plots/pred_vs_actual.png",
    "per_type": "plots/per_type.png",
    "residuals": "plots/residuals.png",
    "training_curves": "plots/training_curves.png",
    "ssim_by_type": "plots/ssim_by_type.png",
}


# --------------------------------------------------------------------------- test metrics


def predict_split(
    data: LabeledData, model: nn.Module, meta: Mapping[str, Any], split: str = "test"
) -> pd.DataFrame:
    """``image_id, logo_type, <8 params>, actual, predicted`` for every ok row of ``split``.

    Inputs are assembled with the spec stored in the model file (its parameter ranges and
    statistics standardizer), exactly as the model was trained.
    """
    from svg_quality.dataset import build_arrays
    from svg_quality.model import InputSpec
    from svg_quality.trainer import predict

    mask = data.mask(split)
    if not mask.any():
        raise ValueError(
            f"the {split} split has no ok label rows; set split.{split} above 0 and rerun "
            "`dvc repro prepare`, or check the label stage's failures"
        )
    spec = InputSpec.from_meta(meta["input"])
    arrays = build_arrays(data, spec, mask)
    pred = predict(model, arrays.x)  # [n]
    cols = ["image_id", "logo_type", "size", *PARAM_NAMES]
    if "origin" in data.rows.columns:
        cols.insert(2, "origin")
    out = data.rows.loc[mask, cols].reset_index(drop=True)
    out["actual"] = arrays.y.astype(np.float64)
    out["predicted"] = pred.astype(np.float64)
    return out


def logo_at_size(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with a ``logo`` column, ``image_id@size``: the group whose parameter sets
    ranking compares (one logo's sets at one long side; labels at several sizes hold one
    group per size)."""
    size = rows["size"].astype(str) if "size" in rows.columns else "view"
    return rows.assign(logo=rows["image_id"].astype(str) + "@" + size)


def per_group_metrics(predictions: pd.DataFrame, column: str) -> dict[Any, dict[str, float]]:
    """Per value of ``column`` of the test rows: every metric and the within-logo ranking
    (each logo's sets at one size)."""
    out: dict[Any, dict[str, float]] = {}
    for key, sub in predictions.groupby(column, sort=True):
        m = full_metrics(sub["actual"].to_numpy(), sub["predicted"].to_numpy())
        m["n_images"] = int(sub["image_id"].nunique())
        rank = ranking_metrics(logo_at_size(sub), VTRACER_DEFAULTS, group="logo")
        m.update({f"rank/{k}": rank[k] for k in RANK_METRIC_NAMES})
        out[key] = m
    return out


def per_size_metrics(predictions: pd.DataFrame) -> dict[int, dict[str, float]]:
    """Per long side of the test rows: every metric and the within-logo ranking."""
    return {int(k): m for k, m in per_group_metrics(predictions, "size").items()}


def per_origin_metrics(predictions: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per origin of the test rows (synthetic, artwork, folder), all sizes: every metric and
    the within-logo ranking. Empty unless the test rows hold two origins or more."""
    if "origin" not in predictions.columns or predictions["origin"].nunique() < 2:
        return {}
    return {str(k): m for k, m in per_group_metrics(predictions, "origin").items()}


def type_order(types: Sequence[str]) -> list[str]:
    """Known logo types in their canonical order, then any others alphabetically."""
    present = set(types)
    return [t for t in LOGO_TYPES if t in present] + sorted(present - set(LOGO_TYPES))


def per_type_metrics(predictions: pd.DataFrame, min_examples: int) -> pd.DataFrame:
    """One row per logo type: ``logo_type, status, n, n_images`` and every metric.

    A type with fewer than ``min_examples`` rows is ``skipped`` (its metrics left empty):
    metrics on a handful of rows would pass or fail gates by chance.
    """
    rows = []
    for t in type_order(predictions["logo_type"].tolist()):
        sub = predictions[predictions["logo_type"] == t]
        row: dict[str, Any] = {
            "logo_type": t,
            "n": len(sub),
            "n_images": int(sub["image_id"].nunique()),
        }
        if len(sub) < min_examples:
            row["status"] = "skipped"
            row.update({m: math.nan for m in METRIC_NAMES})
        else:
            row["status"] = "reported"
            m = full_metrics(sub["actual"].to_numpy(), sub["predicted"].to_numpy())
            row.update({k: m[k] for k in METRIC_NAMES})
        rows.append(row)
    cols = ["logo_type", "status", "n", "n_images", *METRIC_NAMES]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- cross-validation


def grouped_folds(
    groups: Sequence[str], strata: Sequence[str], n_folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_folds`` (train_idx, test_idx) pairs; every group (image) lies in exactly one test fold.

    StratifiedGroupKFold keeps each logo type's share of images similar across folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_folds < 2:
        raise ValueError(f"validate.cv_folds = {n_folds}: need at least 2 folds (0 disables CV)")
    if n_groups < n_folds:
        raise ValueError(
            f"validate.cv_folds = {n_folds} but only {n_groups} images are in train+val; "
            f"lower validate.cv_folds to at most {n_groups} or add logos"
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    idx = np.arange(len(groups))
    return [(tr, te) for tr, te in splitter.split(idx, np.asarray(strata), groups)]


def _inner_split(
    groups: np.ndarray, strata: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out about ``share`` of the images (stratified by type) for early stopping."""
    n_groups = len(np.unique(groups))
    k = min(max(2, round(1.0 / share)), n_groups)
    return grouped_folds(groups, strata, k, seed)[0]


@dataclass(frozen=True)
class CVFold:
    """One grouped CV fold as boolean masks over ``data.rows``: rows to fit on, rows held
    out of them for early stopping, and the fold's held-out (scored) rows."""

    fit: np.ndarray
    stop: np.ndarray
    held: np.ndarray


def cv_folds(data: LabeledData, vcfg: ValidateConfig) -> list[CVFold]:
    """The grouped K-fold plan over train+val (the test split is never touched), shared by
    the SSIM head's and the size head's cross-validation so both use the same folds."""
    pool = np.flatnonzero(data.mask("train") | data.mask("val"))  # row indices into data.rows
    images = data.rows["image_id"].to_numpy(dtype=str)
    types = data.rows["logo_type"].to_numpy(dtype=str)

    def mask_of(rows: np.ndarray) -> np.ndarray:
        m = np.zeros(len(data.rows), dtype=bool)
        m[rows] = True
        return m

    plan = []
    for i, (tr, te) in enumerate(
        grouped_folds(images[pool], types[pool], vcfg.cv_folds, vcfg.seed)
    ):
        fit_rows, held_rows = pool[tr], pool[te]
        n_fit = len(np.unique(images[fit_rows]))
        if n_fit < 2:  # else _inner_split asks grouped_folds for 1 fold: a misleading error
            raise ValueError(
                f"cross-validation fold {i + 1} trains on {n_fit} image(s) (train+val hold "
                f"{len(np.unique(images[pool]))} images, validate.cv_folds = {vcfg.cv_folds}); "
                "holding out images for early stopping needs at least 2: add logos to "
                "data.source or set validate.cv_folds: 0"
            )
        a, b = _inner_split(images[fit_rows], types[fit_rows], vcfg.cv_val_share, vcfg.seed + i)
        plan.append(CVFold(mask_of(fit_rows[a]), mask_of(fit_rows[b]), mask_of(held_rows)))
    return plan


def cv_train_config(train_cfg: TrainConfig, vcfg: ValidateConfig) -> TrainConfig:
    """train's settings for one CV fold: ``validate.cv_epochs`` epochs, no resume."""
    return dataclasses.replace(
        train_cfg,
        epochs=vcfg.cv_epochs,
        warmup_epochs=min(train_cfg.warmup_epochs, vcfg.cv_epochs),
        resume=False,
    )


def cross_validate(
    data: LabeledData,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    vcfg: ValidateConfig,
    ranges: Mapping[str, Sequence[float]],
    progress: bool = True,
) -> dict[str, Any]:
    """Grouped K-fold CV of the MLP on the train+val images (the test split is never touched).

    Per fold: a stratified share ``validate.cv_val_share`` of the fold's training images is
    held out for early stopping, the statistics standardizer is fitted on the rest, the MLP
    is trained with :func:`svg_quality.trainer.fit` for ``validate.cv_epochs`` epochs and
    scored on the fold's held-out images. Returns per-fold metrics and their mean and std.
    """
    from svg_quality.dataset import build_arrays, make_input_spec
    from svg_quality.trainer import fit, predict

    pool = data.mask("train") | data.mask("val")
    folds = cv_folds(data, vcfg)
    cfg = cv_train_config(train_cfg, vcfg)
    results = []
    for i, fold in enumerate(folds):
        spec = make_input_spec(data, model_cfg.requested_inputs, ranges, fit_mask=fold.fit)
        train_xy = build_arrays(data, spec, fold.fit)
        stop_xy = build_arrays(data, spec, fold.stop)
        held_xy = build_arrays(data, spec, fold.held)
        res = fit(
            train_xy, stop_xy, model_cfg, cfg, progress=progress, resnet_width=spec.resnet_width
        )
        pred = predict(res.model, held_xy.x)  # [n_held]
        m = full_metrics(held_xy.y, pred)
        held = data.rows.loc[fold.held, ["image_id", "size", *PARAM_NAMES]]
        held = logo_at_size(held.assign(actual=held_xy.y.astype(np.float64), predicted=pred))
        rank = ranking_metrics(held, VTRACER_DEFAULTS, group="logo")
        m.update({f"rank/{k}": rank[k] for k in RANK_METRIC_NAMES})
        m.update(
            {
                "fold": i + 1,
                "train_rows": len(train_xy),
                "stop_rows": len(stop_xy),
                "images": len(np.unique(held_xy.image_id)),
                "best_epoch": res.best_epoch,
                "epochs_run": res.epochs_run,
            }
        )
        log.info(
            "fold %d/%d: rmse %.4f, r %.3f on %d rows (%d images), best epoch %d",
            i + 1,
            len(folds),
            m["rmse"],
            m["pearson"],
            m["n"],
            m["images"],
            res.best_epoch,
        )
        results.append(m)

    summary: dict[str, float] = {}
    for name in (*METRIC_NAMES, *(f"rank/{k}" for k in RANK_METRIC_NAMES)):
        vals = np.array([r[name] for r in results], dtype=np.float64)
        summary[f"{name}_mean"] = float(np.mean(vals))
        summary[f"{name}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
    return {
        "folds": results,
        "summary": summary,
        "n_folds": len(folds),
        "epochs": vcfg.cv_epochs,
        "val_share": vcfg.cv_val_share,
        "seed": vcfg.seed,
        "rows": int(pool.sum()),
        "images": int(data.rows.loc[pool, "image_id"].nunique()),
        "model": dataclasses.asdict(model_cfg),
        "std": "sample std over folds (ddof=1)",
    }


# --------------------------------------------------------------------------- baselines

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
    :func:`predict_split`), every baseline fitted on the train split only and clipped to
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


# --------------------------------------------------------------------------- gates


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


# --------------------------------------------------------------------------- the whole check


@dataclass
class ValidationResult:
    predictions: pd.DataFrame  # image_id, logo_type, params, actual, predicted
    overall: dict[str, float]
    per_type: pd.DataFrame
    cv: dict[str, Any] | None  # None when validate.cv_folds == 0
    baselines: dict[str, Any]
    gates: dict[str, Any]
    convergence: dict[str, Any]
    model_info: dict[str, Any]
    ranking: dict[str, float] = dataclasses.field(default_factory=dict)  # within-logo, test
    # the same over each test logo's sets inside label.local_box (close sets: suggest's region)
    ranking_box: dict[str, float] = dataclasses.field(default_factory=dict)
    # per long side of the test rows (labels at several sizes): metrics and ranking
    per_size: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)
    # per origin of the test rows (synthetic and artwork apart): metrics and ranking
    per_origin: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)


def validate_model(
    data: LabeledData,
    model: nn.Module,
    meta: Mapping[str, Any],
    history: pd.DataFrame,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    vcfg: ValidateConfig,
    run_id: str | None = None,
    progress: bool = True,
    box: Mapping[str, Sequence[float]] | None = None,
) -> ValidationResult:
    """Run every check on a trained model; nothing is written. ``run_id``: the MLflow run;
    ``box`` (label.local_box): also rank each logo's sets inside it."""
    from svg_quality.dataset import weights_used
    from svg_quality.inputgroups import resolve_inputs

    asked = resolve_inputs(model_cfg.requested_inputs, weights_used(data.feature_meta))
    if asked != meta["model"]["inputs"]:
        log.warning(
            "params model.inputs=%s but the model file was trained with %s; cross-validation "
            "uses the params (rerun `dvc repro train` to make them agree)",
            asked,
            meta["model"]["inputs"],
        )
    ranges = meta["input"]["ranges"]  # the ranges the model was trained with
    predictions = predict_split(data, model, meta)
    overall = full_metrics(predictions["actual"].to_numpy(), predictions["predicted"].to_numpy())
    overall["n_images"] = int(predictions["image_id"].nunique())
    per_type = per_type_metrics(predictions, vcfg.min_type_examples)
    base = compare_baselines(
        predictions["actual"].to_numpy(),
        predictions["predicted"].to_numpy(),
        baseline_predictions(data, InputSpec.from_meta(meta["input"]), vcfg.seed),
    )
    gates = evaluate_gates(overall, per_type, vcfg.gates)
    conv = convergence(history, train_cfg.monitor, meta.get("best_epoch"))
    cv = None
    if vcfg.cv_folds:
        cv = cross_validate(data, model_cfg, train_cfg, vcfg, ranges, progress=progress)
    info = {
        "inputs": meta["model"]["inputs"],
        "hidden": list(meta["model"]["hidden"]),
        "width": int(meta["input"]["width"]),
        "best_epoch": meta.get("best_epoch"),
        "run_id": run_id or meta.get("mlflow_run_id"),
    }
    # the headline ranking is at the model's view (the smallest size), as before sizes
    at_view = predictions[predictions["size"] == predictions["size"].min()]
    ranking = ranking_metrics(at_view, VTRACER_DEFAULTS)
    ranking_box = {}
    if box:
        inside = at_view.loc[in_box(at_view, box)]
        if len(inside):
            ranking_box = ranking_metrics(inside, VTRACER_DEFAULTS)
    per_size = per_size_metrics(predictions) if predictions["size"].nunique() > 1 else {}
    return ValidationResult(
        predictions,
        overall,
        per_type,
        cv,
        base,
        gates,
        conv,
        info,
        ranking,
        ranking_box,
        per_size,
        per_origin_metrics(predictions),
    )


# --------------------------------------------------------------------------- reporting


def flat_metrics(res: ValidationResult) -> dict[str, Any]:
    """Flat keys for DVC metrics and MLflow: ``test/rmse``, ``test/type/text/pearson``, ..."""
    out: dict[str, Any] = {f"test/{k}": v for k, v in res.overall.items()}
    for _, r in res.per_type.iterrows():
        t = r["logo_type"]
        out[f"test/type/{t}/n"] = int(r["n"])
        if r["status"] == "reported":
            out.update({f"test/type/{t}/{m}": float(r[m]) for m in METRIC_NAMES})
    out.update({f"test/rank/{k}": v for k, v in res.ranking.items()})
    out.update({f"test/rank_box/{k}": v for k, v in res.ranking_box.items()})
    for size, m in res.per_size.items():
        out.update({f"test/size/{size}/{k}": v for k, v in m.items()})
    for origin, m in res.per_origin.items():
        out.update({f"test/origin/{origin}/{k}": v for k, v in m.items()})
    if res.cv is not None:
        out.update({f"cv/{k}": v for k, v in res.cv["summary"].items()})
        out["cv/folds"] = res.cv["n_folds"]
    b = res.baselines
    for name, entry in b["baselines"].items():
        out.update({f"baseline/{name}/{m}": entry["metrics"][m] for m in METRIC_NAMES})
    out.update(
        {f"baseline/best/{m}": b["baselines"][b["best"]]["metrics"][m] for m in METRIC_NAMES}
    )
    out["baseline/mlp_rmse_reduction_pct"] = b["mlp_rmse_reduction_pct"]
    out["baseline/mlp_beats_best"] = b["mlp_beats_best"]
    out["gates/pass"] = res.gates["passed"]
    out["gates/passed"] = sum(g["passed"] for g in res.gates["gates"].values())
    out["gates/total"] = len(res.gates["gates"])
    c = res.convergence
    out["convergence/best_epoch"] = c["best_epoch"]
    out["convergence/epochs_run"] = c["epochs_run"]
    out["convergence/overfitting"] = c["overfitting"]
    out["convergence/val_pearson_std_last"] = c["val_pearson_std_last"]
    out["convergence/stable"] = c["stable"]
    return out


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


def _f(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if abs(v) and abs(v) < 10 ** (-digits):
        return f"{v:.1e}"
    return f"{v:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def _ranking_lines(res: ValidationResult) -> list[str]:
    """The within-logo ranking section: what ``suggest`` needs (test split, and CV means)."""
    r = res.ranking
    if not r:
        return []
    rows = [
        [
            "test",
            r["logos"],
            _f(r["spearman_mean"]),
            _f(r["regret_mean"], 5),
            _f(r["beats_defaults_share"], 3),
        ]
    ]
    b = res.ranking_box
    if b:
        rows.append(
            [
                "test, sets inside label.local_box",
                b["logos"],
                _f(b["spearman_mean"]),
                _f(b["regret_mean"], 5),
                _f(b["beats_defaults_share"], 3),
            ]
        )
    if res.cv is not None:
        s = res.cv["summary"]
        rows.append(
            [
                f"CV ({res.cv['n_folds']} folds, mean)",
                res.cv["images"],
                _f(s["rank/spearman_mean_mean"]),
                _f(s["rank/regret_mean_mean"], 5),
                _f(s["rank/beats_defaults_share_mean"], 3),
            ]
        )
    return [
        "",
        "## Ranking within a logo",
        "",
        "Per logo, the labelled parameter sets ranked by predicted SSIM: Spearman rho (mean "
        "over logos with 2+ distinct rows), top-1 regret (best true SSIM minus the true SSIM "
        "of the top-ranked set; ties count the worst), and the share of logos whose top-ranked "
        "set beats VTracer's defaults row. The `label.local_box` row ranks only each logo's "
        "sets inside that box (VTracer's defaults included): close sets, where `suggest` picks.",
        "",
        *_table(["split", "logos", "Spearman", "top-1 regret", "beats defaults"], rows),
        *_size_lines(res),
        *_origin_lines(res),
    ]


def _group_rows(groups: Mapping[Any, Mapping[str, float]], name: Callable[[Any], str]) -> list:
    return [
        [
            name(key),
            int(m["n"]),
            m["n_images"],
            _f(m["pearson"]),
            _f(m["rmse"]),
            _f(m["rank/spearman_mean"]),
            _f(m["rank/regret_mean"], 5),
            _f(m["rank/beats_defaults_share"], 3),
        ]
        for key, m in sorted(groups.items())
    ]


GROUP_HEADER = (
    "rows",
    "images",
    "Pearson r",
    "RMSE",
    "Spearman",
    "top-1 regret",
    "beats defaults",
)


def _origin_lines(res: ValidationResult) -> list[str]:
    """The per-source section (data.sources mixing synthetic logos and real artwork)."""
    if not res.per_origin:
        return []
    return [
        "",
        "## Per source",
        "",
        "The test rows by where the logo came from (`data.sources`: `synthetic` logos, "
        "`artwork` = real vector icons of `data.artwork`, `folder`), at every size; the "
        "ranking columns rank each logo's sets at one size.",
        "",
        *_table(["source", *GROUP_HEADER], _group_rows(res.per_origin, str)),
    ]


def _size_lines(res: ValidationResult) -> list[str]:
    """The per-size section (labels at several long sides; the rows above rank at the view)."""
    if not res.per_size:
        return []
    return [
        "",
        "## Per long side",
        "",
        "The test rows by the long side they were converted at (`data.sizes`; the model's "
        "parameters are in the frame of its view, scaled for VTracer at each size). The "
        "ranking columns rank each logo's sets at one size.",
        "",
        *_table(["long side", *GROUP_HEADER], _group_rows(res.per_size, lambda s: f"{s} px")),
    ]


def render_report(res: ValidationResult, vcfg: ValidateConfig) -> str:
    """``report.md``: one page a person reads to decide whether the model is fit for use."""
    o, g, b, c = res.overall, res.gates, res.baselines, res.convergence
    n_pass = sum(x["passed"] for x in g["gates"].values())
    verdict = "READY" if g["passed"] else "NOT READY"
    failed = [k for k, x in g["gates"].items() if not x["passed"]]
    info = res.model_info
    lines = [
        f"# Validation report: {verdict}",
        "",
        f"**{verdict} for use**: {n_pass} of {len(g['gates'])} readiness gates pass"
        + (f"; missed: {', '.join(failed)}." if failed else "."),
        "",
        f"Model: inputs `{info['inputs']}` ({info['width']} wide), hidden {info['hidden']}, "
        f"best epoch {info['best_epoch']}; MLflow run `{info['run_id']}`.",
        f"Test split: {o['n']} rows from {o['n_images']} images that training never saw "
        "(not for fitting, not for early stopping).",
        "",
        "## Headline (test split)",
        "",
        *_table(
            [
                "Pearson r",
                "p-value",
                "Spearman rho",
                "R²",
                "RMSE",
                "MAE",
                "within 0.1",
                "within 0.05",
                "median err",
                "max err",
            ],
            [
                [
                    _f(o["pearson"]),
                    _f(o["pearson_p"], 2),
                    _f(o["spearman"]),
                    _f(o["r2"]),
                    _f(o["rmse"]),
                    _f(o["mae"]),
                    _f(o["acc_0_1"], 3),
                    _f(o["acc_0_05"], 3),
                    _f(o["median_error"]),
                    _f(o["max_error"]),
                ]
            ],
        ),
        "",
        "## Readiness gates",
        "",
        *_table(
            ["gate", "scope", "value", "rule", "result"],
            [
                [
                    x["gate"],
                    x["scope"],
                    _f(x["value"]),
                    f"{x['op']} {x['threshold']:g}",
                    "pass" if x["passed"] else "**FAIL**",
                ]
                for x in g["gates"].values()
            ],
        ),
        "",
        (
            "A missed gate fails the stage (validate.fail_on_gates: true)."
            if vcfg.fail_on_gates
            else "Gates are advisory here (validate.fail_on_gates: false): a miss is reported, "
            "not fatal."
        ),
        "",
        "## Against baselines (same test rows, fitted on the train split)",
        "",
    ]
    base_rows = [
        [
            "**MLP**",
            *(_f(b["mlp"][m]) for m in ("rmse", "mae", "pearson", "r2")),
            _f(b["mlp"]["acc_0_1"], 3),
        ]
    ]
    for name, entry in b["baselines"].items():
        m = entry["metrics"]
        label = f"{name} ({entry['description']})" + (" — best" if name == b["best"] else "")
        base_rows.append(
            [label, *(_f(m[k]) for k in ("rmse", "mae", "pearson", "r2")), _f(m["acc_0_1"], 3)]
        )
    lines += _table(["model", "RMSE", "MAE", "Pearson r", "R²", "within 0.1"], base_rows)
    lines.append("")
    if b["mlp_beats_best"]:
        lines.append(
            f"The MLP's RMSE is {b['mlp_rmse_reduction_pct']:.1f}% lower than the best "
            f"baseline's ({b['best']}: {_f(b['best_rmse'])})."
        )
    else:
        lines.append(
            f"**The MLP does not beat the best baseline**: {b['best']} has RMSE "
            f"{_f(b['best_rmse'])}, the MLP {_f(b['mlp']['rmse'])} "
            f"({-b['mlp_rmse_reduction_pct']:.1f}% worse). Prefer the baseline, or improve the model."
        )
    lines += ["", "## Per logo type (test split)", ""]
    type_rows = []
    for _, r in res.per_type.iterrows():
        if r["status"] == "skipped":
            type_rows.append(
                [
                    r["logo_type"],
                    r["n"],
                    r["n_images"],
                    f"skipped: {r['n']} rows < validate.min_type_examples {vcfg.min_type_examples}",
                    "",
                    "",
                    "",
                    "",
                ]
            )
        else:
            type_rows.append(
                [
                    r["logo_type"],
                    r["n"],
                    r["n_images"],
                    _f(r["pearson"]),
                    _f(r["spearman"]),
                    _f(r["rmse"]),
                    _f(r["mae"]),
                    _f(r["acc_0_1"], 3),
                ]
            )
    lines += _table(
        ["type", "rows", "images", "Pearson r", "Spearman", "RMSE", "MAE", "within 0.1"], type_rows
    )
    lines += ["", "## Cross-validation (train+val images, grouped by image)", ""]
    if res.cv is None:
        lines.append("Disabled (validate.cv_folds: 0).")
    else:
        cv, s = res.cv, res.cv["summary"]
        lines += [
            f"{cv['n_folds']} folds over {cv['rows']} rows from {cv['images']} images "
            f"(StratifiedGroupKFold by logo type, seed {cv['seed']}); the MLP retrained per "
            f"fold for up to {cv['epochs']} epochs, early-stopped on {cv['val_share']:.0%} of "
            "the fold's training images, statistics standardizer refitted per fold.",
            "",
            f"Pearson r {_f(s['pearson_mean'])} ± {_f(s['pearson_std'])}, "
            f"RMSE {_f(s['rmse_mean'])} ± {_f(s['rmse_std'])}, "
            f"within 0.1 {_f(s['acc_0_1_mean'], 3)} ± {_f(s['acc_0_1_std'], 3)} "
            "(mean ± sample std over folds).",
            "",
            *_table(
                ["fold", "rows", "images", "best epoch", "Pearson r", "RMSE", "within 0.1"],
                [
                    [
                        f["fold"],
                        f["n"],
                        f["images"],
                        f["best_epoch"],
                        _f(f["pearson"]),
                        _f(f["rmse"]),
                        _f(f["acc_0_1"], 3),
                    ]
                    for f in cv["folds"]
                ],
            ),
        ]
    lines += _ranking_lines(res)
    lines += ["", "## Convergence (reports/train/history.csv)", ""]
    rules = c["rules"]
    over = (
        "**yes**: " + "; ".join(c["overfitting_reasons"])
        if c["overfitting"]
        else f"no (val loss rise after best {c['val_loss_rise_after_best']:+.0%}, "
        f"val/train loss ratio {c['val_train_loss_ratio']:.2f})"
    )
    lines += [
        f"- Best epoch {c['best_epoch']} of {c['epochs_run']} run "
        f"(val loss {_f(c['best_val_loss'], 5)}, val r {_f(c['best_val_pearson'])}).",
        f"- Overfitting: {over}. Rule: val loss rises > {rules['overfit_val_rise']:.0%} after "
        f"the best epoch while train loss falls, or val/train loss > {rules['overfit_gap_ratio']}.",
        f"- Val r over the last {c['last_n']} epochs: std {_f(c['val_pearson_std_last'])} -> "
        + ("stable" if c["stable"] else f"**not settled** (>= {rules['stable_std']})")
        + ".",
        "",
        "## Plots",
        "",
        "- [Predicted vs actual, by logo type](plots/pred_vs_actual.png)",
        "- [Per-type metrics against the gates](plots/per_type.png)",
        "- [Residuals](plots/residuals.png)",
        "- [Training curves](plots/training_curves.png)",
        "- [SSIM distribution per logo type](plots/ssim_by_type.png)",
        "",
        "Files: metrics.json, per_type.csv, cv.json, baselines.json, gates.json, "
        "predictions.csv (all in this folder, and in the MLflow run under `validate/`).",
        "",
    ]
    return "\n".join(lines)


def write_reports(res: ValidationResult, out_dir: str | Path, vcfg: ValidateConfig) -> list[Path]:
    """metrics.json, per_type.csv, cv.json, baselines.json, gates.json, predictions.csv and
    report.md under ``out_dir`` (each written atomically); returns their paths."""
    from svg_quality.io import atomic_path, write_json, write_text

    out = Path(out_dir)
    paths = {
        n: out / n
        for n in (
            "metrics.json",
            "per_type.csv",
            "cv.json",
            "baselines.json",
            "gates.json",
            "predictions.csv",
            "report.md",
        )
    }
    write_json(paths["metrics.json"], finite_or_none(flat_metrics(res)))
    for name, df in (("per_type.csv", res.per_type), ("predictions.csv", res.predictions)):
        with atomic_path(paths[name]) as tmp:
            df.to_csv(tmp, index=False, float_format="%.6g")
    cv = {"enabled": False} if res.cv is None else {"enabled": True, **res.cv}
    write_json(paths["cv.json"], finite_or_none(cv))
    write_json(paths["baselines.json"], finite_or_none(res.baselines))
    write_json(
        paths["gates.json"],
        finite_or_none(
            {
                **res.gates,
                "convergence": res.convergence,
                "fail_on_gates": vcfg.fail_on_gates,
            }
        ),
    )
    write_text(paths["report.md"], render_report(res, vcfg))
    return list(paths.values())
