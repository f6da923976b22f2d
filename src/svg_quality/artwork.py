"""Real vector artwork: fetch pinned icon sets, read, type, sample and render their icons.

One module for the two users of real icons: ``prepare`` (training artwork, ``data.sources``
with ``artwork``) and ``bench/build_real_icons.py`` (the transfer folder, never trained on).
The sets and their pins are in :mod:`svg_quality.artsets`.

- **Fetch** (:func:`fetch_tarball`): the package's ``.tgz`` from a cache folder, or downloaded
  from the npm registry (plain HTTPS, npm itself is not needed); its sha512 is checked against
  the pin before a byte is read, and a mismatch is refused.
- **Vendored** (:func:`read_vendored`, :func:`vendored_json`): ``artwork/<set>.json`` holds a
  type-balanced sample of a set (:func:`sample`), written by ``scripts/vendor_artwork.py``
  from the pinned tarball; the file is a function of the pin, the seed and the count, so the
  script rebuilds it byte for byte.
- **Type** (:func:`classify`): the logo type of an icon, from its SVG, by one fixed rule
  (first match wins): ``text`` (a ``<text>`` element, or a name saying the picture is letters
  or digits, :data:`TEXT_NAME`), ``gradient`` (a linear or radial gradient), ``complex``
  (more than :data:`SIMPLE_MAX_COLOURS` colours or :data:`SIMPLE_MAX_SHAPES` shapes),
  ``simple`` (the rest).
- **Render** (:func:`render_rgb`): resvg, on white, at a long side in px, straight from the
  SVG (never resampled from another size). Monochrome icons (``currentColor``) get a fill of
  :data:`FILLS` chosen by a hash of the set and icon name, so one set gives varied colours.
"""

from __future__ import annotations

import base64
import hashlib
import io as stdio
import json
import os
import re
import tarfile
import urllib.error
import urllib.request
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from svg_quality import io
from svg_quality.artsets import TRAINING, Package, training_icon
from svg_quality.config import LOGO_TYPES
from svg_quality.vectorize import render

# Where fetched tarballs are kept (outside the DVC outs): $SVG_QUALITY_CACHE or ~/.cache.
CACHE_ENV = "SVG_QUALITY_CACHE"
VENDORED_FORMAT = 1

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
# fills for monochrome (currentColor) icons: saturated and dark brand-like colours
FILLS = (
    "#1d4ed8", "#dc2626", "#059669", "#7c3aed", "#ea580c", "#0f172a",
    "#db2777", "#0891b2", "#65a30d", "#ca8a04", "#4338ca", "#b91c1c",
)  # fmt: skip


class ArtworkError(RuntimeError):
    """A set cannot be read: not fetched, a changed tarball, or a damaged vendored file."""


@dataclass(frozen=True)
class Icon:
    """One icon of a set: its SVG body and viewBox."""

    package: Package
    name: str
    body: str
    left: float
    top: float
    width: float
    height: float


# --------------------------------------------------------------------------- fetch and read


def integrity(data: bytes) -> str:
    """npm's ``dist.integrity`` of a tarball: ``sha512-`` and the base64 digest."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def cache_dir() -> Path:
    """The tarball cache: ``$SVG_QUALITY_CACHE/npm`` or ``~/.cache/svg-quality/npm``."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "svg-quality"
    return Path(root) / "npm"


def fetch_tarball(pkg: Package, cache: Path | None = None, download: bool = True) -> bytes:
    """The package's ``.tgz`` bytes, checked against the pin.

    Read from ``cache`` (default :func:`cache_dir`) when there, else downloaded from the npm
    registry into it (atomically) when ``download``. A cached file that fails the check is
    refused, not replaced: the error names it and the way out.
    """
    cache = cache if cache is not None else cache_dir()
    path = cache / pkg.tarball
    if path.is_file():
        data = path.read_bytes()
        where = str(path)
    elif not download:
        raise ArtworkError(
            f"{pkg.name}@{pkg.version}: {path} is missing and downloads are off; put the "
            f"tarball there (`npm pack {pkg.name}@{pkg.version} --pack-destination {cache}`)"
        )
    else:
        try:
            with urllib.request.urlopen(pkg.url, timeout=60) as resp:
                data = resp.read()
        except (urllib.error.URLError, OSError) as exc:
            raise ArtworkError(
                f"{pkg.name}@{pkg.version}: cannot download {pkg.url} ({exc}); check the npm "
                f"registry is reachable, or put the tarball in {cache} "
                f"(`npm pack {pkg.name}@{pkg.version} --pack-destination {cache}` elsewhere), "
                "or use only the vendored sets (svg_quality.artsets.VENDORED)"
            ) from None
        where = pkg.url
    got = integrity(data)
    if got != pkg.integrity:
        raise ArtworkError(
            f"{where}: integrity {got} does not match the pin {pkg.integrity} for "
            f"{pkg.name}@{pkg.version}; nothing of it was read"
            + (f" (delete {path} to fetch it again)" if where == str(path) else "")
        )
    if where != str(path):
        io.write_bytes(path, data)
    return data


def read_icons(pkg: Package, tgz: bytes) -> list[Icon]:
    """Every visible, distinct icon of the package's ``icons.json``, sorted by name.

    Aliases, hidden (deprecated) icons, transformed ones (rare) and repeated bodies are left
    out."""
    try:
        with tarfile.open(fileobj=stdio.BytesIO(tgz)) as tar:
            member = tar.extractfile("package/icons.json")
            if member is None:
                raise KeyError("package/icons.json")
            data = json.load(member)
    except (KeyError, tarfile.TarError, json.JSONDecodeError) as exc:
        raise ArtworkError(f"{pkg.name}@{pkg.version}: no readable icons.json ({exc})") from None
    width, height = data.get("width", 16), data.get("height", 16)
    icons, bodies = [], set()
    for name in sorted(data["icons"]):
        spec = data["icons"][name]
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


def training_icons(icons: list[Icon]) -> list[Icon]:
    """``icons`` without brand logos and national flags (:func:`artsets.training_icon`)."""
    return [icon for icon in icons if training_icon(icon.name)]


# --------------------------------------------------------------------------- type and sample


def colours_and_shapes(body: str) -> tuple[int, int]:
    """Distinct fill/stroke/stop colours (gradient references and ``none`` aside) and shapes."""
    colours = {c.strip().lower() for c in COLOUR.findall(body)} - NOT_A_COLOUR
    colours = {c for c in colours if not c.startswith("url(")}
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
    """``n`` icons of one set with their types: up to ``n // 4`` per type, the rest at random.

    The order comes from a generator seeded by ``seed`` and the package name over the
    name-sorted icons, so a pin and a seed give the same sample everywhere. Sorted by name.
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


# --------------------------------------------------------------------------- vendored sets


def vendored_json(pkg: Package, chosen: list[tuple[Icon, str]], seed: int) -> str:
    """The text of ``artwork/<set>.json`` for a sample: the pin, the seed and the icons."""
    doc = {
        "format": VENDORED_FORMAT,
        "package": pkg.name,
        "version": pkg.version,
        "integrity": pkg.integrity,
        "license": pkg.license,
        "author": pkg.author,
        "seed": seed,
        "icons": {
            icon.name: {
                "body": icon.body,
                "left": icon.left,
                "top": icon.top,
                "width": icon.width,
                "height": icon.height,
                "type": kind,
            }
            for icon, kind in chosen
        },
    }
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def read_vendored(path: Path) -> list[tuple[Icon, str]]:
    """The icons and types of a vendored set, checked against its pin in artsets."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtworkError(
            f"{path}: not a readable vendored set ({exc}); restore it with `git checkout` "
            "or rebuild it with `python scripts/vendor_artwork.py`"
        ) from None
    short = path.stem
    pkg = TRAINING.get(short)
    pinned = pkg is not None and (doc.get("package"), doc.get("version"), doc.get("integrity")) == (
        pkg.name,
        pkg.version,
        pkg.integrity,
    )
    if not pinned or doc.get("format") != VENDORED_FORMAT:
        raise ArtworkError(
            f"{path}: holds {doc.get('package')}@{doc.get('version')}, not the pin of "
            f"{short!r} in svg_quality/artsets.py; rebuild it with "
            "`python scripts/vendor_artwork.py`"
        )
    return [
        (Icon(pkg, name, s["body"], s["left"], s["top"], s["width"], s["height"]), s["type"])
        for name, s in sorted(doc["icons"].items())
    ]


# --------------------------------------------------------------------------- render


def fill_for(icon: Icon) -> str:
    """The fill a monochrome icon is drawn in: one of :data:`FILLS`, by a hash of its name."""
    return FILLS[zlib.crc32(f"{icon.package.short}/{icon.name}".encode()) % len(FILLS)]


def standalone_svg(icon: Icon, width: int, height: int) -> str:
    """The icon as an SVG document of ``width`` x ``height`` px (``currentColor`` filled)."""
    body = (
        icon.body.replace("currentColor", fill_for(icon))
        if "currentColor" in icon.body
        else icon.body
    )
    # width/height in px so resvg renders exactly that size (it rounds a scaled size its own way)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{width}" height="{height}" '
        f'viewBox="{icon.left} {icon.top} {icon.width} {icon.height}">{body}</svg>'
    )


def pixel_size(icon: Icon, size: int) -> tuple[int, int]:
    """``(width, height)`` in px with ``size`` on the longest side, the aspect kept."""
    scale = size / max(icon.width, icon.height)
    return max(1, round(icon.width * scale)), max(1, round(icon.height * scale))


def render_rgb(icon: Icon, size: int) -> np.ndarray:
    """The icon on white, ``size`` px on the longest side: ``uint8 [H, W, 3]``."""
    w, h = pixel_size(icon, size)
    return render(standalone_svg(icon, w, h), w, h)


def render_png(icon: Icon, size: int) -> bytes:
    """:func:`render_rgb` as optimized PNG bytes (the real-icon folder's files)."""
    buf = stdio.BytesIO()
    Image.fromarray(render_rgb(icon, size), "RGB").save(buf, format="PNG", optimize=True)
    return buf.getvalue()
