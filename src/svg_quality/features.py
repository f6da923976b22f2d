"""Featurize logos: ResNet-50 features, logo statistics and VTracer tables, cached by content.

    data/logos.csv --image_id--> data/logos/<id>.png
        -> DataLoader workers: decode, letterbox (uint8 [224, 224, 3]), logo statistics,
           VTracer tables (svg_quality.vtables)
        -> device: normalize, channels_last, autocast, ResNet-50 trunk -> [B, 2048]
    -> data/features/{features.npy, stats.npy, tables.npy, index.csv, meta.json}

Rows follow logos.csv order. ``image_id`` is a hash of the logo's bytes, so a row cached
under the same fingerprint is the same computation and is reused: adding 10 logos to
400 computes 10 rows. Each block has its own fingerprint (features: the backbone, a
digest of its weights, the preprocessing and compute dtype; stats and tables: their
names and version), so a change to one recomputes only it. The cache lives in a work
directory (``data/.features_work``, not a DVC out): one folder per block and
fingerprint, holding every row ever computed under it, so ``data/features`` is a plain
out that DVC can run-cache, and going back to earlier weights reuses their rows too.
"""

from __future__ import annotations

import csv
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
from svg_quality.vtables import TABLE_WIDTH, compute_tables, table_meta

if TYPE_CHECKING:
    from svg_quality.config import FeaturesConfig

FEATURES_FILE = "features.npy"
STATS_FILE = "stats.npy"
TABLES_FILE = "tables.npy"
BLOCK_ROWS = "rows.npy"  # one work-dir cache folder per block: rows.npy + index.csv
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
    """Item ``i``: (letterboxed ``uint8 [224, 224, 3]`` or empty, statistics ``float32 [k]``
    or empty, VTracer tables ``float32 [TABLE_WIDTH]`` or empty)."""

    def __init__(
        self,
        paths: Sequence[Path],
        with_stats: bool = True,
        with_tables: bool = False,
        with_image: bool = True,
    ) -> None:
        self.paths = list(paths)
        self.with_stats = with_stats
        self.with_tables = with_tables
        self.with_image = with_image

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        path = self.paths[i]
        try:
            rgb = load_rgb(path)
        except OSError as exc:
            raise ValueError(
                f"{path}: cannot read the logo ({exc}); rerun `dvc repro prepare`"
            ) from exc
        empty = np.zeros(0, np.float32)
        x = letterbox_array(Image.fromarray(rgb), INPUT_SIZE).copy() if self.with_image else empty
        s = compute_stats(rgb) if self.with_stats else empty
        t = compute_tables(rgb) if self.with_tables else empty
        return torch.from_numpy(x), torch.from_numpy(s), torch.from_numpy(t)


# --------------------------------------------------------------------------- extraction


@dataclass(frozen=True)
class Extracted:
    features: np.ndarray | None  # float32 [n, 2048], None without a model
    stats: np.ndarray | None  # float32 [n, k], None without statistics
    seconds: float
    tables: np.ndarray | None = None  # float32 [n, TABLE_WIDTH], None without tables

    @property
    def images_per_s(self) -> float:
        blocks = (self.features, self.stats, self.tables)
        n = next((len(b) for b in blocks if b is not None), 0)
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
    with_tables: bool = False,
    progress: bool = True,
) -> Extracted:
    """Features (and statistics, and VTracer tables) of the logos at ``paths``, in order.

    ``model`` must come from :func:`prepare_for_inference` (eval, on ``device``,
    channels_last); ``None`` computes the numpy blocks only (no letterboxing either).
    """
    n = len(paths)
    feats = np.empty((n, FEATURE_DIM), np.float32) if model is not None else None
    stats = np.empty((n, len(STAT_NAMES)), np.float32) if with_stats else None
    tables = np.empty((n, TABLE_WIDTH), np.float32) if with_tables else None
    loader = DataLoader(
        LogoImages(paths, with_stats, with_tables, with_image=model is not None),
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
        for xb, sb, tb in loader:  # xb: uint8 [B, 224, 224, 3] (or [B, 0])
            b = xb.shape[0]
            if stats is not None:
                stats[row : row + b] = sb.numpy()
            if tables is not None:
                tables[row : row + b] = tb.numpy()
            if model is not None:
                # NHWC -> NCHW view: already channels_last in memory, no copy.
                x = normalize(to_device(xb, device).permute(0, 3, 1, 2))  # [B, 3, 224, 224]
                with precision.autocast():
                    f = model(x)  # [B, 2048]
                feats[row : row + b] = f.float().cpu().numpy()
            row += b
            bar.update(b)
    return Extracted(feats, stats, time.perf_counter() - start, tables)


# --------------------------------------------------------------------------- cache


def fingerprints(info: WeightsInfo, dtype: str = "fp32") -> dict[str, str]:
    """Cache keys: features (backbone, weights digest, preprocessing, compute dtype), stats,
    tables, and all of them together.

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
    tables = json_digest(table_meta())
    return {
        "fingerprint": json_digest({"features": features, "stats": stats, "tables": tables}),
        "features_fingerprint": features,
        "stats_fingerprint": stats,
        "tables_fingerprint": tables,
    }


@dataclass
class BlockCache:
    """Rows of one block (features, stats or tables) computed under one fingerprint.

    Lives in ``<work_dir>/<block>-<fingerprint>/`` (rows.npy memory-mapped, index.csv);
    :meth:`save` writes the union of the old rows and the new ones, atomically.
    """

    folder: Path
    width: int
    rows: dict[str, int]  # image_id -> row of `array`
    array: np.ndarray | None  # [n, width], memory-mapped; None when empty

    @classmethod
    def open(cls, work_dir: str | Path | None, block: str, fp: str, width: int) -> BlockCache:
        """The cache folder for ``block`` under ``fp``; empty (with a warning if damaged)."""
        if work_dir is None:
            return cls(Path(), width, {}, None)
        folder = Path(work_dir) / f"{block}-{fp}"
        if not (folder / INDEX_FILE).is_file():
            return cls(folder, width, {}, None)
        try:
            with (folder / INDEX_FILE).open(newline="") as fh:
                rows = {r["image_id"]: int(r["row"]) for r in csv.DictReader(fh)}
            array = np.load(folder / BLOCK_ROWS, mmap_mode="r")
            if array.ndim != 2 or array.shape[1] != width or array.dtype != np.float32:
                raise ValueError(f"rows.npy is {array.dtype} {list(array.shape)}, not [n, {width}]")
            if any(not 0 <= r < array.shape[0] for r in rows.values()):
                raise ValueError("index.csv points outside rows.npy")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(
                f"{folder}: ignoring the damaged feature cache ({exc}); recomputing", stacklevel=2
            )
            return cls(folder, width, {}, None)
        return cls(folder, width, rows, array)

    def gather(self, image_ids: Sequence[str], out: np.ndarray) -> list[int]:
        """Copy cached rows into ``out`` (rows in ``image_ids`` order); return the positions
        still to compute."""
        hits = [(i, self.rows[k]) for i, k in enumerate(image_ids) if k in self.rows]
        if hits:
            dst, src = map(np.asarray, zip(*hits, strict=True))
            out[dst] = self.array[src]  # gathers just these rows from the memory map
        return [i for i, k in enumerate(image_ids) if k not in self.rows]

    def save(self, image_ids: Sequence[str], block: np.ndarray, computed: Sequence[int]) -> None:
        """Add the ``computed`` positions of ``block`` (rows in ``image_ids`` order)."""
        if self.folder == Path() or not computed:
            return
        new = {image_ids[i]: i for i in computed}
        keep = [k for k in self.rows if k not in new]
        parts = [block[list(new.values())]]
        if keep:
            parts.insert(0, self.array[[self.rows[k] for k in keep]])
        ids = keep + list(new)
        array = np.concatenate(parts).astype(np.float32, copy=False)
        self.array = None  # release the memory map before the folder is replaced
        with atomic_dir(self.folder) as tmp:
            np.save(tmp / BLOCK_ROWS, array)
            lines = ["image_id,row", *(f"{k},{i}" for i, k in enumerate(ids))]
            (tmp / INDEX_FILE).write_text("\n".join(lines) + "\n")
        self.rows = {k: i for i, k in enumerate(ids)}
        self.array = np.load(self.folder / BLOCK_ROWS, mmap_mode="r")


# --------------------------------------------------------------------------- the stage


def featurize(
    cfg: FeaturesConfig,
    image_ids: Sequence[str],
    logos_dir: str | Path,
    out_dir: str | Path,
    *,
    work_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``out_dir`` for ``image_ids``, reusing rows cached in ``work_dir`` (None: no
    cache, everything computed); return the run summary."""
    start = time.perf_counter()
    paths = logo_paths(image_ids, logos_dir)
    device = choose_device(cfg.device)
    precision = choose_inference_precision(device, cfg.amp)
    if device.type == "cpu":
        configure_cpu_threads()
    workers = resolve_workers(cfg.num_workers)
    model, info = load_backbone(cfg.weights, cfg.weights_path, cfg.seed)
    fps = fingerprints(info, precision.name)

    n = len(image_ids)
    widths = {"features": FEATURE_DIM, "stats": len(STAT_NAMES), "tables": TABLE_WIDTH}
    caches = {
        b: BlockCache.open(work_dir, b, fps[f"{b}_fingerprint"], w) for b, w in widths.items()
    }
    blocks = {b: np.empty((n, w), np.float32) for b, w in widths.items()}
    todo = {b: caches[b].gather(image_ids, blocks[b]) for b in widths}
    # Logos that need features get every block in the same pass (one decode); the others
    # get the numpy blocks they lack in a second, torch-free pass.
    need_f = set(todo["features"])
    rest = sorted((set(todo["stats"]) | set(todo["tables"])) - need_f)

    run = {"device": device, "precision": precision, "num_workers": workers, "progress": progress}
    extract_s = 0.0
    if need_f:
        idx = todo["features"]
        model = prepare_for_inference(model, device)
        res = extract(
            [paths[i] for i in idx], model, batch_size=cfg.batch_size, with_tables=True, **run
        )
        blocks["features"][idx], blocks["stats"][idx] = res.features, res.stats
        blocks["tables"][idx] = res.tables
        extract_s = res.seconds
    if rest:
        with_s = bool(set(todo["stats"]) & set(rest))
        with_t = bool(set(todo["tables"]) & set(rest))
        res = extract(
            [paths[i] for i in rest],
            None,
            batch_size=cfg.batch_size,
            with_stats=with_s,
            with_tables=with_t,
            **run,
        )
        if with_s:
            blocks["stats"][rest] = res.stats
        if with_t:
            blocks["tables"][rest] = res.tables
    for b in widths:
        caches[b].save(image_ids, blocks[b], todo[b])
    dropped = len(set(caches["features"].rows) - set(image_ids))  # kept in the cache
    del caches  # release the memory maps

    write_outputs(
        out_dir,
        image_ids,
        blocks["features"],
        blocks["stats"],
        info,
        fps,
        precision.name,
        tables=blocks["tables"],
    )
    return {
        "images": n,
        "computed": len(todo["features"]),
        "reused": n - len(todo["features"]),
        "stats_computed": len(todo["stats"]),
        "tables_computed": len(todo["tables"]),
        "dropped": dropped,
        "device": str(device),
        "dtype": precision.name,
        "weights": info.used,
        "weights_requested": info.requested,
        "weights_source": info.source,
        "batch_size": cfg.batch_size,
        "num_workers": workers,
        "images_per_s": round(len(todo["features"]) / extract_s, 2) if extract_s > 0 else 0.0,
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
    *,
    tables: np.ndarray | None = None,
) -> None:
    """features.npy, stats.npy, tables.npy, index.csv, meta.json - the whole directory
    swapped in at once (``tables`` None: no tables.npy, for callers without them).

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
    if tables is not None:
        meta["tables"] = table_meta()
    with atomic_dir(out_dir) as tmp:
        np.save(tmp / FEATURES_FILE, features.astype(np.float32, copy=False))
        np.save(tmp / STATS_FILE, stats.astype(np.float32, copy=False))
        if tables is not None:
            np.save(tmp / TABLES_FILE, tables.astype(np.float32, copy=False))
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
