"""svg_quality.artwork and artsets: fetch with the pin checked, read, type, render, vendor.

A tarball built here stands in for an npm package (no network); the last test checks the
repository's vendored ``artwork/`` against the pins with the real tarballs.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from svg_quality import artwork
from svg_quality.artsets import TRAINING, TRANSFER, VENDORED, Package, check_sets, refused
from svg_quality.artwork import ArtworkError, Icon
from tests.conftest import REPO_ROOT

SQUARE = '<rect x="4" y="4" width="16" height="16" fill="{}"/>'
ICONS = {
    "duo": {"body": SQUARE.format("#e63946") + '<circle cx="12" cy="12" r="4" fill="#1d3557"/>'},
    "label": {"body": '<text x="2" y="18" font-size="16" fill="#111">A</text>'},
    "mono": {"body": SQUARE.format("currentColor")},
    "stripes": {
        "body": "".join(
            f'<rect x="{6 * i}" y="0" width="6" height="24" fill="{c}"/>'
            for i, c in enumerate(("#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#000"))
        ),
        "width": 36,
    },
    "sunset": {
        "body": '<defs><linearGradient id="g"><stop offset="0" stop-color="#ffb703"/>'
        '<stop offset="1" stop-color="#d62828"/></linearGradient></defs>'
        '<rect width="24" height="24" fill="url(#g)"/>'
    },
    "old": {"body": SQUARE.format("#888"), "hidden": True},  # deprecated
    "twin": {"body": SQUARE.format("#e63946") + '<circle cx="12" cy="12" r="4" fill="#1d3557"/>'},
    "flipped": {"body": SQUARE.format("#123456"), "hFlip": True},  # transformed: left out
}
TYPES = {"duo": "simple", "label": "text", "mono": "simple", "stripes": "complex"}
TYPES["sunset"] = "gradient"


def tarball(icons: dict) -> bytes:
    """An Iconify package's .tgz holding ``package/icons.json``."""
    data = json.dumps({"prefix": "test", "width": 24, "height": 24, "icons": icons}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/icons.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def cached(tmp_path: Path) -> tuple[Package, Path]:
    """A pinned test package and the cache folder holding its tarball."""
    tgz = tarball(ICONS)
    pkg = Package("@test/icons", "1.0.0", artwork.integrity(tgz), "MIT", "Tester")
    cache = tmp_path / "npm"
    cache.mkdir()
    (cache / pkg.tarball).write_bytes(tgz)
    return pkg, cache


@pytest.fixture
def icons(cached: tuple[Package, Path]) -> list[Icon]:
    pkg, cache = cached
    return artwork.read_icons(pkg, artwork.fetch_tarball(pkg, cache=cache, download=False))


# --------------------------------------------------------------------------- fetch and read


def test_read_icons_skips_hidden_transformed_and_repeated(icons: list[Icon]) -> None:
    assert [icon.name for icon in icons] == ["duo", "label", "mono", "stripes", "sunset"]
    stripes = icons[3]
    assert (stripes.left, stripes.top, stripes.width, stripes.height) == (0, 0, 36, 24)
    assert icons[0].body == ICONS["duo"]["body"]


def test_classify_types_each_icon(icons: list[Icon]) -> None:
    assert {icon.name: artwork.classify(icon.name, icon.body) for icon in icons} == TYPES
    assert artwork.classify("keycap-7", SQUARE.format("#000")) == "text"  # by the name
    assert artwork.colours_and_shapes(ICONS["stripes"]["body"]) == (6, 6)
    assert artwork.colours_and_shapes(ICONS["sunset"]["body"]) == (2, 1)  # url(#g) is no colour


def test_render_sizes_and_monochrome_fill(icons: list[Icon]) -> None:
    by_name = {icon.name: icon for icon in icons}
    mono = by_name["mono"]
    fill = artwork.fill_for(mono)
    assert fill in artwork.FILLS
    svg = artwork.standalone_svg(mono, 64, 64)
    assert "currentColor" not in svg and fill in svg
    rgb = tuple(int(fill[i : i + 2], 16) for i in (1, 3, 5))
    for size in (64, 256):
        square = artwork.render_rgb(mono, size)
        assert square.shape == (size, size, 3) and square.dtype == np.uint8
        assert tuple(square[size // 2, size // 2]) == rgb  # the fill, not black
        assert tuple(square[1, 1]) == (255, 255, 255)  # on white
    assert artwork.render_rgb(by_name["stripes"], 64).shape == (43, 64, 3)  # 36 x 24, aspect kept
    assert artwork.render_rgb(by_name["stripes"], 256).shape == (171, 256, 3)
    assert artwork.render_png(by_name["duo"], 64).startswith(b"\x89PNG")


def test_a_changed_byte_is_refused_and_the_file_kept(cached: tuple[Package, Path]) -> None:
    pkg, cache = cached
    path = cache / pkg.tarball
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    before = path.stat().st_mtime_ns
    with pytest.raises(ArtworkError, match=rf"{path}: integrity .* does not match the pin"):
        artwork.fetch_tarball(pkg, cache=cache)
    assert path.read_bytes() == bytes(data) and path.stat().st_mtime_ns == before


def test_missing_tarball_without_downloads_names_the_way_out(tmp_path: Path) -> None:
    pkg = TRAINING["meteocons"]
    with pytest.raises(ArtworkError, match=r"missing and downloads are off.*npm pack"):
        artwork.fetch_tarball(pkg, cache=tmp_path, download=False)
    assert not any(tmp_path.iterdir())


def test_sample_is_type_balanced_and_repeatable(icons: list[Icon]) -> None:
    four = artwork.sample(icons, 4, seed=0)
    assert len(four) == 4 and len({kind for _, kind in four}) == 4  # one of each type
    assert four == artwork.sample(icons, 4, seed=0)
    assert [icon.name for icon, _ in four] == sorted(icon.name for icon, _ in four)
    assert len(artwork.sample(icons, 50, seed=0)) == len(icons)
    assert artwork.sample([], 4, seed=0) == []


# --------------------------------------------------------------------------- vendored sets


def pinned(icons: list[Icon], name: str = "meteocons") -> list[tuple[Icon, str]]:
    """The test icons as if drawn from the pinned set ``name``, with their types."""
    pkg = TRAINING[name]
    return artwork.sample([dataclasses.replace(i, package=pkg) for i in icons], 10, seed=3)


def test_vendored_round_trip(icons: list[Icon], tmp_path: Path) -> None:
    chosen = pinned(icons)
    text = artwork.vendored_json(TRAINING["meteocons"], chosen, seed=3)
    assert text == artwork.vendored_json(TRAINING["meteocons"], chosen, seed=3)
    path = tmp_path / "meteocons.json"
    path.write_text(text, encoding="utf-8")
    back = artwork.read_vendored(path)
    assert back == chosen
    assert {icon.name: kind for icon, kind in back} == TYPES


@pytest.mark.parametrize("field", ["package", "version", "integrity"])
def test_vendored_file_off_the_pin_is_refused(
    icons: list[Icon], tmp_path: Path, field: str
) -> None:
    pkg = TRAINING["meteocons"]
    changed = {"package": "@iconify-json/other", "version": "9.9.9", "integrity": "sha512-x"}
    doc = json.loads(artwork.vendored_json(pkg, pinned(icons), seed=3))
    doc[field] = changed[field]
    path = tmp_path / "meteocons.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ArtworkError, match=r"meteocons\.json: holds .*not the pin"):
        artwork.read_vendored(path)


def test_vendored_file_of_an_unpinned_set_or_damaged_is_refused(
    icons: list[Icon], tmp_path: Path
) -> None:
    path = tmp_path / "mdi.json"
    path.write_text(artwork.vendored_json(TRAINING["meteocons"], pinned(icons), 3), "utf-8")
    with pytest.raises(ArtworkError, match=r"not the pin of 'mdi'"):
        artwork.read_vendored(path)
    broken = tmp_path / "emojione.json"
    broken.write_text('{"format": 1, "icons": {', encoding="utf-8")
    with pytest.raises(ArtworkError, match=r"emojione\.json: not a readable vendored set"):
        artwork.read_vendored(broken)


# --------------------------------------------------------------------------- which sets


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("twemoji", "real-icon folder"),
        ("circle-flags", "real-icon folder"),
        ("simple-icons", "brand or logo set"),
        ("logos", "brand or logo set"),
        ("devicon", "brand or logo set"),
        ("fa6-brands", "brand or logo set"),
        ("cryptocurrency-color", "brand or logo set"),
        ("flagpack", "flag set"),
        ("fluent-emoji-flat", "Fluent Emoji"),
    ],
)
def test_refused_sets_say_why(name: str, why: str) -> None:
    assert why in refused(name)
    with pytest.raises(ValueError, match=re.escape(f"data.artwork: '{name}' {refused(name)};")):
        check_sets("data.artwork", ("emojione", name))


def test_unpinned_and_repeated_sets_are_refused() -> None:
    assert refused("mdi") is None
    with pytest.raises(ValueError, match=r"data\.artwork: 'mdi' is not a pinned training set"):
        check_sets("data.artwork", ("mdi",))
    with pytest.raises(ValueError, match="names a set twice"):
        check_sets("data.artwork", ("emojione", "emojione"))


def test_pins_are_consistent() -> None:
    check_sets("data.artwork", tuple(TRAINING))
    check_sets("data.artwork", VENDORED)
    assert set(VENDORED) <= set(TRAINING)
    assert not {pkg.short for pkg in TRANSFER} & set(TRAINING)
    assert all(refused(pkg.short) for pkg in TRANSFER)
    for pkg in (*TRAINING.values(), *TRANSFER):
        assert pkg.integrity.startswith("sha512-") and len(pkg.integrity) == 95
        assert pkg.url == f"https://registry.npmjs.org/{pkg.name}/-/{pkg.short}-{pkg.version}.tgz"
    assert all(TRAINING[name].author for name in VENDORED)  # the README credits them


def test_vendored_artwork_matches_the_pins() -> None:
    """artwork/ is what scripts/vendor_artwork.py builds from the pinned tarballs (cached,
    or downloaded once: about 3 MB)."""
    for name in VENDORED:
        try:
            artwork.fetch_tarball(TRAINING[name])
        except ArtworkError as exc:
            if "cannot download" in str(exc):
                pytest.skip(f"the npm registry is unreachable and {name} is not cached: {exc}")
            raise
    script = REPO_ROOT / "scripts" / "vendor_artwork.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"artwork/: {len(VENDORED)} sets match the pins"
