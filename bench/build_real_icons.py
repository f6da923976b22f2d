"""Build the real-icon folder for transfer checks (never for training), reproducibly.

Source: five Iconify JSON icon sets from npm, pinned by version and tarball integrity
(``svg_quality.artsets.TRANSFER``, never training data). Brand and logo sets are left out
on purpose: they overlap the logos the model is judged on. For each package a seeded,
deterministic sample of icons (``--per-package``, spread over the four logo types, see
``svg_quality.artwork.sample``) is wrapped as a standalone SVG, rendered with resvg
(``svg_quality.artwork.render_png``, on white) at each of ``--sizes`` px on the longest
side, straight from the SVG (never resampled from another size), and written as::

    <out>/<logo_type>/<package>-<icon>.png      # the layout data.source=<folder> reads
    <out>/manifest.csv                          # file, package, version, icon, type, ...
    <out>/README.md                             # provenance, licences, heuristic, how to label

With several sizes ``--out`` must hold ``{size}``; every size gets its own folder with the
same icons under the same names and types (the sample is drawn once), e.g.
``--out '/work/real-icons-{size}' --sizes 256 1024`` writes /work/real-icons-256 and
/work/real-icons-1024.

``logo_type`` comes from the SVG by a fixed heuristic (``svg_quality.artwork.classify``),
first match wins:

1. ``text``: the SVG has a ``<text>`` element, or the icon's name says its picture is letters
   or digits (``artwork.TEXT_NAME``: letter-a, keycap-7, ab-button-blood-type, cool-button,
   atm-sign, back-arrow, japanese-*-button, ...). The sets draw glyphs as paths, so the name
   is the signal.
2. ``gradient``: a ``linearGradient`` or ``radialGradient``.
3. ``complex``: more than ``artwork.SIMPLE_MAX_COLOURS`` distinct fill/stroke colours or
   more than ``artwork.SIMPLE_MAX_SHAPES`` shape elements.
4. ``simple``: the rest (few flat colours, few shapes), as the synthetic ``simple`` type.

Every folder is built in a temporary directory; they replace their ``<out>`` only once every
size rendered. Tarballs are read from the cache folder ``--tarballs`` (default
``~/.cache/svg-quality/npm``, ``svg_quality.artwork.cache_dir``), or downloaded from the npm
registry into it over plain HTTPS (the only network use; npm itself is not needed); either
way each tarball's sha512 is checked against the pin before it is read. ``--smoke`` needs
no network and writes nothing that stays: it types and renders a few built-in SVGs through
the same code at 256 and 1024 px (or ``--sizes``), checks types, pixel sizes and that the
sizes show the same picture, and prints the render time of the largest size over the
smallest last, as ``ratio <r>x``.

    python bench/build_real_icons.py                       # -> /work/real-icons, 60 per package
    python bench/build_real_icons.py --out '/work/real-icons-{size}' --sizes 256 1024
    python bench/build_real_icons.py --out /tmp/icons --per-package 20 --tarballs /tmp/npm
    python bench/build_real_icons.py --smoke               # offline, a few seconds
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from svg_quality import artsets, io
from svg_quality.artsets import Package
from svg_quality.artwork import (
    SIMPLE_MAX_COLOURS,
    SIMPLE_MAX_SHAPES,
    Icon,
    cache_dir,
    classify,
    colours_and_shapes,
    fetch_tarball,
    pixel_size,
    read_icons,
    render_png,
    sample,
)
from svg_quality.config import LOGO_TYPES

DEFAULT_OUT = "/work/real-icons"  # a template: "{size}" in it becomes each size
DEFAULT_SIZES = (256,)
SMOKE_SIZES = (256, 1024)
SIZE_RANGE = (16, 4096)

MANIFEST_COLUMNS = [
    "file",
    "package",
    "version",
    "icon",
    "type",
    "license",
    "colours",
    "shapes",
    "width",
    "height",
    "px_width",
    "px_height",
]


# --------------------------------------------------------------------------- build and write


def select(
    packages: tuple[Package, ...], per_package: int, seed: int, tarballs: Path | None
) -> list[tuple[Icon, str]]:
    """The sampled icons of every package with their types; drawn once for all sizes.

    Tarballs come from the cache folder ``tarballs`` (None: ``artwork.cache_dir()``) or are
    downloaded into it, checked against their pins either way."""
    chosen = []
    for pkg in packages:
        icons = read_icons(pkg, fetch_tarball(pkg, tarballs))
        picked = sample(icons, per_package, seed)
        chosen += picked
        print(f"{pkg.name}@{pkg.version}: {len(icons)} icons, sampled {len(picked)}")
    return chosen


def write_icons(
    folder: Path, chosen: list[tuple[Icon, str]], size: int, progress: bool = True
) -> tuple[list[dict], float]:
    """PNGs and ``manifest.csv`` into ``folder``; the rows and the seconds spent rendering."""
    for kind in LOGO_TYPES:
        (folder / kind).mkdir()
    rows, seconds = [], 0.0
    for icon, kind in tqdm(
        chosen, desc=f"{size} px", unit="icon", mininterval=1.0, disable=not progress
    ):
        rel = f"{kind}/{icon.package.short}-{icon.name}.png"
        start = time.perf_counter()
        png = render_png(icon, size)
        seconds += time.perf_counter() - start
        (folder / rel).write_bytes(png)
        colours, shapes = colours_and_shapes(icon.body)
        px_width, px_height = pixel_size(icon, size)
        rows.append(
            {
                "file": rel,
                "package": icon.package.name,
                "version": icon.package.version,
                "icon": icon.name,
                "type": kind,
                "license": icon.package.license,
                "colours": colours,
                "shapes": shapes,
                "width": icon.width,
                "height": icon.height,
                "px_width": px_width,
                "px_height": px_height,
            }
        )
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows, seconds


def build(
    packages: tuple[Package, ...],
    out: str,
    sizes: list[int],
    per_package: int,
    seed: int,
    tarballs: Path | None,
) -> dict[int, tuple[list[dict], float]]:
    """Build one folder per size from ``packages`` (``artsets.TRANSFER`` from the CLI); each
    replaces its ``out`` only when every size rendered.

    Returns ``{size: (manifest rows, render seconds)}``.
    """
    chosen = select(packages, per_package, seed, tarballs)
    results = {}
    with ExitStack() as stack:  # all temp folders are swapped in together, on success only
        for size in sizes:
            tmp = stack.enter_context(io.atomic_dir(out_path(out, size, sizes)))
            rows, seconds = write_icons(tmp, chosen, size)
            readme_text = readme(rows, packages, out, sizes, per_package, seed, size)
            (tmp / "README.md").write_text(readme_text)
            results[size] = (rows, seconds)
    return results


def out_path(out: str, size: int, sizes: list[int]) -> Path:
    """The folder for ``size``: ``out`` with ``{size}`` replaced (required for several sizes)."""
    if "{size}" in out:
        return Path(out.replace("{size}", str(size)))
    if len(sizes) > 1:
        raise ValueError(
            f"--out = {out!r} has no {{size}} but --sizes = {sizes} are several; "
            "use e.g. --out '/work/real-icons-{size}'"
        )
    return Path(out)


def readme(
    rows: list[dict],
    packages: tuple[Package, ...],
    out: str,
    sizes: list[int],
    per_package: int,
    seed: int,
    size: int,
) -> str:
    folder = out_path(out, size, sizes)
    others = [f"{s} px: `{out_path(out, s, sizes)}`" for s in sizes if s != size]
    same = (
        "\nThe same icons, under the same names and types, rendered from the SVG at other "
        f"sizes: {'; '.join(others)}."
        if others
        else ""
    )
    by_type = Counter(r["type"] for r in rows)
    pins = "\n".join(
        f"| `{p.name}` | {p.version} | {p.license} | `{p.integrity}` |" for p in packages
    )
    table = "\n".join(
        f"| {kind} | {by_type.get(kind, 0)} | "
        + ", ".join(
            f"{p.short} {sum(r['type'] == kind and r['package'] == p.name for r in rows)}"
            for p in packages
        )
        + " |"
        for kind in LOGO_TYPES
    )
    return f"""# Real-icon folder (transfer checks only, never training)

Built by `bench/build_real_icons.py` of svg-quality: {len(rows)} icons, {per_package} per
package (seed {seed}), rendered with resvg on white at {size} px on the longest side,
straight from the SVG.{same}
Laid out as `<logo_type>/<package>-<icon>.png`, the layout `data.source=<folder>` reads;
`manifest.csv` lists every file with its package, version, icon name, type, licence,
colour and shape counts and pixel size. Rebuild it bit for bit with

    python bench/build_real_icons.py --out '{out}' --sizes {" ".join(map(str, sizes))} --per-package {per_package} --seed {seed}

Do not train or tune hyper-parameters that decide test metrics on it: it is the
held-out transfer set (real icons vs the synthetic training logos). The icon sets are
emoji/flag/UI sets on purpose; brand-logo sets were left out because they overlap the logos
the model is judged on.

## Sources (npm, pinned; each tarball's sha512 is checked)

| package | version | licence | integrity |
|---|---|---|---|
{pins}

Licences travel with the images: CC-BY-4.0 (Twemoji, (c) Twitter/X), CC-BY-SA-4.0
(OpenMoji), Apache-2.0 (Noto Emoji, (c) Google), MIT (flat-color-icons, circle-flags).
Fine for internal evaluation; attribute them if you publish pictures.

## Types (heuristic from the SVG, first match wins)

1. `text`: a `<text>` element, or an icon whose name says its picture is letters/digits
   (letter-a, keycap-7, ab-button-blood-type, cool-button, atm-sign, back-arrow,
   japanese-*-button, ...): these sets draw glyphs as paths, so the name is the signal.
2. `gradient`: a `linearGradient` / `radialGradient`.
3. `complex`: more than {SIMPLE_MAX_COLOURS} distinct fill/stroke colours or more than
   {SIMPLE_MAX_SHAPES} shape elements.
4. `simple`: the rest.

Each package contributes up to {per_package // len(LOGO_TYPES)} per type, the rest at random;
packages without a type (no gradients outside noto, no text in circle-flags) fill up with
others.

| type | icons | per package |
|---|---|---|
{table}

## Label it with the project's own code

Run the stage scripts by hand with paths outside `data/` (so no DVC out of the default run is
touched), from a checkout with `export PYTHONPATH=$PWD/src`: write a params copy that points
`data.source` here (`python -c "import yaml; d = yaml.safe_load(open('params.yaml'));
d['data']['source'] = '{folder}'; yaml.safe_dump(d, open('/tmp/real/params.yaml', 'w'))"`),
then `python stages/prepare.py --params /tmp/real/params.yaml --logos-dir /tmp/real/logos
--logos-csv /tmp/real/logos.csv --reports /tmp/real/reports/prepare` (normalizes, dedupes and
assigns a split column you should ignore: every icon here is transfer data; expect exactly two
`no_type_folder` rejects, this README and `manifest.csv`), `python stages/label.py --params
/tmp/real/params.yaml --logos-csv /tmp/real/logos.csv --logos-dir /tmp/real/logos --out
/tmp/real/labels.parquet --reports /tmp/real/reports/label --work-dir /tmp/real/label_work`
(real VTracer + resvg + SSIM for `label.samples_per_image` parameter sets per icon, resumable
from the work dir) and `python stages/featurize.py` with the same pattern (`--out
/tmp/real/features --report /tmp/real/reports/featurize.json`). The labels and features then
have the same contracts as `data/labels.parquet` and `data/features/`, so a trained model can be
scored on them across all rows (not just `split == test`) to measure synthetic-to-real transfer;
choose transfer-sensitive settings on this folder, never on the synthetic test split.
"""


# --------------------------------------------------------------------------- smoke

# mean |difference| /255 of two sizes' 16 px thumbnails: 0.6 at most for 256 vs 1024, 6.7 for
# 32 vs 1024 (the stripes' aspect rounds differently), 45 or more between two smoke icons
SMOKE_MAX_DIFF = 8.0
SMOKE_PACKAGE = Package("builtin", "0", "none", "CC0-1.0")
# (name, viewBox width, height, body, the type classify must give); one of each type, one
# of them not square so the aspect-keeping path runs too
SMOKE_ICONS = (
    ("red-dot", 24, 24, '<circle cx="12" cy="12" r="9" fill="#e63946"/>', "simple"),
    (
        "sunset",
        24,
        24,
        '<defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1">'
        '<stop offset="0" stop-color="#ffb703"/><stop offset="1" stop-color="#d62828"/>'
        '</linearGradient></defs><rect x="2" y="2" width="20" height="20" rx="4" fill="url(#g)"/>',
        "gradient",
    ),
    (
        "stripes",
        36,
        24,
        "".join(
            f'<rect x="{6 * i}" y="0" width="6" height="24" fill="{c}"/>'
            for i, c in enumerate(("#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#000"))
        ),
        "complex",
    ),
    (
        "letter-a",
        24,
        24,
        '<path d="M12 2 22 22h-4l-2-5H8l-2 5H2zm0 7-3 6h6z" fill="#111"/>',
        "text",
    ),
)


def smoke(sizes: list[int], repeats: int = 5) -> float:
    """Type and render the built-in icons at every size through the build's own code.

    Checks the types, the pixel sizes and that the smallest and largest renders show one
    picture (as 16 px thumbnails); returns render seconds at the largest over the smallest.
    """
    icons = [
        (Icon(SMOKE_PACKAGE, name, body, 0, 0, w, h), kind)
        for name, w, h, body, kind in SMOKE_ICONS
    ]
    for icon, kind in icons:
        if classify(icon.name, icon.body) != kind:
            raise RuntimeError(
                f"{icon.name}: classify gave {classify(icon.name, icon.body)}, want {kind}"
            )
    seconds, pictures = {}, {}
    with tempfile.TemporaryDirectory(prefix="real-icons-smoke-") as scratch:
        for size in sizes:
            folder = Path(scratch) / str(size)
            folder.mkdir()
            rows, seconds[size] = write_icons(folder, icons, size, progress=False)
            for _ in range(repeats - 1):  # a few more renders, so the timing is not one sample
                seconds[size] += sum(time_render(icon, size) for icon, _ in icons)
            for row in rows:
                with Image.open(folder / row["file"]) as im:
                    if im.size != (row["px_width"], row["px_height"]) or max(im.size) != size:
                        raise RuntimeError(f"{row['file']} at {size} px is {im.size}")
                    pictures[size, row["icon"]] = im.convert("RGB")
            print(f"{size} px: {len(rows)} icons x {repeats}, render+encode {seconds[size]:.3f} s")
    small, large = min(sizes), max(sizes)
    for icon, _ in icons:
        # compared as 16 px thumbnails: edge anti-aliasing (which differs between sizes by
        # design) averages out there, while another picture would still differ by far more
        w, h = pixel_size(icon, 16)
        a, b = (thumbnail(pictures[size, icon.name], w, h) for size in (small, large))
        diff = float(np.abs(a - b).mean())
        if diff > SMOKE_MAX_DIFF:
            raise RuntimeError(
                f"{icon.name}: the {large} px and {small} px renders differ by {diff:.1f}/255 as "
                f"16 px thumbnails (at most {SMOKE_MAX_DIFF}); they should show one picture"
            )
    return seconds[large] / seconds[small]


def thumbnail(image: Image.Image, width: int, height: int) -> np.ndarray:
    return np.asarray(image.resize((width, height), Image.Resampling.BOX), dtype=np.float32)


def time_render(icon: Icon, size: int) -> float:
    start = time.perf_counter()
    render_png(icon, size)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help="output folder; with several sizes it must hold {size}, e.g. /work/real-icons-{size}",
    )
    ap.add_argument("--per-package", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--sizes",
        "--size",
        dest="sizes",
        type=int,
        nargs="+",
        help=f"longest side(s) in px, each rendered from the SVG (default {DEFAULT_SIZES[0]}, "
        f"--smoke: {' '.join(map(str, SMOKE_SIZES))})",
    )
    ap.add_argument(
        "--tarballs",
        type=Path,
        help=f"cache folder holding (or to keep) the .tgz files (default {cache_dir()})",
    )
    ap.add_argument(
        "--smoke", action="store_true", help="offline check of typing and rendering, no folder"
    )
    args = ap.parse_args(argv)
    sizes = args.sizes or list(SMOKE_SIZES if args.smoke else DEFAULT_SIZES)
    lo, hi = SIZE_RANGE
    for size in sizes:
        if not lo <= size <= hi:
            raise ValueError(f"--sizes has {size}; use {lo}..{hi}")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"--sizes = {sizes} repeats a size; give each once")
    if args.smoke:
        if len(sizes) < 2:
            raise ValueError(f"--smoke compares sizes; --sizes = {sizes}, give two or more")
        ratio = smoke(sizes)
        print(f"render time {max(sizes)} px / {min(sizes)} px")
        print(f"ratio {ratio:.2f}x")
        return
    if args.per_package < 1:
        raise ValueError(f"--per-package = {args.per_package}; use 1 or more")
    for size in sizes:
        out_path(args.out, size, sizes)  # a bad --out fails before any download
    start = time.perf_counter()
    results = build(artsets.TRANSFER, args.out, sizes, args.per_package, args.seed, args.tarballs)
    for size, (rows, seconds) in results.items():
        print(
            f"{size} px: {len(rows)} icons -> {out_path(args.out, size, sizes)}: "
            f"{dict(Counter(r['type'] for r in rows))}, render+encode {seconds:.1f} s"
        )
    print(f"built in {time.perf_counter() - start:.1f} s")
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        print(f"render time {large} px / {small} px")
        print(f"ratio {results[large][1] / results[small][1]:.2f}x")


if __name__ == "__main__":
    main()
