"""The size head: a second MLP that predicts log10(SVG bytes) of a VTracer conversion.

    labels (svg_bytes) --log10, min-max to [0.1, 0.9]--> y
    same input rows as the SSIM head (same InputSpec) --QualityMLP--> sigmoid --> log10 bytes

Why a second MLP and not a second output of the SSIM MLP: the SSIM head must stay
exactly as it was (same weights, same figures); a shared trunk would change it, and a
second MLP trained by the same :func:`svg_quality.trainer.fit` in the same stage and
MLflow run leaves it bit for bit untouched. It reuses :class:`QualityMLP` unchanged:
the sigmoid output predicts log10 bytes min-max scaled by :class:`SizeScale` (fitted on
the train split with a margin, recorded in the model file), so the same trainer,
schedulers, early stopping and export graphs serve both heads.

Validation (:func:`size_metrics`): Pearson r on log10 bytes, and the median of
``|predicted bytes / actual bytes - 1|`` (a relative error a person can read: 0.15 means
the typical prediction is 15% off), overall, per logo type and in grouped CV.
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

from svg_quality.metrics import pearson

if TYPE_CHECKING:
    from torch import nn

    from svg_quality.config import ModelConfig, TrainConfig, ValidateConfig
    from svg_quality.dataset import Arrays, LabeledData
    from svg_quality.model import InputSpec

log = logging.getLogger(__name__)

OUTPUT = "log10_svg_bytes"
MARGIN = 0.5  # log10 units beyond the train split's extremes (x3.2 either way)
UNIT_LOW, UNIT_HIGH = 0.1, 0.9  # where the train extremes land, away from sigmoid saturation
SIZE_METRICS = ("pearson_log10", "rmse_log10", "median_abs_ratio_err", "n")


@dataclass(frozen=True)
class SizeScale:
    """Affine map between log10(bytes) and the sigmoid's [0, 1]: ``unit = a * log10 + b``."""

    log10_low: float  # maps to 0
    log10_high: float  # maps to 1

    @classmethod
    def fit(cls, svg_bytes: np.ndarray) -> SizeScale:
        lg = np.log10(_check_bytes(svg_bytes))
        lo, hi = float(lg.min()) - MARGIN, float(lg.max()) + MARGIN
        # stretch so [lo, hi] covers [UNIT_LOW, UNIT_HIGH] of the sigmoid's range
        span = (hi - lo) / (UNIT_HIGH - UNIT_LOW)
        return cls(lo - UNIT_LOW * span, lo - UNIT_LOW * span + span)

    def to_unit(self, svg_bytes: np.ndarray) -> np.ndarray:
        lg = np.log10(_check_bytes(svg_bytes))
        return ((lg - self.log10_low) / (self.log10_high - self.log10_low)).astype(np.float32)

    def to_log10(self, unit: np.ndarray) -> np.ndarray:
        u = np.asarray(unit, dtype=np.float64)
        return self.log10_low + u * (self.log10_high - self.log10_low)

    def to_meta(self) -> dict[str, Any]:
        return {"log10_low": self.log10_low, "log10_high": self.log10_high}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> SizeScale:
        return cls(float(meta["log10_low"]), float(meta["log10_high"]))


def _check_bytes(svg_bytes: np.ndarray) -> np.ndarray:
    b = np.asarray(svg_bytes, dtype=np.float64)
    if b.size == 0:
        raise ValueError("no SVG sizes given")
    if not np.all(np.isfinite(b)) or np.any(b <= 0):
        raise ValueError(
            "svg_bytes must be positive and finite; rebuild the labels with `dvc repro label`"
        )
    return b


def svg_bytes_of(data: LabeledData, mask: np.ndarray | None = None) -> np.ndarray:
    """The labels' ``svg_bytes`` of the rows of ``mask`` (all when None)."""
    if "svg_bytes" not in data.rows.columns:
        raise ValueError("the labels have no svg_bytes column; rebuild them with `dvc repro label`")
    col = data.rows["svg_bytes"] if mask is None else data.rows.loc[mask, "svg_bytes"]
    return col.to_numpy(dtype=np.float64)


def size_arrays(
    data: LabeledData, spec: InputSpec, scale: SizeScale, mask: np.ndarray | None = None
) -> Arrays:
    """The SSIM head's input rows with the scaled log10 bytes as target."""
    from svg_quality.dataset import build_arrays

    arrays = build_arrays(data, spec, mask)
    return dataclasses.replace(arrays, y=scale.to_unit(svg_bytes_of(data, mask)))


def size_meta(ssim_meta: Mapping[str, Any], scale: SizeScale) -> dict[str, Any]:
    """The size model's file meta: the SSIM model's (same inputs) with its own output."""
    meta = dict(ssim_meta)
    meta["output"] = OUTPUT
    meta["size_scale"] = scale.to_meta()
    return meta


def size_train_config(train_cfg: TrainConfig) -> TrainConfig:
    """The size head's training settings: the SSIM head's without its ranking loss
    (``train.rank_weight`` was chosen on the SSIM ranking only)."""
    return dataclasses.replace(train_cfg, rank_weight=0.0)


def train_size_head(
    data: LabeledData,
    spec: InputSpec,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    progress: bool = True,
) -> tuple[Any, SizeScale]:
    """Fit the size MLP on the train split (early stopping on val) -> (FitResult, scale)."""
    from svg_quality.trainer import fit

    train_mask, val_mask = data.mask("train"), data.mask("val")
    scale = SizeScale.fit(svg_bytes_of(data, train_mask))
    cfg = dataclasses.replace(size_train_config(train_cfg), resume=False)
    res = fit(
        size_arrays(data, spec, scale, train_mask),
        size_arrays(data, spec, scale, val_mask),
        model_cfg,
        cfg,
        progress=progress,
        resnet_width=spec.resnet_width,
    )
    return res, scale


def predict_log10(model: nn.Module, meta: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """Predicted log10(bytes) ``[n]`` of the size model on input rows ``x``."""
    from svg_quality.trainer import predict

    return SizeScale.from_meta(meta["size_scale"]).to_log10(predict(model, x))


# --------------------------------------------------------------------------- validation


def size_metrics(actual_bytes: np.ndarray, predicted_log10: np.ndarray) -> dict[str, float]:
    """r and RMSE on log10 bytes, median ``|predicted/actual - 1|`` of bytes, n."""
    lg = np.log10(_check_bytes(actual_bytes))
    p = np.asarray(predicted_log10, dtype=np.float64)
    if p.shape != lg.shape:
        raise ValueError(f"{lg.size} actual sizes but {p.size} predictions")
    return {
        "pearson_log10": pearson(lg, p),
        "rmse_log10": float(np.sqrt(np.mean((p - lg) ** 2))),
        "median_abs_ratio_err": float(np.median(np.abs(10 ** (p - lg) - 1.0))),
        "n": int(lg.size),
    }


def predict_size_split(
    data: LabeledData, model: nn.Module, meta: Mapping[str, Any], split: str = "test"
) -> pd.DataFrame:
    """``image_id, logo_type, actual_bytes, predicted_bytes`` for the ok rows of ``split``."""
    from svg_quality.dataset import build_arrays
    from svg_quality.model import InputSpec

    mask = data.mask(split)
    if not mask.any():
        raise ValueError(f"the {split} split has no ok label rows")
    x = build_arrays(data, InputSpec.from_meta(meta["input"]), mask).x
    out = data.rows.loc[mask, ["image_id", "logo_type"]].reset_index(drop=True)
    out["actual_bytes"] = svg_bytes_of(data, mask)
    out["predicted_log10"] = predict_log10(model, meta, x)
    return out


def per_type_size(pred: pd.DataFrame, min_examples: int) -> dict[str, dict[str, Any]]:
    from svg_quality.validation import type_order

    out: dict[str, dict[str, Any]] = {}
    for t in type_order(pred["logo_type"].tolist()):
        sub = pred[pred["logo_type"] == t]
        if len(sub) < min_examples:
            out[t] = {"status": "skipped", "n": len(sub)}
        else:
            m = size_metrics(sub["actual_bytes"].to_numpy(), sub["predicted_log10"].to_numpy())
            out[t] = {"status": "reported", **m}
    return out


def cross_validate_size(
    data: LabeledData,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    vcfg: ValidateConfig,
    ranges: Mapping[str, Sequence[float]],
    progress: bool = True,
) -> dict[str, Any]:
    """Grouped K-fold CV of the size MLP: the same folds, inner split and epochs as the SSIM
    head's :func:`svg_quality.validation.cross_validate` (the test split is never touched)."""
    from svg_quality.dataset import build_arrays, make_input_spec
    from svg_quality.trainer import fit, predict
    from svg_quality.validation import cv_folds, cv_train_config

    folds = cv_folds(data, vcfg)
    cfg = cv_train_config(size_train_config(train_cfg), vcfg)
    results = []
    for i, fold in enumerate(folds):
        fit_mask, stop_mask, held_mask = fold.fit, fold.stop, fold.held
        spec = make_input_spec(data, model_cfg.requested_inputs, ranges, fit_mask=fit_mask)
        scale = SizeScale.fit(svg_bytes_of(data, fit_mask))
        res = fit(
            size_arrays(data, spec, scale, fit_mask),
            size_arrays(data, spec, scale, stop_mask),
            model_cfg,
            cfg,
            progress=progress,
            resnet_width=spec.resnet_width,
        )
        x_held = build_arrays(data, spec, held_mask).x
        m = size_metrics(svg_bytes_of(data, held_mask), scale.to_log10(predict(res.model, x_held)))
        m.update({"fold": i + 1, "best_epoch": res.best_epoch})
        log.info(
            "size fold %d/%d: r %.3f on log10 bytes, median |ratio-1| %.3f",
            i + 1,
            len(folds),
            m["pearson_log10"],
            m["median_abs_ratio_err"],
        )
        results.append(m)
    summary: dict[str, float] = {}
    for name in ("pearson_log10", "rmse_log10", "median_abs_ratio_err"):
        vals = np.array([r[name] for r in results], dtype=np.float64)
        summary[f"{name}_mean"] = float(np.mean(vals))
        summary[f"{name}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
    return {"folds": results, "summary": summary, "n_folds": len(folds)}


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
    if vcfg.cv_folds:
        ranges = meta["input"]["ranges"]
        report["cv"] = cross_validate_size(data, model_cfg, train_cfg, vcfg, ranges, progress)
    return report


def flat_size_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """``size/test/pearson_log10``, ``size/test/type/text/median_abs_ratio_err``, ``size/cv/...``."""
    out = {f"size/test/{k}": v for k, v in report["test"].items()}
    for t, m in report["per_type"].items():
        out.update({f"size/test/type/{t}/{k}": v for k, v in m.items() if k != "status"})
    if report.get("cv"):
        out.update({f"size/cv/{k}": v for k, v in report["cv"]["summary"].items()})
    return out


def render_size_section(report: Mapping[str, Any]) -> str:
    """The size head's section of report.md."""
    t = report["test"]
    lines = [
        "## Size head (log10 SVG bytes)",
        "",
        f"Test: r {t['pearson_log10']:.4f} on log10 bytes, RMSE {t['rmse_log10']:.4f}, "
        f"median |predicted/actual bytes - 1| {t['median_abs_ratio_err']:.3f} ({t['n']} rows).",
        "",
        "| logo type | n | r (log10) | median abs ratio err |",
        "|---|---|---|---|",
    ]
    for name, m in report["per_type"].items():
        if m["status"] == "reported":
            lines.append(
                f"| {name} | {m['n']} | {m['pearson_log10']:.4f} | "
                f"{m['median_abs_ratio_err']:.3f} |"
            )
        else:
            lines.append(f"| {name} | {m['n']} | skipped | skipped |")
    cv = report.get("cv")
    if cv:
        s = cv["summary"]
        lines += [
            "",
            f"Grouped CV ({cv['n_folds']} folds): r {s['pearson_log10_mean']:.4f} "
            f"± {s['pearson_log10_std']:.4f}, median abs ratio err "
            f"{s['median_abs_ratio_err_mean']:.3f} ± {s['median_abs_ratio_err_std']:.3f}.",
        ]
    return "\n".join(lines) + "\n"


def train_and_save(
    path: Any,
    data: LabeledData,
    spec: InputSpec,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    ssim_meta: Mapping[str, Any],
    *,
    progress: bool = True,
) -> dict[str, float]:
    """Train the size head beside the SSIM head (same inputs, same settings), write its
    model file atomically and return its final metrics (``val_*`` in the scaled unit,
    ``val_pearson_log10`` / ``val_median_abs_ratio_err`` in bytes)."""
    from svg_quality.model import save_model

    res, scale = train_size_head(data, spec, model_cfg, train_cfg, progress=progress)
    meta = {**size_meta(ssim_meta, scale), "best_epoch": res.best_epoch}
    save_model(path, res.model, meta)
    val = predict_size_split(data, res.model, meta, split="val")
    m = size_metrics(val["actual_bytes"].to_numpy(), val["predicted_log10"].to_numpy())
    return {
        "val_pearson_log10": m["pearson_log10"],
        "val_median_abs_ratio_err": m["median_abs_ratio_err"],
        "val_rmse_log10": m["rmse_log10"],
        "best_epoch": res.best_epoch,
        "epochs_run": res.epochs_run,
        "train_seconds": sum(h["epoch_s"] for h in res.history),
    }
