"""bench/build_real_icons.py offline: the smoke mode, and a full build from a local tarball."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

from svg_quality.artsets import Package
from svg_quality.artwork import integrity
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def script() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location(
        "build_real_icons", REPO_ROOT / "bench" / "build_real_icons.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_smoke_prints_ratio_last(script: ModuleType, capsys: pytest.CaptureFixture) -> None:
    script.main(["--smoke", "--sizes", "32", "64"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("ratio ") and last.endswith("x")
    float(last.removeprefix("ratio ").removesuffix("x"))


def test_several_sizes_need_a_size_placeholder(script: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\{size\}"):
        script.main(["--out", str(tmp_path / "icons"), "--sizes", "32", "64"])


def fake_package(script: ModuleType, folder: Path) -> Package:
    """A local Iconify-style tarball in ``folder``, pinned like the real ones."""
    icons = {
        # letter-<x> keeps the name rule for `text`; the others just need distinct names
        (f"letter-{'abc'[i]}" if name == "letter-a" else f"{name}-{i}"): {"body": body}
        for i in range(3)
        for name, width, height, body, _kind in script.SMOKE_ICONS
        if width == height
    }
    icons["wide"] = {"body": script.SMOKE_ICONS[2][3], "width": 36}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, name in enumerate(sorted(icons)):  # distinct bodies: the reader drops repeats
            icons[name]["body"] += f"<!-- {i} -->"
        data = json.dumps({"width": 24, "height": 24, "icons": icons}).encode()
        info = tarfile.TarInfo("package/icons.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tgz = buf.getvalue()
    pkg = Package("@test/icons", "1.0.0", integrity(tgz), "MIT")
    (folder / pkg.tarball).write_bytes(tgz)
    return pkg


def test_build_same_icons_at_every_size(script: ModuleType, tmp_path: Path) -> None:
    tarballs = tmp_path / "npm"
    tarballs.mkdir()
    pkg = fake_package(script, tarballs)
    out = str(tmp_path / "icons-{size}")
    script.build((pkg,), out, [32, 80], per_package=8, seed=0, tarballs=tarballs)
    manifests = {}
    for size in (32, 80):
        folder = tmp_path / f"icons-{size}"
        with open(folder / "manifest.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 8
        for row in rows:
            with Image.open(folder / row["file"]) as im:
                assert im.size == (int(row["px_width"]), int(row["px_height"]))
                assert max(im.size) == size
        readme = (folder / "README.md").read_text()
        assert f"{tmp_path}/icons-{80 if size == 32 else 32}" in readme
        assert f"| `{pkg.name}` | {pkg.version} | {pkg.license} | `{pkg.integrity}` |" in readme
        manifests[size] = [(r["file"], r["type"], r["icon"]) for r in rows]
    assert manifests[32] == manifests[80]
    assert {t for _, t, _ in manifests[32]} == {"simple", "gradient", "complex", "text"}
