"""Build the real-icon folder for transfer checks (never for training), reproducibly.

Source: five Iconify JSON icon sets from npm, pinned by version and tarball integrity
(``PACKAGES``). Brand and logo sets are left out on purpose: they overlap the logos the
model is judged on. For each package a seeded, deterministic sample of icons (``--per-package``,
spread over the four logo types, see :func:`sample`) is wrapped as a standalone SVG,
rendered with resvg (``svg_quality.vectorize.render``, on white) at each of ``--sizes`` px on
the longest side, straight from the SVG (never resampled from another size), and written as::

    <out>/<logo_type>/<package>-<icon>.png      # the layout data.source=<folder> reads
    <out>/manifest.csv                          # file, package, version, icon, type, ...
    <out>/README.md                             # provenance, licences, heuristic, how to label

With several sizes ``--out`` must hold ``{size}``; every size gets its own folder with the
same icons under the same names and types (the sample is drawn once), e.g.
``--out '/work/real-icons-{size}' --sizes 256 1024`` writes /work/real-icons-256 and
/work/real-icons-1024.

``logo_type`` comes from the SVG by a fixed heuristic (:func:`classify`), first match wins:

1. ``text``: the SVG has a ``<text>`` element, or the icon's name says its picture is letters
   or digits (``TEXT_NAME``: letter-a, keycap-7, ab-button-blood-type, cool-button, atm-sign,
   back-arrow, japanese-*-button, ...). The sets draw glyphs as paths, so the name is the signal.
2. ``gradient``: a ``linearGradient`` or ``radialGradient``.
3. ``complex``: more than ``SIMPLE_MAX_COLOURS`` distinct fill/stroke colours or more than
   ``SIMPLE_MAX_SHAPES`` shape elements.
4. ``simple``: the rest (few flat colours, few shapes), as the synthetic ``simple`` type.

Every folder is built in a temporary directory; they replace their ``<out>`` only once every
size rendered. Tarballs come from ``npm pack`` (the registry is the only network use) unless
``--tarballs`` names a folder that already holds them; either way each tarball's sha512 is
checked against the pin before it is read. ``--smoke`` needs no network and writes nothing
that stays: it types and renders a few built-in SVGs through the same code at 256 and 1024 px
(or ``--sizes``), checks types, pixel sizes and that the sizes show the same picture, and
prints the render time of the largest size over the smallest last, as ``ratio <r>x``.

    python bench/build_real_icons.py                       # -> /work/real-icons, 60 per package
    python bench/build_real_icons.py --out '/work/real-icons-{size}' --sizes 256 1024
    python bench/build_real_icons.py --out /tmp/icons --per-package 20 --tarballs /tmp/npm
    python bench/build_real_icons.py --smoke               # offline, a few seconds
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io as stdio
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from svg_quality import io
from svg_quality.config import LOGO_TYPES
from svg_quality.vectorize import render

DEFAULT_OUT = "/work/real-icons"  # a template: "{size}" in it becomes each size
DEFAULT_SIZES = (256,)
SMOKE_SIZES = (256, 1024)
SIZE_RANGE = (16, 4096)


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # npm's dist.integrity: "sha512-" + base64 digest of the .tgz
    license: str

    @property
    def short(self) -> str:
        return self.name.split("/")[-1]

    @property
    def tarball(self) -> str:
        # npm pack's file name for a scoped package
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


PACKAGES = (
    Package(
        "@iconify-json/twemoji",
        "1.2.5",
        "sha512-uKpuIEV0v6K5BW3Mjdyl+XKFVAbbcPxAgifKvEMtZoUZB5+YiY5zaMm2uNNCxyXzAWU9yNLlj41WU6/mvgALsw==",
        "CC-BY-4.0",
    ),
    Package(
        "@iconify-json/openmoji",
        "1.2.29",
        "sha512-vXdhkqcXVSO6suy+m9LbcUM3OdVyuNOtpV8/als/WqfkQIRxevL5Geb/g+6GH/Qwnq1OqksEmaDGTCmZ5nFKJQ==",
        "CC-BY-SA-4.0",
    ),
    Package(
        "@iconify-json/noto",
        "1.2.9",
        "sha512-DQiuXENbun41ch+XPSV55H9FaWKpHTyz46YIKtSaKYD4fIDDzL1tR6H4np/T38jfrTAeI3rcKF0mqHYeZVAuaw==",
        "Apache-2.0",
    ),
    Package(
        "@iconify-json/flat-color-icons",
        "1.2.3",
        "sha512-KcmJ7CY0TKFv5GuBjiS4/v++jEcNXna1jfY+yq014tnw/MN/jMI2oYpoMHGuIpYtUqDu7eove+WySnOYO8nS3w==",
        "MIT",
    ),
    Package(
        "@iconify-json/circle-flags",
        "1.2.11",
        "sha512-vrx2btOkTQ4/P75ElEDnjXShmNTwInXuhhpIQQ6U6YUTdxfWyvm/4ijNG8FX8iWFr+sqqQRCvXpm2RfRtjVXfg==",
        "MIT",
    ),
)

TEXT_NAME = re.compile(
    r"^(letter-[a-z]$|regional-indicator|keycap-|input-latin|input-numbers"
    r"|(a|b|ab|o|cl|cool|free|id|new|ng|ok|sos|up|vs|p|m)-button|japanese-.*-button"
    r"|atm-sign|(back|end|on|soon|top)-arrow|copyright$|registered$|trade-mark$"
    r"|hundred-points|alphabetical-sorting)"
)
GRADIENT = re.compile(r"<(linearGradient|radialGradient)\b")
TEXT_ELEMENT = re.compile(r"<text\b")
COLOUR = re.compile(r'(?:fill|stroke|stop-color)\s*=\s*"([^"]+)"')
SHAPE = re.compile(r"<(path|circle|ellipse|rect|polygon|polyline|line)\b")
NOT_A_COLOUR = {"none", "currentcolor", "transparent", "inherit"}
SIMPLE_MAX_COLOURS = 4  # the synthetic `simple` type: 1-4 flat colours
SIMPLE_MAX_SHAPES = 10

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


@dataclass(frozen=True)
class Icon:
    package: Package
    name: str
    body: str
    left: float
    top: float
    width: float
    height: float


# --------------------------------------------------------------------------- fetch and read


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch_tarball(pkg: Package, tarballs: Path | None, scratch: Path) -> bytes:
    """The package's .tgz bytes, from ``tarballs`` if it holds them, else ``npm pack``."""
    path = tarballs / pkg.tarball if tarballs is not None else None
    if path is None or not path.is_file():
        dest = tarballs if tarballs is not None else scratch
        dest.mkdir(parents=True, exist_ok=True)
        cmd = ["npm", "pack", f"{pkg.name}@{pkg.version}", "--pack-destination", str(dest)]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        except FileNotFoundError:
            raise RuntimeError(
                "npm is not installed; install Node.js/npm or pass --tarballs with "
                f"{pkg.tarball} already in it"
            ) from None
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"`{' '.join(cmd)}` failed ({exc.stderr.strip()[-300:]}); check the registry "
                "is reachable or pass --tarballs"
            ) from None
        path = dest / pkg.tarball
    data = path.read_bytes()
    got = _integrity(data)
    if got != pkg.integrity:
        raise RuntimeError(
            f"{path}: integrity {got} does not match the pin {pkg.integrity} for "
            f"{pkg.name}@{pkg.version}; delete the file and rerun to fetch it again"
        )
    return data


def read_icons(pkg: Package, tgz: bytes) -> list[Icon]:
    """Every visible, distinct icon of the package's ``icons.json`` (aliases and hidden skipped)."""
    with tarfile.open(fileobj=stdio.BytesIO(tgz)) as tar:
        member = tar.extractfile("package/icons.json")
        if member is None:
            raise RuntimeError(f"{pkg.name}@{pkg.version}: package/icons.json missing")
        data = json.load(member)
    width, height = data.get("width", 16), data.get("height", 16)
    icons, bodies = [], set()
    for name in sorted(data["icons"]):
        spec = data["icons"][name]
        # hidden = deprecated; transforms are rare and not worth rendering
        if spec.get("hidden") or any(k in spec for k in ("rotate", "hFlip", "vFlip")):
            continue
        if spec["body"] in bodies:
            continue
        bodies.add(spec["body"])
        icons.append(
            Icon(
                pkg,
                name,
                spec["body"],
                spec.get("left", data.get("left", 0)),
                spec.get("top", data.get("top", 0)),
                spec.get("width", width),
                spec.get("height", height),
            )
        )
    return icons


# --------------------------------------------------------------------------- classify, sample


def colours_and_shapes(body: str) -> tuple[int, int]:
    colours = {c.strip().lower() for c in COLOUR.findall(body)} - NOT_A_COLOUR
    colours = {c for c in colours if not c.startswith("url(")}  # gradient refs are not colours
    return len(colours), len(SHAPE.findall(body))


def classify(name: str, body: str) -> str:
    """The logo type of one icon; the module docstring states the rule."""
    if TEXT_ELEMENT.search(body) or TEXT_NAME.search(name):
        return "text"
    if GRADIENT.search(body):
        return "gradient"
    colours, shapes = colours_and_shapes(body)
    if colours > SIMPLE_MAX_COLOURS or shapes > SIMPLE_MAX_SHAPES:
        return "complex"
    return "simple"


def sample(icons: list[Icon], n: int, seed: int) -> list[tuple[Icon, str]]:
    """``n`` icons of one package: up to ``n // 4`` per type, the shortfall filled at random.

    The order comes from a generator seeded by ``seed`` and the package name over the
    name-sorted icons, so a pin and a seed give the same sample everywhere.
    """
    if not icons:
        return []
    rng = np.random.default_rng([seed, zlib.crc32(icons[0].package.name.encode())])
    order = [icons[i] for i in rng.permutation(len(icons))]
    typed = [(icon, classify(icon.name, icon.body)) for icon in order]
    quota = n // len(LOGO_TYPES)
    taken, per_type = [], Counter()
    for icon, kind in typed:
        if per_type[kind] < quota:
            taken.append((icon, kind))
            per_type[kind] += 1
    chosen = {icon.name for icon, _ in taken}
    for icon, kind in typed:
        if len(taken) >= n:
            break
        if icon.name not in chosen:
            taken.append((icon, kind))
            chosen.add(icon.name)
    return sorted(taken, key=lambda t: t[0].name)


# --------------------------------------------------------------------------- render and write


def standalone_svg(icon: Icon, width: int, height: int) -> str:
    # width/height in px so resvg renders exactly that size (it rounds a scaled size its own way)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{width}" height="{height}" '
        f'viewBox="{icon.left} {icon.top} {icon.width} {icon.height}">{icon.body}</svg>'
    )


def pixel_size(icon: Icon, size: int) -> tuple[int, int]:
    """``(width, height)`` in px with ``size`` on the longest side, the aspect kept."""
    scale = size / max(icon.width, icon.height)
    return max(1, round(icon.width * scale)), max(1, round(icon.height * scale))


def render_png(icon: Icon, size: int) -> bytes:
    """The icon on white, ``size`` px on the longest side, as PNG bytes."""
    w, h = pixel_size(icon, size)
    rgb = render(standalone_svg(icon, w, h), w, h)
    buf = stdio.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def select(per_package: int, seed: int, tarballs: Path | None) -> list[tuple[Icon, str]]:
    """The sampled icons of every package with their types; drawn once for all sizes."""
    chosen = []
    with tempfile.TemporaryDirectory(prefix="real-icons-npm-") as scratch:
        for pkg in PACKAGES:
            icons = read_icons(pkg, fetch_tarball(pkg, tarballs, Path(scratch)))
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
    out: str, sizes: list[int], per_package: int, seed: int, tarballs: Path | None
) -> dict[int, tuple[list[dict], float]]:
    """Build one folder per size; each replaces its ``out`` only when every size rendered.

    Returns ``{size: (manifest rows, render seconds)}``.
    """
    chosen = select(per_package, seed, tarballs)
    results = {}
    with ExitStack() as stack:  # all temp folders are swapped in together, on success only
        for size in sizes:
            tmp = stack.enter_context(io.atomic_dir(out_path(out, size, sizes)))
            rows, seconds = write_icons(tmp, chosen, size)
            (tmp / "README.md").write_text(readme(rows, out, sizes, per_package, seed, size))
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
    rows: list[dict], out: str, sizes: list[int], per_package: int, seed: int, size: int
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
        f"| `{p.name}` | {p.version} | {p.license} | `{p.integrity}` |" for p in PACKAGES
    )
    table = "\n".join(
        f"| {kind} | {by_type.get(kind, 0)} | "
        + ", ".join(
            f"{p.short} {sum(r['type'] == kind and r['package'] == p.name for r in rows)}"
            for p in PACKAGES
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
    ap.add_argument("--tarballs", type=Path, help="folder holding (or to keep) the .tgz files")
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
    if shutil.which("npm") is None and args.tarballs is None:
        raise RuntimeError("npm is not on PATH; install Node.js/npm or pass --tarballs")
    start = time.perf_counter()
    results = build(args.out, sizes, args.per_package, args.seed, args.tarballs)
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
