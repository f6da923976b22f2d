"""Is the trained model fit for use? validate's checks of both heads, in one result.

    model.pt + test rows ──> predictions ──> metrics overall, per logo type, size, source
    train rows ──> baselines (svg_quality.baselines) ──> the same test rows
    test metrics ──> readiness gates; history.csv ──> convergence (svg_quality.gates)
    train+val rows ──> grouped CV of the SSIM head (svg_quality.crossval, SSIM_HEAD)
    size_model.pt ──> the size head's test metrics and CV (svg_quality.sizehead)
      ──> one ValidationResult ──> reports/validate/ (svg_quality.report)

Every function works on tables and arrays already in memory; ``stages/validate.py`` does
the reading and MLflow logging, :mod:`svg_quality.report` the writing. Model inputs are
always assembled through :mod:`svg_quality.dataset` (``build_arrays`` /
``make_input_spec``) and models trained with :func:`svg_quality.trainer.fit`, so CV folds
see exactly what the train stage sees.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from svg_quality.baselines import baseline_predictions, compare_baselines
from svg_quality.config import LOGO_TYPES, ModelConfig, TrainConfig, ValidateConfig
from svg_quality.crossval import cross_validate
from svg_quality.gates import convergence, evaluate_gates
from svg_quality.inputspec import InputSpec
from svg_quality.metrics import (
    METRIC_NAMES,
    RANK_METRIC_NAMES,
    full_metrics,
    in_box,
    ranking_metrics,
)
from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS
from svg_quality.sizehead import (
    OUTPUT,
    SIZE_HEAD,
    predict_size_split,
    size_metrics,
)

if TYPE_CHECKING:
    from torch import nn

    from svg_quality.dataset import Arrays, LabeledData

log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------- the SSIM head's CV


@dataclass(frozen=True)
class SSIMHead:
    """The SSIM MLP as :func:`svg_quality.crossval.cross_validate` sees it: train's own
    settings, the labels' SSIM as target, and every metric plus the within-logo ranking
    (each logo's sets at one size) on the held-out fold."""

    name: str = "SSIM"
    summary: tuple[str, ...] = (*METRIC_NAMES, *(f"rank/{k}" for k in RANK_METRIC_NAMES))

    def train_config(self, train_cfg: TrainConfig) -> TrainConfig:
        return train_cfg

    def fitted(self, data: LabeledData, fit: np.ndarray) -> SSIMHead:
        return self  # SSIM needs no scaling

    def arrays(self, data: LabeledData, spec: InputSpec, mask: np.ndarray) -> Arrays:
        from svg_quality.dataset import build_arrays

        return build_arrays(data, spec, mask)

    def score(
        self, data: LabeledData, held: np.ndarray, arrays: Arrays, pred: np.ndarray
    ) -> dict[str, Any]:
        m: dict[str, Any] = full_metrics(arrays.y, pred)
        rows = data.rows.loc[held, ["image_id", "size", *PARAM_NAMES]]
        rows = logo_at_size(rows.assign(actual=arrays.y.astype(np.float64), predicted=pred))
        rank = ranking_metrics(rows, VTRACER_DEFAULTS, group="logo")
        m.update({f"rank/{k}": rank[k] for k in RANK_METRIC_NAMES})
        return m

    def describe(self, m: Mapping[str, Any]) -> str:
        return f"rmse {m['rmse']:.4f}, r {m['pearson']:.3f} on {m['n']} rows ({m['images']} images)"


SSIM_HEAD = SSIMHead()


# --------------------------------------------------------------------------- the size head


def per_type_size(pred: pd.DataFrame, min_examples: int) -> dict[str, dict[str, Any]]:
    """Per logo type: :func:`size_metrics`, or ``skipped`` under ``min_examples`` rows."""
    out: dict[str, dict[str, Any]] = {}
    for t in type_order(pred["logo_type"].tolist()):
        sub = pred[pred["logo_type"] == t]
        if len(sub) < min_examples:
            out[t] = {"status": "skipped", "n": len(sub)}
        else:
            m = size_metrics(sub["actual_bytes"].to_numpy(), sub["predicted_log10"].to_numpy())
            out[t] = {"status": "reported", **m}
    return out


def validate_size_head(
    data: LabeledData,
    model: nn.Module,
    meta: Mapping[str, Any],
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    vcfg: ValidateConfig,
    progress: bool = True,
) -> dict[str, Any]:
    """Test metrics overall and per type, plus grouped CV when ``validate.cv_folds`` > 0."""
    if meta.get("output") != OUTPUT:
        raise ValueError(f"not a size model: its output is {meta.get('output')!r}, not {OUTPUT!r}")
    pred = predict_size_split(data, model, meta)
    report: dict[str, Any] = {
        "test": size_metrics(pred["actual_bytes"].to_numpy(), pred["predicted_log10"].to_numpy()),
        "per_type": per_type_size(pred, vcfg.min_type_examples),
        "cv": None,
    }
    if vcfg.cv_folds:  # the SSIM head's folds, inner splits and epochs
        ranges = meta["input"]["ranges"]
        report["cv"] = cross_validate(data, SIZE_HEAD, model_cfg, train_cfg, vcfg, ranges, progress)
    return report


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
    # the size head's report (sizehead.validate_size_head); None when it was not validated
    size: dict[str, Any] | None = None
    # each validate.extra_sets folder's metrics (svg_quality.evaluate), by folder name
    extra: dict[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)


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
    size: tuple[nn.Module, Mapping[str, Any]] | None = None,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> ValidationResult:
    """Run every check on a trained model; nothing is written. ``run_id``: the MLflow run;
    ``box`` (label.local_box): also rank each logo's sets inside it; ``size``: the size
    head's model and meta, validated after the SSIM head (test metrics and grouped CV on
    the same folds); ``extra``: the extra sets' metrics, carried into the result."""
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
        cv = cross_validate(data, SSIM_HEAD, model_cfg, train_cfg, vcfg, ranges, progress)
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
    size_report = None
    if size is not None:  # after the SSIM head, as the stage always ran them
        size_report = validate_size_head(data, *size, model_cfg, train_cfg, vcfg, progress)
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
        size_report,
        dict(extra or {}),
    )
