"""The ``prepare`` stage's library: gather logos, normalize, dedupe, split, report.

Sources (``data.sources``, mixed in one run): ``synthetic`` (svg_quality.synthetic),
``artwork`` (real vector icons of the pinned sets ``data.artwork``, svg_quality.artwork:
vendored in ``artwork/``, or fetched when a set is not or ``data.per_set`` exceeds what is
vendored) and folders laid out as ``<logo_type>/<image file>``. logos.csv's ``origin`` says
which (``synthetic``, ``artwork``, ``folder``); splits are stratified by logo type within
each stratum (``Job.stratum``: synthetic, each artwork set, each folder). Bad files never
stop the stage: each becomes a row of ``rejects.csv`` with a reason code (see
:func:`svg_quality.images.open_image`, plus ``unknown_file``, ``no_type_folder``,
``unsupported_mode``, ``render_failed`` and ``duplicate``).

Every logo is stored at long side ``data.image_size`` (``<image_id>.png``, the model's
view; its bytes are the ``image_id``). A share ``data.size_share`` of each logo type and
split (:func:`choose_sized`) is also stored at each larger long side ``S`` of
``data.sizes`` as ``<S>/<image_id>.png``, for label to convert at that size: a synthetic
logo drawn at the largest size and area-downsampled to the others, a folder logo
normalized from its source when that is at least ``S`` px long (never upsampled), an
artwork icon rendered from its SVG at ``S``.
logos.csv's ``sizes`` lists the larger sizes written for each logo ("512 1024", or "").
"""

from __future__ import annotations

import multiprocessing
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from svg_quality import artwork, images, io, synthetic
from svg_quality.artsets import TRAINING, VENDORED
from svg_quality.config import LOGO_TYPES, SOURCE_KINDS, DataConfig, SplitConfig
from svg_quality.vectorize import RenderFailed

LOGO_COLUMNS = [
    "image_id",
    "path",
    "logo_type",
    "source",
    "origin",
    "width",
    "height",
    "split",
    "sizes",
]
ARTWORK_DIR = Path("artwork")  # the vendored sets, relative to the repository root
REJECT_COLUMNS = ["source", "reason", "detail"]
_TYPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """One candidate logo: a synthetic recipe, an artwork icon or a file in a source folder."""

    logo_type: str
    # "synthetic:<type>:<index>", "artwork:<set>:<icon>", or the path relative to the source
    # folder (prefixed with the folder when data.sources names several folders)
    source: str
    file: str | None = None  # absolute path for folder sources
    index: int = 0
    origin: str = "synthetic"  # "synthetic", "artwork" or "folder"
    icon: artwork.Icon | None = None  # artwork sources
    stratum: str = "synthetic"  # what splits are stratified within (with the logo type)


@dataclass(frozen=True)
class Result:
    job: Job
    png: bytes | None = None
    width: int = 0
    height: int = 0
    reason: str = ""
    detail: str = ""


def synthetic_jobs(cfg: DataConfig) -> list[Job]:
    return [Job(t, f"synthetic:{t}:{i}", index=i) for t in LOGO_TYPES for i in range(cfg.per_type)]


def artwork_icons(name: str, per_set: int, seed: int, folder: Path = ARTWORK_DIR) -> list:
    """``per_set`` icons of the set ``name`` with their types (``[(Icon, type)]``).

    Brand logos and national flags are never drawn (:func:`artwork.training_icons`). A
    type-balanced :func:`svg_quality.artwork.sample` of the vendored icons
    (``<folder>/<name>.json``) when the set is vendored and holds enough, else of the whole
    pinned package, fetched (hash-checked, cached outside the DVC outs)."""
    path = folder / f"{name}.json"
    if name in VENDORED:
        if not path.is_file():
            raise FileNotFoundError(
                f"data.artwork: {path} is missing (run prepare from the repository root, or "
                "restore it: `git checkout -- artwork/` or `python scripts/vendor_artwork.py`)"
            )
        vendored = artwork.training_icons([icon for icon, _ in artwork.read_vendored(path)])
        if per_set <= len(vendored):
            return artwork.sample(vendored, per_set, seed)
    pkg = TRAINING[name]
    icons = artwork.training_icons(artwork.read_icons(pkg, artwork.fetch_tarball(pkg)))
    return artwork.sample(icons, per_set, seed)


def artwork_jobs(cfg: DataConfig, folder: Path = ARTWORK_DIR) -> list[Job]:
    """One job per chosen icon of every set in ``data.artwork``."""
    return [
        Job(
            kind,
            f"artwork:{name}:{icon.name}",
            origin="artwork",
            icon=icon,
            stratum=f"artwork:{name}",
        )
        for name in cfg.artwork
        for icon, kind in artwork_icons(name, cfg.per_set, cfg.seed, folder)
    ]


def source_jobs(cfg: DataConfig, folder: Path = ARTWORK_DIR) -> tuple[list[Job], list[Result]]:
    """The jobs (and the rejects found by listing) of every source in ``data.sources``."""
    jobs, rejects = [], []
    folders = [s for s in cfg.sources if s not in SOURCE_KINDS]
    for source in cfg.sources:
        if source == "synthetic":
            jobs += synthetic_jobs(cfg)
        elif source == "artwork":
            jobs += artwork_jobs(cfg, folder)
        else:
            more, bad = folder_jobs(Path(source), prefix=len(folders) > 1)
            jobs += more
            rejects += bad
    return jobs, rejects


def folder_jobs(root: Path, prefix: bool = False) -> tuple[list[Job], list[Result]]:
    """Every file under ``root``; the first path component is the logo type.

    ``prefix``: name sources ``<root>/<path>`` (several folders), not ``<path>``."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"data.sources: {str(root)!r} is not a folder; use 'synthetic', 'artwork' or a "
            "folder laid out as <logo_type>/<image file>"
        )
    jobs, rejects = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        name = f"{root.as_posix()}/{rel}" if prefix else rel
        job = Job(
            path.relative_to(root).parts[0],
            name,
            file=str(path),
            origin="folder",
            stratum=f"folder:{root.as_posix()}",
        )
        if len(path.relative_to(root).parts) < 2:
            rejects.append(
                Result(
                    job, reason="no_type_folder", detail="file is not inside a <logo_type>/ folder"
                )
            )
        elif not _TYPE_NAME.match(job.logo_type):
            rejects.append(
                Result(job, reason="bad_type_name", detail=f"folder name {job.logo_type!r}")
            )
        elif path.suffix.lower() not in images.IMAGE_EXTENSIONS:
            rejects.append(
                Result(
                    job,
                    reason="unknown_file",
                    detail=f"extension {path.suffix!r} is not an image type",
                )
            )
        else:
            jobs.append(job)
    return jobs, rejects


def process(job: Job, cfg: DataConfig) -> Result:
    """Produce one normalized logo (or a reject). Runs in worker processes."""
    try:
        if job.icon is not None:
            im = Image.fromarray(artwork.render_rgb(job.icon, cfg.image_size), "RGB")
        elif job.file is None:
            im = synthetic.generate(job.logo_type, cfg.seed, job.index, cfg.image_size)
        else:
            im = images.open_image(job.file, max_pixels=cfg.max_pixels, min_size=cfg.min_size)
        norm = images.normalize(im, cfg.image_size)
    except images.ImageRejected as exc:
        return Result(job, reason=exc.reason, detail=exc.detail)
    except RenderFailed as exc:
        return Result(job, reason="render_failed", detail=str(exc))
    return Result(job, images.png_bytes(norm), norm.width, norm.height)


@dataclass(frozen=True)
class Sized:
    """One chosen logo at the larger sizes: a PNG per size written, a reason per size not."""

    pngs: dict[int, bytes]  # long side -> normalized PNG
    skipped: dict[int, str]  # long side -> "source_too_small", "layout_differs" or a reject reason


def process_sizes(job: Job, cfg: DataConfig) -> Sized:
    """``job``'s logo at every size of ``cfg.sizes`` it can have. Runs in worker processes."""
    try:
        if job.icon is not None:  # vector art: rendered from the SVG at every size
            pngs = {
                s: images.png_bytes(Image.fromarray(artwork.render_rgb(job.icon, s), "RGB"))
                for s in cfg.sizes
            }
            return Sized(pngs, {})
        if job.file is None:
            # Drawn once at the largest size, area-averaged down to the others: one drawing
            # (the expensive part) and the same picture at every size.
            big = synthetic.generate(
                job.logo_type, cfg.seed, job.index, cfg.sizes[-1], like=cfg.image_size
            )
            rgb = images.to_rgb_on_white(big)
            pngs = {
                size: images.png_bytes(images.resize_longest(rgb, size, Image.Resampling.BOX))
                for size in cfg.sizes
            }
            return Sized(pngs, {})
        im = images.open_image(job.file, max_pixels=cfg.max_pixels, min_size=cfg.min_size)
        pngs = {
            s: images.png_bytes(images.normalize(im, s)) for s in cfg.sizes if s <= max(im.size)
        }
        return Sized(pngs, {s: "source_too_small" for s in cfg.sizes if s not in pngs})
    except synthetic.LayoutDiffers:
        return Sized({}, dict.fromkeys(cfg.sizes, "layout_differs"))
    except images.ImageRejected as exc:  # read a moment ago; changed since
        return Sized({}, dict.fromkeys(cfg.sizes, exc.reason))
    except RenderFailed:
        return Sized({}, dict.fromkeys(cfg.sizes, "render_failed"))


def _run_all(
    fn: Callable[[Job, DataConfig], T],
    jobs: list[Job],
    cfg: DataConfig,
    workers: int,
    desc: str,
    chunksize: int = 4,
) -> Iterator[T]:
    """``fn(job, cfg)`` for every job, in order, on ``workers`` processes."""
    if workers <= 1 or len(jobs) < 8:
        for job in tqdm(jobs, desc=desc, unit="logo"):
            yield fn(job, cfg)
        return
    # forkserver, not fork: a caller with threads (torch, onnxruntime; `svg-quality
    # evaluate` inside a test run) can deadlock children forked from it mid-lock.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        it = pool.map(fn, jobs, [cfg] * len(jobs), chunksize=chunksize)
        yield from tqdm(it, total=len(jobs), desc=desc, unit="logo")


def assign_splits(df: pd.DataFrame, cfg: SplitConfig) -> pd.Series:
    """Per image, stratified by logo type within each stratum, reproducible from ``split.seed``.

    Within each (stratum, type) group the sorted image ids are permuted by a generator seeded
    from the split seed and the type name (with the stratum, ``artwork:<set>/<type>``, unless
    the stratum is ``synthetic`` or the only one), so the split depends only on the set of
    images, and mixing in another source leaves the synthetic logos' splits as they were.
    ``df`` may lack a ``stratum`` column (one stratum).
    """
    split = pd.Series("train", index=df.index, dtype=object)
    strata = _strata(df)
    alone = strata.nunique() <= 1
    for (stratum, logo_type), group in df.groupby([strata, df["logo_type"]], sort=True):
        key = str(logo_type) if alone or stratum == "synthetic" else f"{stratum}/{logo_type}"
        ids = group.sort_values("image_id").index.to_numpy()
        rng = np.random.default_rng([cfg.seed, zlib.crc32(key.encode())])
        ids = ids[rng.permutation(len(ids))]
        n = len(ids)
        n_test = _share(n, cfg.test)
        n_val = max(0, min(n - n_test - 1, _share(n, cfg.val)))
        split[ids[:n_test]] = "test"
        split[ids[n_test : n_test + n_val]] = "val"
    return split


def _strata(df: pd.DataFrame) -> pd.Series:
    """``df``'s ``stratum`` column (collect's), or one stratum for a table without it."""
    return df["stratum"] if "stratum" in df.columns else pd.Series("synthetic", index=df.index)


def _share(n: int, frac: float) -> int:
    # At least one image per split once a type has 3 images, so every split sees every type.
    if frac <= 0 or n < 3:
        return 0
    return min(n - 1, max(1, round(n * frac)))


def choose_sized(logos: pd.DataFrame, share: float) -> pd.Series:
    """Which logos also get ``data.sizes`` (a boolean Series on ``logos``' index).

    In each (stratum, logo type, split) group, the ``round(share * n)`` logos (half to even) whose
    salted hash of the ``image_id`` sorts first: a function of the images, their types and
    splits and the share only, so neither the order of the rows nor the workers change the
    choice, and it is not the logos that sort first by ``image_id`` (the contact sheet's)."""
    chosen = pd.Series(False, index=logos.index)
    if share <= 0 or logos.empty:
        return chosen
    salted = logos["image_id"].map(lambda i: io.sha256_hex(f"sizes:{i}".encode()))
    for _, group in salted.groupby([_strata(logos), logos["logo_type"], logos["split"]]):
        chosen[group.sort_values().index[: round(share * len(group))]] = True
    return chosen


@dataclass
class Prepared:
    logos: pd.DataFrame
    rejects: pd.DataFrame
    pngs: dict[str, bytes]
    # image_id -> the chosen logo at the larger sizes (only logos chosen by choose_sized)
    sized: dict[str, Sized] = field(default_factory=dict)


def collect(
    data: DataConfig,
    split: SplitConfig,
    workers: int | None = None,
    artwork_dir: Path = ARTWORK_DIR,
) -> Prepared:
    """Gather, normalize, dedupe and split; nothing is written here."""
    jobs, rejected = source_jobs(data, artwork_dir)
    workers = workers if workers is not None else len(os.sched_getaffinity(0))
    rows, pngs, seen, kept = [], {}, {}, {}
    for res in _run_all(process, jobs, data, workers, "prepare"):
        if res.png is None:
            rejected.append(res)
            continue
        image_id = io.image_id_for(res.png)
        if image_id in seen:
            rejected.append(
                Result(res.job, reason="duplicate", detail=f"same content as {seen[image_id]}")
            )
            continue
        seen[image_id] = res.job.source
        kept[image_id] = res.job
        pngs[image_id] = res.png
        rows.append(
            {
                "image_id": image_id,
                "path": f"{image_id}.png",
                "logo_type": res.job.logo_type,
                "source": res.job.source,
                "origin": res.job.origin,
                "width": res.width,
                "height": res.height,
                "stratum": res.job.stratum,
            }
        )
    logos = pd.DataFrame(rows, columns=[*LOGO_COLUMNS[:-2], "stratum"])
    logos["split"] = assign_splits(logos, split)
    logos = logos.sort_values(["logo_type", "image_id"]).reset_index(drop=True)
    # Second pass, once the splits are known: only the chosen logos at the larger sizes.
    ids = list(logos.loc[choose_sized(logos, data.size_share), "image_id"]) if data.sizes else []
    # chunks of 1: a large drawing takes up to seconds, so hand them out one by one
    done = _run_all(process_sizes, [kept[i] for i in ids], data, workers, "prepare sizes", 1)
    sized = dict(zip(ids, done, strict=True))
    logos["sizes"] = [
        " ".join(str(s) for s in sorted(sized[i].pngs)) if i in sized else ""
        for i in logos["image_id"]
    ]
    rejects = pd.DataFrame(
        [{"source": r.job.source, "reason": r.reason, "detail": r.detail} for r in rejected],
        columns=REJECT_COLUMNS,
    )
    return Prepared(logos[LOGO_COLUMNS], rejects, pngs, sized)


# What to do about the most common reason a source yields nothing usable.
_FIXES = {
    "no_type_folder": "put each image in a <logo_type>/ subfolder of the source folder",
    "bad_type_name": "name the type folders with letters, digits, '-' or '_'",
    "unknown_file": "use image files (" + ", ".join(sorted(images.IMAGE_EXTENSIONS)) + ")",
    "too_small": "use larger images or lower data.min_size",
    "too_large": "use smaller images or raise data.max_pixels",
}


def no_logos_error(prep: Prepared, source: str, rejects_csv: Path) -> ValueError:
    """Why a source gave no usable logo: the reasons, where the list is, what to do."""
    reasons = Counter(prep.rejects["reason"]).most_common()
    counts = ", ".join(f"{n} {reason}" for reason, n in reasons) or "no files found"
    fix = (
        _FIXES.get(reasons[0][0], "fix the files listed there")
        if reasons
        else ("put images in <logo_type>/ subfolders of the source folder")
    )
    return ValueError(
        f"data.sources = {source!r} yielded no usable logos ({counts}); every file and its "
        f"reason is in {rejects_csv}; fix: {fix}"
    )


# Below these, a split still exists but cannot do its job; the prepare stage says so
# instead of letting train fit 1 image without a word.
MIN_TRAIN_IMAGES = 10
MIN_EVAL_IMAGES = 2
_TYPE_MIN = 3  # _share: a type needs 3 images to appear in val and test


def split_warnings(logos: pd.DataFrame, split: SplitConfig) -> list[str]:
    """What is too small to train or validate on, naming the cause and the fix."""
    out = []
    by_split = Counter(logos["split"])
    n = len(logos)
    if by_split["train"] < MIN_TRAIN_IMAGES:
        out.append(
            f"the train split has {by_split['train']} image(s) of {n} logos: too few to learn "
            f"from (under {MIN_TRAIN_IMAGES}); add logos to data.source"
        )
    for name, share in (("val", split.val), ("test", split.test)):
        if share > 0 and by_split[name] < MIN_EVAL_IMAGES:
            out.append(
                f"the {name} split has {by_split[name]} image(s) (split.{name} = {share:g} of "
                f"{n} logos): its metrics would be noise; add logos to data.source"
            )
    for logo_type, count in sorted(Counter(logos["logo_type"]).items()):
        if count < _TYPE_MIN and (split.val > 0 or split.test > 0):
            out.append(
                f"logo type {logo_type!r} has {count} image(s), all in train: a type needs "
                f"{_TYPE_MIN} to appear in val and test, so it is never validated"
            )
    return out


def write(
    prep: Prepared, logos_dir: Path, logos_csv: Path, report_dir: Path, source: str = ""
) -> dict:
    """Write the logos folder, the table and the reports, each atomically.

    With no usable logo only ``rejects.csv`` is written, then ValueError says why."""
    if prep.logos.empty:
        with io.atomic_path(report_dir / "rejects.csv") as tmp:
            prep.rejects.to_csv(tmp, index=False)
        raise no_logos_error(prep, source, report_dir / "rejects.csv")
    with io.atomic_dir(logos_dir) as tmp:
        for image_id, png in prep.pngs.items():
            (tmp / f"{image_id}.png").write_bytes(png)
        for image_id, sized in prep.sized.items():
            for size, png in sized.pngs.items():
                (tmp / str(size)).mkdir(exist_ok=True)
                (tmp / str(size) / f"{image_id}.png").write_bytes(png)
    with io.atomic_path(logos_csv) as tmp:
        prep.logos.to_csv(tmp, index=False)
    with io.atomic_path(report_dir / "rejects.csv") as tmp:
        prep.rejects.to_csv(tmp, index=False)
    summary = summarize(prep)
    io.write_json(report_dir / "summary.json", summary)
    with io.atomic_path(report_dir / "samples.png") as tmp:
        contact_sheet(prep, logos_dir).save(tmp, format="PNG")
    return summary


def summarize(prep: Prepared) -> dict:
    by_type_split = prep.logos.groupby(["logo_type", "split"]).size()
    view = int(prep.logos[["width", "height"]].max(axis=1).max())  # data.image_size
    by_size = Counter(s for sized in prep.sized.values() for s in sized.pngs)
    skipped = Counter(
        f"{s}/{why}" for sized in prep.sized.values() for s, why in sized.skipped.items()
    )
    return {
        "logos": len(prep.logos),
        "rejected": len(prep.rejects),
        "by_type": {k: int(v) for k, v in Counter(prep.logos["logo_type"]).items()},
        "by_origin": {k: int(v) for k, v in Counter(prep.logos["origin"]).items()},
        "by_origin_split": {
            f"{o}/{s}": int(n)
            for (o, s), n in prep.logos.groupby(["origin", "split"]).size().items()
        },
        "by_split": {k: int(v) for k, v in Counter(prep.logos["split"]).items()},
        "by_type_split": {f"{t}/{s}": int(n) for (t, s), n in by_type_split.items()},
        "rejects_by_reason": {k: int(v) for k, v in Counter(prep.rejects["reason"]).items()},
        # logos stored at each long side (the view's and data.sizes); chosen for the larger
        # ones; and the larger sizes a chosen logo lacks, as "<size>/<reason>"
        "by_size": {str(s): n for s, n in sorted({view: len(prep.logos), **by_size}.items())},
        "sizes_chosen": len(prep.sized),
        "sizes_skipped": dict(sorted(skipped.items())),
    }


def contact_sheet(
    prep: Prepared, logos_dir: Path, per_type: int = 8, cell: int = 128
) -> Image.Image:
    """A grid of a few logos per type, labelled, so a person can see what the data is."""
    types = sorted(prep.logos["logo_type"].unique())
    label_w = 90
    sheet = Image.new(
        "RGB", (label_w + per_type * (cell + 4), len(types) * (cell + 4)), (225, 225, 225)
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    for r, t in enumerate(types):
        y = r * (cell + 4)
        draw.text((6, y + cell // 2 - 8), t, fill=(0, 0, 0), font=font)
        for c, path in enumerate(prep.logos.loc[prep.logos["logo_type"] == t, "path"][:per_type]):
            with Image.open(logos_dir / path) as im:
                thumb = im.convert("RGB")
                thumb.thumbnail((cell, cell))
            sheet.paste(thumb, (label_w + c * (cell + 4), y))
    return sheet
