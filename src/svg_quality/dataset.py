"""Assemble model inputs: ok label rows joined to image features and the per-image split.

    labels.parquet (status == ok) --image_id--> features/index.csv -> features.npy, stats.npy,
                                                                      tables.npy
                                  --image_id--> logos.csv (split)
    labels.parquet, VTracer's defaults (ok) --image_id--> the probe (ssim, log10 bytes)

Label rows may be at several long sides (the ``size`` column, ``data.sizes``): every
per-logo block (features, statistics, tables, the probe) describes the logo at the model's
view (the smallest size, ``data.image_size``), the parameters are in that view's frame,
and each row's size becomes the model's size input when there is more than one.

:func:`load_labeled` does the join once; :func:`make_input_spec` resolves ``model.inputs``
(``auto``) and fits the standardizers on the train split; :func:`build_arrays` turns any
row subset (a split, a cross-validation fold) into float32 arrays through the model's
:class:`InputSpec`, looking each row's VTracer-conditioned values up in its logo's
tables with :func:`svg_quality.vtables.lookup` (the predictor calls the same function).
Validate reuses all three for test rows and grouped folds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from svg_quality import vtables
from svg_quality.inputgroups import groups_of, resolve_inputs
from svg_quality.model import InputSpec
from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS
from svg_quality.probe import PROBE_NAMES

SPLITS = ("train", "val", "test")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabeledData:
    """Every ok label row with its image's feature row and split."""

    rows: pd.DataFrame  # image_id, logo_type, split, PARAM_NAMES..., ssim, [svg_bytes,] feature_row
    features: np.ndarray  # [n_images, 2048] float32, indexed by rows.feature_row
    stats: np.ndarray  # [n_images, k] float32, same rows
    stat_names: tuple[str, ...]
    feature_meta: dict[str, Any]
    tables: np.ndarray | None = None  # [n_images, TABLE_WIDTH] float32, same rows; None: none
    probe: np.ndarray | None = None  # [n_images, 2] ssim, log10 bytes at the defaults; NaN: none
    left_out: tuple[str, ...] = ()  # logos dropped for having no probe (drop_unprobed)
    sizes: tuple[int, ...] = ()  # the long sides the rows were converted at; [0] = the view

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
    labels_path: str | Path,
    features_dir: str | Path,
    logos_csv: str | Path,
    *,
    probe: bool = False,
) -> LabeledData:
    """Join ok label rows to their features and split; fail naming any image left unmatched.
    ``probe``: the model reads the probe, so logos without one are left out
    (:func:`drop_unprobed`)."""
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
    sizes = label_sizes(ok)
    # labels from before the size column: every row is at the view
    ok["size"] = ok["size"].astype(np.int64) if "size" in ok.columns else sizes[0]

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
    ok = ok.drop(columns=["origin"], errors="ignore")  # logos.csv owns the origin too
    if "origin" not in logos.columns:  # logos.csv from before data.sources
        logos = logos.assign(origin="unknown")
    rows = ok.merge(
        logos[["image_id", "split", "origin"]], on="image_id", how="left", validate="many_to_one"
    )
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
    if "svg_bytes" not in ok.columns:
        ok["svg_bytes"] = np.nan
    if rows["feature_row"].isna().any():
        lost = rows.loc[rows["feature_row"].isna(), "image_id"].iloc[0]
        raise ValueError(
            f"image {lost} has labels but no features in {features_dir}; run `dvc repro featurize`"
        )
    rows["feature_row"] = rows["feature_row"].astype(np.int64)
    keep = [
        "image_id",
        "logo_type",
        "split",
        "origin",
        "size",
        *PARAM_NAMES,
        "ssim",
        "feature_row",
    ]
    if "svg_bytes" in rows.columns:  # the size head's target
        keep.insert(keep.index("ssim") + 1, "svg_bytes")
    rows = rows[keep].reset_index(drop=True)
    data = LabeledData(
        rows=rows,
        features=features,
        stats=stats,
        stat_names=stat_names_from_meta(meta, stats.shape[1]),
        feature_meta=meta,
        tables=read_tables(features_dir, meta, features.shape[0]),
        probe=probe_values(ok[ok["size"] == sizes[0]], index, features.shape[0]),
        sizes=sizes,
    )
    return drop_unprobed(data) if probe else data


def label_sizes(labels: pd.DataFrame) -> tuple[int, ...]:
    """The long sides label rows were converted at, ascending (the first is the model's
    view); labels without a ``size`` column are all at the view, recorded as ``(0,)``."""
    if "size" not in labels.columns:
        return (0,)
    sizes = sorted({int(v) for v in labels["size"].dropna()})
    if not sizes or sizes[0] < 1:
        raise ValueError("labels: the size column must hold long sides in px > 0")
    return tuple(sizes)


def read_tables(features_dir: str | Path, meta: Mapping[str, Any], n: int) -> np.ndarray | None:
    """``tables.npy [n, TABLE_WIDTH]`` of a features dir, or None when it has none
    (built before the tables existed); fails when they are of another version."""
    path = Path(features_dir) / "tables.npy"
    if not path.is_file():
        return None
    vtables.check_meta(meta.get("tables", {}), f"{features_dir}/tables.npy")
    tables = np.load(path).astype(np.float32, copy=False)
    if tables.shape != (n, vtables.TABLE_WIDTH):
        raise ValueError(
            f"{path}: shape {list(tables.shape)}, expected [{n}, {vtables.TABLE_WIDTH}]; "
            "rebuild with `dvc repro featurize`"
        )
    return tables


def probe_values(ok_labels: pd.DataFrame, index: pd.DataFrame, n: int) -> np.ndarray:
    """Per feature row: SSIM and log10(SVG bytes) of the ok label row at VTracer's defaults
    (label samples them for every logo), NaN where a logo has none."""
    at_default = np.ones(len(ok_labels), dtype=bool)
    for name in PARAM_NAMES:
        at_default &= np.isclose(ok_labels[name].to_numpy(dtype=np.float64), VTRACER_DEFAULTS[name])
    d = ok_labels.loc[at_default, ["image_id", "ssim", "svg_bytes"]].drop_duplicates("image_id")
    d = d.merge(index[["image_id", "feature_row"]], on="image_id", how="inner")
    out = np.full((n, len(PROBE_NAMES)), np.nan, dtype=np.float32)
    fr = d["feature_row"].to_numpy(dtype=np.int64)
    out[fr, 0] = d["ssim"].to_numpy(dtype=np.float32)
    out[fr, 1] = np.log10(np.maximum(d["svg_bytes"].to_numpy(dtype=np.float64), 1.0))
    return out


# --------------------------------------------------------------------------- assembly


def fit_standardizer(data: LabeledData, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std ``[k]`` of the statistics over the images of ``mask``'s rows.

    Computed per image (not per label row) so images with more samples do not weigh
    more; a constant statistic gets std 1 so it standardizes to 0 instead of NaN.
    """
    return _mean_std(data.stats, _images(data, mask))


def _images(data: LabeledData, mask: np.ndarray) -> np.ndarray:
    images = np.unique(data.rows.loc[mask, "feature_row"].to_numpy())
    if images.size == 0:
        raise ValueError("cannot fit the input standardizers on zero images")
    return images


def _mean_std(block: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    block = (block if rows is None else block[rows]).astype(np.float64)
    mean, std = block.mean(axis=0), block.std(axis=0)
    std[~(std > 1e-12)] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def conditioned(data: LabeledData, rows: pd.DataFrame) -> np.ndarray:
    """The VTracer-conditioned inputs ``[n, len(COND_NAMES)]`` of label ``rows``."""
    if data.tables is None:
        raise ValueError(
            "model.inputs uses vtracer, but data/features has no tables.npy (built by an "
            "older featurize); rerun `dvc repro featurize`"
        )
    raw = rows[list(PARAM_NAMES)].to_numpy(dtype=np.float64)
    return vtables.lookup(data.tables, rows["feature_row"].to_numpy(), raw)


def drop_unprobed(data: LabeledData) -> LabeledData:
    """``data`` without the label rows of logos that have no probe (no ok label at
    VTracer's defaults: a panic or a failed render there); their ids in ``left_out``.

    A ``model.probe`` model cannot score such a logo (its predictor stops on it too, as
    VTracer fails there), so train and validate leave it out and log how many.
    """
    if data.probe is None:
        return data
    lacking = np.isnan(data.probe).any(axis=1)[data.rows["feature_row"].to_numpy()]
    if not lacking.any():
        return data
    lost = sorted(data.rows.loc[lacking, "image_id"].unique().tolist())
    if lacking.all():
        raise ValueError(
            f"model.probe: none of the {len(lost)} logos has an ok label at VTracer's "
            "defaults (the label stage samples them first for every logo); rerun "
            "`dvc repro label`, or set model.probe=false"
        )
    log.warning(
        "model.probe: left out %d logo(s) with no ok label at VTracer's defaults "
        "(%d label rows), e.g. %s; reports/label says why",
        len(lost),
        int(lacking.sum()),
        ", ".join(lost[:3]),
    )
    rows = data.rows.loc[~lacking].reset_index(drop=True)
    return dataclasses.replace(data, rows=rows, left_out=(*data.left_out, *lost))


def probe_block(data: LabeledData, rows: pd.DataFrame) -> np.ndarray:
    """The probe ``[n, 2]`` of label ``rows``; fails naming a logo without one."""
    block = data.probe[rows["feature_row"].to_numpy()]
    bad = np.isnan(block).any(axis=1)
    if bad.any():
        lost = rows["image_id"].to_numpy()[np.flatnonzero(bad)[0]]
        raise ValueError(
            f"image {lost} has no ok label at VTracer's defaults, which model.probe needs; "
            "check reports/label, or set model.probe=false"
        )
    return block


def make_input_spec(
    data: LabeledData,
    inputs: str,
    ranges: Mapping[str, Sequence[float]],
    fit_mask: np.ndarray | None = None,
) -> InputSpec:
    """The :class:`InputSpec` for ``inputs`` (``auto`` resolved by the features' weights),
    standardizers fitted on ``fit_mask`` (default: the train split)."""
    resolved = resolve_inputs(inputs, weights_used(data.feature_meta))
    groups = groups_of(resolved)
    mask = data.mask("train") if fit_mask is None else fit_mask
    kw: dict[str, Any] = {}
    stats_mean = stats_std = np.zeros(0, dtype=np.float32)
    if "stats" in groups and data.stats.shape[1]:
        stats_mean, stats_std = fit_standardizer(data, mask)
    if "vtracer" in groups:
        # over rows, not images: the values depend on each row's parameters
        mean, std = _mean_std(conditioned(data, data.rows.loc[mask]))
        kw.update(
            cond_names=vtables.COND_NAMES,
            cond_mean=tuple(float(v) for v in mean),
            cond_std=tuple(float(v) for v in std),
            tables=vtables.table_meta(),
        )
    if "probe" in groups:
        mean, std = _mean_std(probe_block(data, data.rows.loc[mask].drop_duplicates("image_id")))
        kw.update(probe_mean=tuple(float(v) for v in mean), probe_std=tuple(float(v) for v in std))
    return InputSpec(
        inputs=resolved,
        resnet_dim=int(data.features.shape[1]),
        stat_names=data.stat_names,
        stats_mean=tuple(float(v) for v in stats_mean),
        stats_std=tuple(float(v) for v in stats_std),
        ranges={n: (float(ranges[n][0]), float(ranges[n][1])) for n in PARAM_NAMES},
        sizes=tuple(v for v in data.sizes if v > 0),
        **kw,
    )


def build_arrays(data: LabeledData, spec: InputSpec, mask: np.ndarray | None = None) -> Arrays:
    """Rows selected by ``mask`` (all when None) as model inputs through ``spec``."""
    rows = data.rows if mask is None else data.rows.loc[mask]
    fr = rows["feature_row"].to_numpy()
    x = spec.assemble(
        data.features[fr] if spec.uses_resnet else None,
        data.stats[fr] if spec.uses_stats else None,
        rows[list(PARAM_NAMES)].to_numpy(dtype=np.float64),
        cond=conditioned(data, rows) if spec.uses_vtracer else None,
        probe=probe_block(data, rows) if spec.uses_probe else None,
        long_side=rows[["size"]].to_numpy(dtype=np.float32) if spec.uses_size else None,
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
    if data.left_out:
        out["images_left_out_no_probe"] = len(data.left_out)
    return out
