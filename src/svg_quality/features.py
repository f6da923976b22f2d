"""Featurize logos: ResNet-50 features and logo statistics, cached by image content.

    data/logos.csv --image_id--> data/logos/<id>.png
        -> DataLoader workers: decode, letterbox (uint8 [224, 224, 3]), logo statistics
        -> device: normalize, channels_last, autocast, ResNet-50 trunk -> [B, 2048]
    -> data/features/{features.npy, stats.npy, index.csv, meta.json}

Rows follow logos.csv order. ``image_id`` is a hash of the logo's bytes, so a row cached
under the same fingerprint is the same computation and is reused: adding 10 logos to
400 computes 10 rows. The features fingerprint covers the backbone, a digest of its
weights and the preprocessing; the stats fingerprint covers the statistics' names and
version, so a change to the statistics recomputes only them.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from svg_quality.accel import (
    Precision,
    choose_device,
    choose_precision,
    configure_cpu_threads,
    cpu_has_native_bf16,
    to_device,
)
from svg_quality.backbone import (
    BACKBONE,
    FEATURE_DIM,
    INPUT_SIZE,
    PREPROCESSING,
    WeightsInfo,
    letterbox_array,
    load_backbone,
    normalize,
    prepare_for_inference,
)
from svg_quality.images import load_rgb
from svg_quality.io import atomic_dir, json_digest, write_json
from svg_quality.logostats import STAT_NAMES, STATS_VERSION, compute_stats

if TYPE_CHECKING:
    from svg_quality.config import FeaturesConfig

FEATURES_FILE = "features.npy"
STATS_FILE = "stats.npy"
INDEX_FILE = "index.csv"
META_FILE = "meta.json"
MAX_AUTO_WORKERS = 8  # decoding + letterboxing + statistics of a 256 px logo is ~5-15 ms


# --------------------------------------------------------------------------- inputs


def read_logo_ids(logos_csv: str | Path) -> list[str]:
    """The ``image_id`` column of logos.csv, in order (unique, non-empty)."""
    path = Path(logos_csv)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: logos table not found; run `dvc repro prepare` first")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if "image_id" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: no image_id column (columns: {reader.fieldnames})")
        ids = [row["image_id"] for row in reader]
    if not ids:
        raise ValueError(f"{path}: no logos listed; run `dvc repro prepare` to make some")
    seen: set[str] = set()
    for i in ids:
        if not i or i in seen:
            raise ValueError(f"{path}: image_id {i!r} is empty or listed twice")
        seen.add(i)
    return ids


def logo_paths(image_ids: Sequence[str], logos_dir: str | Path) -> list[Path]:
    """``<logos_dir>/<image_id>.png`` for each id; fails listing the missing files."""
    paths = [Path(logos_dir) / f"{i}.png" for i in image_ids]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} logo file(s) listed in logos.csv are missing, e.g. {missing[:3]}; "
            "rerun `dvc repro prepare`"
        )
    return paths


def choose_inference_precision(device: torch.device, amp: str = "auto") -> Precision:
    """``features.amp``. ``auto``: accel's choice on CUDA (bf16, else fp16); on a CPU with
    hardware bf16, bf16 too - about twice as fast as fp32 for this inference-only pass,
    features within ~0.5% of fp32 and computed like a GPU run's; else fp32."""
    if amp == "auto" and device.type == "cpu" and cpu_has_native_bf16():
        return Precision(device, torch.bfloat16)
    return choose_precision(device, amp)


def resolve_workers(num_workers: int | str) -> int:
    """``auto`` -> one DataLoader worker per core, at most MAX_AUTO_WORKERS."""
    if num_workers == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, min(MAX_AUTO_WORKERS, cores or 1))
    if isinstance(num_workers, int) and num_workers >= 0:
        return num_workers
    raise ValueError(f"features.num_workers = {num_workers!r} is invalid; allowed: auto or >= 0")


class LogoImages(Dataset):
    """Item ``i``: (letterboxed ``uint8 [224, 224, 3]``, statistics ``float32 [k]`` or empty)."""

    def __init__(self, paths: Sequence[Path], with_stats: bool = True) -> None:
        self.paths = list(paths)
        self.with_stats = with_stats

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.paths[i]
        try:
            rgb = load_rgb(path)
        except OSError as exc:
            raise ValueError(
                f"{path}: cannot read the logo ({exc}); rerun `dvc repro prepare`"
            ) from exc
        x = torch.from_numpy(letterbox_array(Image.fromarray(rgb), INPUT_SIZE).copy())
        s = compute_stats(rgb) if self.with_stats else np.zeros(0, np.float32)
        return x, torch.from_numpy(s)


# --------------------------------------------------------------------------- extraction


@dataclass(frozen=True)
class Extracted:
    features: np.ndarray | None  # float32 [n, 2048], None without a model
    stats: np.ndarray | None  # float32 [n, k], None without statistics
    seconds: float

    @property
    def images_per_s(self) -> float:
        n = len(self.features if self.features is not None else self.stats)
        return n / self.seconds if self.seconds > 0 else 0.0


def extract(
    paths: Sequence[Path],
    model: nn.Module | None,
    *,
    device: torch.device,
    precision: Precision,
    batch_size: int = 64,
    num_workers: int = 0,
    with_stats: bool = True,
    progress: bool = True,
) -> Extracted:
    """Features (and statistics) of the logos at ``paths``, in order.

    ``model`` must come from :func:`prepare_for_inference` (eval, on ``device``,
    channels_last); ``None`` computes statistics only.
    """
    n = len(paths)
    feats = np.empty((n, FEATURE_DIM), np.float32) if model is not None else None
    stats = np.empty((n, len(STAT_NAMES)), np.float32) if with_stats else None
    loader = DataLoader(
        LogoImages(paths, with_stats),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",  # page-locked batches: async host-to-device copies
        prefetch_factor=4 if num_workers else None,
    )
    start = time.perf_counter()
    row = 0
    bar = tqdm(total=n, unit="img", desc="featurize", disable=not progress, mininterval=1.0)
    with torch.inference_mode(), bar:
        for xb, sb in loader:  # xb: uint8 [B, 224, 224, 3]
            b = xb.shape[0]
            if stats is not None:
                stats[row : row + b] = sb.numpy()
            if model is not None:
                # NHWC -> NCHW view: already channels_last in memory, no copy.
                x = normalize(to_device(xb, device).permute(0, 3, 1, 2))  # [B, 3, 224, 224]
                with precision.autocast():
                    f = model(x)  # [B, 2048]
                feats[row : row + b] = f.float().cpu().numpy()
            row += b
            bar.update(b)
    return Extracted(feats, stats, time.perf_counter() - start)


# --------------------------------------------------------------------------- cache


def fingerprints(info: WeightsInfo, dtype: str = "fp32") -> dict[str, str]:
    """Cache keys: features (backbone, weights digest, preprocessing, compute dtype), stats, both.

    The dtype is part of the key so rows computed in bf16 are never mixed with fp32 rows.
    """
    features = json_digest(
        {
            "backbone": BACKBONE,
            "feature_dim": FEATURE_DIM,
            "weights": info.digest,
            "preprocessing": PREPROCESSING,
            "dtype": dtype,
        }
    )
    stats = json_digest({"names": list(STAT_NAMES), "version": STATS_VERSION})
    return {
        "fingerprint": json_digest({"features": features, "stats": stats}),
        "features_fingerprint": features,
        "stats_fingerprint": stats,
    }


@dataclass
class Cache:
    """A previous featurize output, memory-mapped."""

    meta: dict[str, Any]
    rows: dict[str, int]  # image_id -> row
    features: np.ndarray
    stats: np.ndarray


def read_cache(out_dir: str | Path) -> Cache | None:
    """The previous output in ``out_dir``; None (with a warning if it is damaged) when unusable."""
    d = Path(out_dir)
    if not (d / META_FILE).is_file():
        return None
    try:
        meta = json.loads((d / META_FILE).read_text())
        if not isinstance(meta, dict):
            raise ValueError(f"{META_FILE} is not a JSON object")
        with (d / INDEX_FILE).open(newline="") as fh:
            rows = {r["image_id"]: int(r["row"]) for r in csv.DictReader(fh)}
        features = np.load(d / FEATURES_FILE, mmap_mode="r")
        stats = np.load(d / STATS_FILE, mmap_mode="r")
        n = features.shape[0]
        if features.shape != (n, FEATURE_DIM) or stats.shape[0] != n:
            raise ValueError(f"shapes {features.shape} and {stats.shape} do not match")
        if any(not 0 <= r < n for r in rows.values()):
            raise ValueError("index.csv points outside features.npy")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"{d}: ignoring the damaged feature cache ({exc}); recomputing", stacklevel=2)
        return None
    return Cache(meta, rows, features, stats)


# --------------------------------------------------------------------------- the stage


def featurize(
    cfg: FeaturesConfig,
    image_ids: Sequence[str],
    logos_dir: str | Path,
    out_dir: str | Path,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``out_dir`` for ``image_ids`` (reusing cached rows); return the run summary."""
    start = time.perf_counter()
    paths = logo_paths(image_ids, logos_dir)
    device = choose_device(cfg.device)
    precision = choose_inference_precision(device, cfg.amp)
    if device.type == "cpu":
        configure_cpu_threads()
    workers = resolve_workers(cfg.num_workers)
    model, info = load_backbone(cfg.weights, cfg.weights_path, cfg.seed)
    fps = fingerprints(info, precision.name)

    cache = read_cache(out_dir)
    feat_cached: dict[str, int] = {}
    stats_cached: dict[str, int] = {}
    if cache is not None:
        if cache.meta.get("features_fingerprint") == fps["features_fingerprint"]:
            feat_cached = cache.rows
        if cache.meta.get("stats_fingerprint") == fps["stats_fingerprint"]:
            stats_cached = cache.rows

    n = len(image_ids)
    features = np.empty((n, FEATURE_DIM), np.float32)
    stats = np.empty((n, len(STAT_NAMES)), np.float32)
    reuse_f = [(i, feat_cached[k]) for i, k in enumerate(image_ids) if k in feat_cached]
    reuse_s = [(i, stats_cached[k]) for i, k in enumerate(image_ids) if k in stats_cached]
    if reuse_f:
        dst, src = map(np.asarray, zip(*reuse_f, strict=True))
        features[dst] = cache.features[src]  # gathers just these rows from the memory map
    if reuse_s:
        dst, src = map(np.asarray, zip(*reuse_s, strict=True))
        stats[dst] = cache.stats[src]
    todo_f = [i for i, k in enumerate(image_ids) if k not in feat_cached]
    todo_s = [i for i, k in enumerate(image_ids) if k in feat_cached and k not in stats_cached]
    dropped = len(set(cache.rows) - set(image_ids)) if cache is not None else 0
    del cache  # release the memory maps before the directory is replaced

    run = {"device": device, "precision": precision, "num_workers": workers, "progress": progress}
    extract_s = 0.0
    if todo_f:
        model = prepare_for_inference(model, device)
        res = extract([paths[i] for i in todo_f], model, batch_size=cfg.batch_size, **run)
        features[todo_f], stats[todo_f] = res.features, res.stats
        extract_s = res.seconds
    if todo_s:
        res = extract([paths[i] for i in todo_s], None, batch_size=cfg.batch_size, **run)
        stats[todo_s] = res.stats

    write_outputs(out_dir, image_ids, features, stats, info, fps, precision.name)
    return {
        "images": n,
        "computed": len(todo_f),
        "reused": n - len(todo_f),
        "stats_computed": len(todo_f) + len(todo_s),
        "dropped": dropped,
        "device": str(device),
        "dtype": precision.name,
        "weights": info.used,
        "weights_requested": info.requested,
        "weights_source": info.source,
        "batch_size": cfg.batch_size,
        "num_workers": workers,
        "images_per_s": round(len(todo_f) / extract_s, 2) if extract_s > 0 else 0.0,
        "extract_s": round(extract_s, 3),
        "total_s": round(time.perf_counter() - start, 3),
    }


def write_outputs(
    out_dir: str | Path,
    image_ids: Sequence[str],
    features: np.ndarray,
    stats: np.ndarray,
    info: WeightsInfo,
    fps: dict[str, str],
    dtype: str = "fp32",
) -> None:
    """features.npy, stats.npy, index.csv, meta.json - the whole directory swapped in at once.

    ``dtype`` is the precision the backbone ran in (features are stored as float32 either
    way); a predictor running the backbone in another precision sees features ~0.5% apart.
    """
    meta = {
        "backbone": BACKBONE,
        "layers": "ResNet-50 without fc: global average pool of layer4",
        "feature_dim": FEATURE_DIM,
        "weights": info.to_dict(),
        "input_size": INPUT_SIZE,
        "compute_dtype": dtype,
        "preprocessing": PREPROCESSING,
        "stat_names": list(STAT_NAMES),
        "stats_version": STATS_VERSION,
        "n_images": len(image_ids),
        "libraries": _library_versions(),
        **fps,
    }
    with atomic_dir(out_dir) as tmp:
        np.save(tmp / FEATURES_FILE, features.astype(np.float32, copy=False))
        np.save(tmp / STATS_FILE, stats.astype(np.float32, copy=False))
        lines = ["image_id,row", *(f"{k},{i}" for i, k in enumerate(image_ids))]
        (tmp / INDEX_FILE).write_text("\n".join(lines) + "\n")
        write_json(tmp / META_FILE, meta)


def _library_versions() -> dict[str, str]:
    import PIL
    import torchvision

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }
