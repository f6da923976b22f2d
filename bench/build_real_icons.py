"""Build the real-icon folder for transfer checks (never for training), reproducibly.

Source: five Iconify JSON icon sets from npm, pinned by version and tarball integrity
(``PACKAGES``). Brand and logo sets are left out on purpose: they overlap the logos the
model is judged on. For each package a seeded, deterministic sample of icons (``--per-package``,
spread over the four logo types, see :func:`sample`) is wrapped as a standalone SVG,
rendered with resvg (``svg_quality.vectorize.render``, on white) at ``--size`` px on the
longest side and written as::

    <out>/<logo_type>/<package>-<icon>.png      # the layout data.source=<folder> reads
    <out>/manifest.csv                          # file, package, version, icon, type, ...
    <out>/README.md                             # provenance, licences, heuristic, how to label

``logo_type`` comes from the SVG by a fixed heuristic (:func:`classify`), first match wins:

1. ``text``: the SVG has a ``<text>`` element, or the icon's name says its picture is letters
   or digits (``TEXT_NAME``: letter-a, keycap-7, ab-button-blood-type, cool-button, atm-sign,
   back-arrow, japanese-*-button, ...). The sets draw glyphs as paths, so the name is the signal.
2. ``gradient``: a ``linearGradient`` or ``radialGradient``.
3. ``complex``: more than ``SIMPLE_MAX_COLOURS`` distinct fill/stroke colours or more than
   ``SIMPLE_MAX_SHAPES`` shape elements.
4. ``simple``: the rest (few flat colours, few shapes), as the synthetic ``simple`` type.

The whole folder is built in a temporary directory and replaces ``<out>`` only on success.
Tarballs come from ``npm pack`` (the registry is the only network use) unless ``--tarballs``
names a folder that already holds them; either way each tarball's sha512 is checked against
the pin before it is read.

    python bench/build_real_icons.py                       # -> /work/real-icons, 60 per package
    python bench/build_real_icons.py --out /tmp/icons --per-package 20 --tarballs /tmp/npm
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
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from svg_quality import io
from svg_quality.config import LOGO_TYPES
from svg_quality.vectorize import render

DEFAULT_OUT = Path("/work/real-icons")


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


def render_png(icon: Icon, size: int) -> bytes:
    """The icon on white, ``size`` px on the longest side, as PNG bytes."""
    scale = size / max(icon.width, icon.height)
    w, h = max(1, round(icon.width * scale)), max(1, round(icon.height * scale))
    rgb = render(standalone_svg(icon, w, h), w, h)
    buf = stdio.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def build(out: Path, per_package: int, seed: int, size: int, tarballs: Path | None) -> list[dict]:
    """Build the whole folder; ``out`` is replaced only when every icon rendered."""
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="real-icons-npm-") as scratch,
        io.atomic_dir(out) as tmp,
    ):
        for kind in LOGO_TYPES:
            (tmp / kind).mkdir()
        for pkg in PACKAGES:
            icons = read_icons(pkg, fetch_tarball(pkg, tarballs, Path(scratch)))
            for icon, kind in sample(icons, per_package, seed):
                rel = f"{kind}/{pkg.short}-{icon.name}.png"
                (tmp / rel).write_bytes(render_png(icon, size))
                colours, shapes = colours_and_shapes(icon.body)
                rows.append(
                    {
                        "file": rel,
                        "package": pkg.name,
                        "version": pkg.version,
                        "icon": icon.name,
                        "type": kind,
                        "license": pkg.license,
                        "colours": colours,
                        "shapes": shapes,
                        "width": icon.width,
                        "height": icon.height,
                    }
                )
            print(
                f"{pkg.name}@{pkg.version}: {len(icons)} icons, sampled "
                f"{sum(r['package'] == pkg.name for r in rows)}"
            )
        with open(tmp / "manifest.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, MANIFEST_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        (tmp / "README.md").write_text(readme(rows, per_package, seed, size))
    return rows


def readme(rows: list[dict], per_package: int, seed: int, size: int) -> str:
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
package (seed {seed}), rendered with resvg on white at {size} px on the longest side. Laid out
as `<logo_type>/<package>-<icon>.png`, the layout `data.source=<folder>` reads;
`manifest.csv` lists every file with its package, version, icon name, type, licence,
colour and shape counts. Rebuild it bit for bit with

    python bench/build_real_icons.py --out {DEFAULT_OUT} --per-package {per_package} --seed {seed}

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
d['data']['source'] = '{DEFAULT_OUT}'; yaml.safe_dump(d, open('/tmp/real/params.yaml', 'w'))"`),
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--per-package", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=256, help="longest side in px")
    ap.add_argument("--tarballs", type=Path, help="folder holding (or to keep) the .tgz files")
    args = ap.parse_args(argv)
    if args.per_package < 1:
        raise ValueError(f"--per-package = {args.per_package}; use 1 or more")
    if not 16 <= args.size <= 4096:
        raise ValueError(f"--size = {args.size}; use 16..4096")
    if shutil.which("npm") is None and args.tarballs is None:
        raise RuntimeError("npm is not on PATH; install Node.js/npm or pass --tarballs")
    rows = build(args.out, args.per_package, args.seed, args.size, args.tarballs)
    print(f"{len(rows)} icons -> {args.out}: {dict(Counter(r['type'] for r in rows))}")


if __name__ == "__main__":
    main()
