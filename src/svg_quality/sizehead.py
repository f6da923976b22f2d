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
the typical prediction is 15% off), overall, per logo type
(:func:`svg_quality.validation.validate_size_head`) and in grouped CV
(:func:`svg_quality.crossval.cross_validate` with :data:`SIZE_HEAD`: the SSIM head's
folds, inner splits and epochs). Its flat keys and report.md section:
:mod:`svg_quality.report`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from svg_quality.metrics import pearson

if TYPE_CHECKING:
    from torch import nn

    from svg_quality.config import ModelConfig, TrainConfig
    from svg_quality.dataset import Arrays, LabeledData
    from svg_quality.model import InputSpec

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


@dataclass(frozen=True)
class SizeHead:
    """The size MLP as :func:`svg_quality.crossval.cross_validate` sees it: its own training
    settings, log10 bytes scaled by a :class:`SizeScale` fitted on each fold's training
    rows, and :func:`size_metrics` on the held-out fold."""

    name: str = "size"
    summary: tuple[str, ...] = ("pearson_log10", "rmse_log10", "median_abs_ratio_err")
    scale: SizeScale | None = None  # set per fold by fitted()

    def train_config(self, train_cfg: TrainConfig) -> TrainConfig:
        return size_train_config(train_cfg)

    def fitted(self, data: LabeledData, fit: np.ndarray) -> SizeHead:
        return dataclasses.replace(self, scale=SizeScale.fit(svg_bytes_of(data, fit)))

    def _scale(self) -> SizeScale:
        if self.scale is None:
            raise ValueError("the size head has no scale yet: call fitted() on a fold first")
        return self.scale

    def arrays(self, data: LabeledData, spec: InputSpec, mask: np.ndarray) -> Arrays:
        return size_arrays(data, spec, self._scale(), mask)

    def score(
        self, data: LabeledData, held: np.ndarray, arrays: Arrays, pred: np.ndarray
    ) -> dict[str, Any]:
        return size_metrics(svg_bytes_of(data, held), self._scale().to_log10(pred))

    def describe(self, m: Mapping[str, Any]) -> str:
        return (
            f"r {m['pearson_log10']:.3f} on log10 bytes, "
            f"median |ratio-1| {m['median_abs_ratio_err']:.3f}"
        )


SIZE_HEAD = SizeHead()


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
