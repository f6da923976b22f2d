"""Assemble model inputs: ok label rows joined to image features and the per-image split.

    labels.parquet (status == ok) --image_id--> features/index.csv -> features.npy, stats.npy
                                  --image_id--> logos.csv (split)

:func:`load_labeled` does the join once; :func:`make_input_spec` fits the statistics'
standardizer on the train split; :func:`build_arrays` turns any row subset (a split,
a cross-validation fold) into float32 arrays through the model's :class:`InputSpec`.
Validate reuses all three for test rows and grouped folds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from svg_quality.model import InputSpec
from svg_quality.paramspace import PARAM_NAMES

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class LabeledData:
    """Every ok label row with its image's feature row and split."""

    rows: pd.DataFrame  # image_id, logo_type, split, PARAM_NAMES..., ssim, [svg_bytes,] feature_row
    features: np.ndarray  # [n_images, 2048] float32, indexed by rows.feature_row
    stats: np.ndarray  # [n_images, k] float32, same rows
    stat_names: tuple[str, ...]
    feature_meta: dict[str, Any]

    def mask(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is invalid; allowed: {', '.join(SPLITS)}")
        return (self.rows["split"] == split).to_numpy()


@dataclass(frozen=True)
class Arrays:
    """Model-ready rows: ``x [n, width]`` float32, ``y [n]`` float32, and their keys."""

    x: np.ndarray
    y: np.ndarray
    image_id: np.ndarray
    logo_type: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


# --------------------------------------------------------------------------- loading


def read_features(features_dir: str | Path) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, dict]:
    """``(features [n, 2048], stats [n, k], index (image_id, row), meta)`` of a features dir."""
    d = Path(features_dir)
    names = ("features.npy", "stats.npy", "index.csv", "meta.json")
    missing = [n for n in names if not (d / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{d}: missing {', '.join(missing)}; run `dvc repro featurize` to build the features"
        )
    features = np.load(d / "features.npy").astype(np.float32, copy=False)
    stats = np.load(d / "stats.npy").astype(np.float32, copy=False)
    if stats.ndim == 1:
        stats = stats.reshape(-1, 0) if stats.size == 0 else stats[:, None]
    index = pd.read_csv(d / "index.csv", dtype={"image_id": str})
    meta = json.loads((d / "meta.json").read_text())
    if features.ndim != 2 or stats.shape[0] != features.shape[0]:
        raise ValueError(
            f"{d}: features.npy {features.shape} and stats.npy {stats.shape} must be 2-d with "
            "the same rows; rebuild with `dvc repro featurize`"
        )
    bad = index["row"][(index["row"] < 0) | (index["row"] >= features.shape[0])]
    if len(bad):
        raise ValueError(f"{d}/index.csv: row {int(bad.iloc[0])} is outside features.npy")
    return features, stats, index, meta


def stat_names_from_meta(meta: Mapping[str, Any], k: int) -> tuple[str, ...]:
    """The statistic names recorded by featurize, or ``stat_0..`` when none are recorded."""
    for key in ("stat_names", "statistic_names", "stats_names"):
        if isinstance(meta.get(key), list):
            names = tuple(str(n) for n in meta[key])
            break
    else:
        stats = meta.get("stats")
        names = tuple(str(n) for n in stats["names"]) if isinstance(stats, dict) else ()
    if not names:
        names = tuple(f"stat_{i}" for i in range(k))
    if len(names) != k:
        raise ValueError(f"features meta.json names {len(names)} statistics but stats.npy has {k}")
    return names


def weights_used(meta: Mapping[str, Any]) -> str:
    """The backbone weights the features came from (``imagenet``/``random``), from meta.json."""
    w = meta.get("weights")
    if isinstance(w, Mapping):
        w = w.get("used", w.get("source"))
    return str(w) if w is not None else "unknown"


def load_labeled(
    labels_path: str | Path, features_dir: str | Path, logos_csv: str | Path
) -> LabeledData:
    """Join ok label rows to their features and split; fail naming any image left unmatched."""
    labels = pd.read_parquet(labels_path)
    need = {"image_id", "logo_type", "ssim", "status", *PARAM_NAMES}
    if missing := sorted(need - set(labels.columns)):
        raise ValueError(
            f"{labels_path}: missing columns {missing}; rebuild with `dvc repro label`"
        )
    ok = labels[labels["status"] == "ok"].copy()
    if ok.empty:
        raise ValueError(
            f"{labels_path}: no rows with status == 'ok'; check the label stage's report"
        )
    ok["image_id"] = ok["image_id"].astype(str)

    logos = pd.read_csv(logos_csv, dtype={"image_id": str})
    if missing := sorted({"image_id", "split"} - set(logos.columns)):
        raise ValueError(
            f"{logos_csv}: missing columns {missing}; rebuild with `dvc repro prepare`"
        )
    if logos["image_id"].duplicated().any():
        dup = logos.loc[logos["image_id"].duplicated(), "image_id"].iloc[0]
        raise ValueError(f"{logos_csv}: image {dup} is listed twice (one split per image)")
    if bad := sorted(set(logos["split"]) - set(SPLITS)):
        raise ValueError(f"{logos_csv}: unknown split {bad[0]!r}; allowed: {', '.join(SPLITS)}")

    features, stats, index, meta = read_features(features_dir)
    # logos.csv owns the split; a split column copied into the labels must agree with it
    label_split = ok.pop("split") if "split" in ok.columns else None
    rows = ok.merge(logos[["image_id", "split"]], on="image_id", how="left", validate="many_to_one")
    if rows["split"].isna().any():
        lost = rows.loc[rows["split"].isna(), "image_id"].iloc[0]
        raise ValueError(
            f"image {lost} has labels but is not in {logos_csv}; rerun `dvc repro label` "
            "after prepare so labels and logos agree"
        )
    if label_split is not None:
        differs = label_split.to_numpy() != rows["split"].to_numpy()
        if differs.any():
            j = int(np.flatnonzero(differs)[0])
            raise ValueError(
                f"image {rows['image_id'].iloc[j]} is in split {label_split.iloc[j]!r} in "
                f"{labels_path} but {rows['split'].iloc[j]!r} in {logos_csv}; the labels are "
                "stale, rerun `dvc repro label`"
            )
    index = index[["image_id", "row"]].rename(columns={"row": "feature_row"})
    rows = rows.merge(index, on="image_id", how="left", validate="many_to_one")
    if rows["feature_row"].isna().any():
        lost = rows.loc[rows["feature_row"].isna(), "image_id"].iloc[0]
        raise ValueError(
            f"image {lost} has labels but no features in {features_dir}; run `dvc repro featurize`"
        )
    rows["feature_row"] = rows["feature_row"].astype(np.int64)
    keep = ["image_id", "logo_type", "split", *PARAM_NAMES, "ssim", "feature_row"]
    if "svg_bytes" in rows.columns:  # the size head's target
        keep.insert(keep.index("ssim") + 1, "svg_bytes")
    rows = rows[keep].reset_index(drop=True)
    return LabeledData(
        rows=rows,
        features=features,
        stats=stats,
        stat_names=stat_names_from_meta(meta, stats.shape[1]),
        feature_meta=meta,
    )


# --------------------------------------------------------------------------- assembly


def fit_standardizer(data: LabeledData, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std ``[k]`` of the statistics over the images of ``mask``'s rows.

    Computed per image (not per label row) so images with more samples do not weigh
    more; a constant statistic gets std 1 so it standardizes to 0 instead of NaN.
    """
    images = np.unique(data.rows.loc[mask, "feature_row"].to_numpy())
    if images.size == 0:
        raise ValueError("cannot fit the statistics standardizer on zero images")
    block = data.stats[images].astype(np.float64)
    mean, std = block.mean(axis=0), block.std(axis=0)
    std[~(std > 1e-12)] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def make_input_spec(
    data: LabeledData,
    inputs: str,
    ranges: Mapping[str, Sequence[float]],
    fit_mask: np.ndarray | None = None,
) -> InputSpec:
    """The :class:`InputSpec` for ``inputs``, statistics standardized on ``fit_mask`` (train)."""
    uses_stats = inputs in ("resnet+stats", "stats")
    mean = std = np.zeros(0, dtype=np.float32)
    if uses_stats and data.stats.shape[1]:
        mean, std = fit_standardizer(data, data.mask("train") if fit_mask is None else fit_mask)
    return InputSpec(
        inputs=inputs,
        resnet_dim=int(data.features.shape[1]),
        stat_names=data.stat_names,
        stats_mean=tuple(float(v) for v in mean),
        stats_std=tuple(float(v) for v in std),
        ranges={n: (float(ranges[n][0]), float(ranges[n][1])) for n in PARAM_NAMES},
    )


def build_arrays(data: LabeledData, spec: InputSpec, mask: np.ndarray | None = None) -> Arrays:
    """Rows selected by ``mask`` (all when None) as model inputs through ``spec``."""
    rows = data.rows if mask is None else data.rows.loc[mask]
    fr = rows["feature_row"].to_numpy()
    x = spec.assemble(
        data.features[fr] if spec.uses_resnet else None,
        data.stats[fr] if spec.uses_stats else None,
        rows[list(PARAM_NAMES)].to_numpy(dtype=np.float64),
    )  # [n, spec.width]
    return Arrays(
        x=x,
        y=rows["ssim"].to_numpy(dtype=np.float32),
        image_id=rows["image_id"].to_numpy(dtype=str),
        logo_type=rows["logo_type"].to_numpy(dtype=str),
    )


def split_arrays(
    data: LabeledData, inputs: str, ranges: Mapping[str, Sequence[float]]
) -> tuple[InputSpec, dict[str, Arrays]]:
    """The spec (standardized on train) and the train/val/test arrays, image-disjoint."""
    spec = make_input_spec(data, inputs, ranges)
    arrays = {s: build_arrays(data, spec, data.mask(s)) for s in SPLITS}
    for s in ("train", "val"):
        if len(arrays[s]) == 0:
            raise ValueError(
                f"the {s} split has no ok label rows; check split.{s if s != 'train' else 'val'} "
                "and the label stage's failures"
            )
    return spec, arrays


def data_summary(data: LabeledData) -> dict[str, Any]:
    """Row and image counts per split (for logs and MLflow params)."""
    out: dict[str, Any] = {}
    for s in SPLITS:
        m = data.mask(s)
        out[f"{s}_rows"] = int(m.sum())
        out[f"{s}_images"] = int(data.rows.loc[m, "image_id"].nunique())
    return out
