"""prepare: generator, bad input, mode normalization, splits, the stage end to end."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from svg_quality import images, synthetic
from svg_quality.config import LOGO_TYPES, DataConfig, SplitConfig, parse_params
from svg_quality.io import dir_digest
from svg_quality.prepare import assign_splits, collect
from tests.conftest import REPO_ROOT


def _png(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


# --------------------------------------------------------------------------- generator


def test_generator_is_deterministic():
    for t in LOGO_TYPES:
        a = synthetic.generate(t, seed=3, index=5, size=128)
        b = synthetic.generate(t, seed=3, index=5, size=128)
        assert a.tobytes() == b.tobytes()
        c = synthetic.generate(t, seed=4, index=5, size=128)
        assert a.tobytes() != c.tobytes()


def _significant_colors(im: Image.Image, share: float = 0.004) -> int:
    """Colours (4-bit quantized) covering at least ``share`` of the logo, background excluded."""
    rgb = np.asarray(images.to_rgb_on_white(im)) >> 4
    keys = (rgb[..., 0].astype(int) << 8) | (rgb[..., 1].astype(int) << 4) | rgb[..., 2]
    _, counts = np.unique(keys, return_counts=True)
    return int((counts >= share * keys.size).sum())


def test_generator_types_differ_and_vary():
    n = 16
    stats = {}
    for t in LOGO_TYPES:
        logos = [synthetic.generate(t, seed=0, index=i, size=128) for i in range(n)]
        # every logo is different
        assert len({im.tobytes() for im in logos}) == n
        # varied layout: several aspect ratios and both opaque and transparent backgrounds
        assert len({im.size for im in logos}) >= 2, t
        alpha0 = [np.asarray(im.getchannel("A"))[0, 0] for im in logos]
        assert min(alpha0) == 0 and max(alpha0) == 255, t
        # anti-aliased: partial-coverage pixels exist (not a hard-edged bitmap)
        uniq = [len(np.unique(np.asarray(im.convert("L")))) for im in logos]
        assert np.median(uniq) > 8, t
        stats[t] = np.median([_significant_colors(im) for im in logos])
    # simple marks are flat (few colours); complex and gradient logos carry many
    assert stats["simple"] <= 6
    assert stats["complex"] > stats["simple"]
    assert stats["gradient"] > stats["simple"]


def test_text_logos_use_several_fonts_including_builtin():
    fonts = synthetic.available_fonts()
    assert "" in fonts  # Pillow's built-in font is always a choice
    assert len(fonts) >= 2


def test_unknown_logo_type_is_an_error():
    with pytest.raises(ValueError, match="logo_type 'photo'"):
        synthetic.generate("photo", 0, 0)


# --------------------------------------------------------------------------- normalization


def test_alpha_is_composited_on_white():
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    im.putpixel((0, 0), (255, 0, 0, 255))
    im.putpixel((1, 0), (0, 0, 255, 128))
    rgb = np.asarray(images.to_rgb_on_white(im))
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert tuple(rgb[3, 3]) == (255, 255, 255)  # fully transparent -> white, not red/black
    r, g, b = rgb[0, 1]
    assert b == 255 and 120 <= r <= 135 and 120 <= g <= 135  # half blue over white


def test_palette_with_transparency():
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    im.putpixel((0, 0), 1)
    im.info["transparency"] = 0
    im = Image.open(io.BytesIO(_png(im, transparency=0)))
    rgb = np.asarray(images.to_rgb_on_white(im))
    assert tuple(rgb[0, 0]) == (0, 200, 0)
    assert tuple(rgb[2, 2]) == (255, 255, 255)  # transparent index becomes white, not black


def test_16bit_greyscale_is_rescaled_not_clipped():
    arr = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16)
    im = Image.open(io.BytesIO(_png(Image.fromarray(arr))))
    assert im.mode.startswith("I")
    rgb = np.asarray(images.to_rgb_on_white(im))
    assert rgb[0, :, 0].tolist() == [0, 128, 255, 4]


def test_cmyk_and_greyscale_alpha():
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))  # pure red in CMYK
    assert tuple(np.asarray(images.to_rgb_on_white(cmyk))[0, 0]) == (255, 0, 0)
    la = Image.new("LA", (2, 2), (0, 0))  # black, fully transparent
    assert tuple(np.asarray(images.to_rgb_on_white(la))[0, 0]) == (255, 255, 255)


def test_resize_longest_side():
    im = images.normalize(Image.new("RGB", (400, 100), "white"), 256)
    assert im.size == (256, 64)
    im = images.normalize(Image.new("RGB", (50, 100), "white"), 256)
    assert im.size == (128, 256)


# --------------------------------------------------------------------------- bad input


def _make_folder(root: Path) -> dict[str, str | None]:
    """A source folder with good images in many formats/modes and every kind of bad file.

    Returns {relative path: expected reject reason, or None for a good logo}.
    """
    expect: dict[str, str | None] = {}

    def put(rel: str, data: bytes, reason: str | None) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        expect[rel] = reason

    rng = np.random.default_rng(0)

    def logo(i: int, mode: str = "RGB") -> Image.Image:
        arr = np.full((60, 80, 3), 255, np.uint8)
        arr[10 + i : 40, 10 : 30 + 2 * i] = rng.integers(0, 255, 3)
        return Image.fromarray(arr).convert(mode)

    good = _png(logo(0))
    put("simple/a.png", good, None)
    put("simple/dup_of_a.png", good, "duplicate")
    buf = io.BytesIO()
    logo(1).save(buf, format="JPEG", quality=90)
    put("simple/b.jpg", buf.getvalue(), None)
    buf = io.BytesIO()
    logo(2).convert("CMYK").save(buf, format="JPEG")
    put("text/cmyk.jpeg", buf.getvalue(), None)
    for i, (fmt, ext, mode) in enumerate(
        [
            ("WEBP", "webp", "RGBA"),
            ("BMP", "bmp", "RGB"),
            ("GIF", "gif", "P"),
            ("TIFF", "tiff", "L"),
        ]
    ):
        buf = io.BytesIO()
        logo(3 + i, mode).save(buf, format=fmt)
        put(f"gradient/img.{ext}", buf.getvalue(), None)
    put("complex/palette.png", _png(logo(8, "P")), None)
    put(
        "complex/grey16.png",
        _png(Image.fromarray((np.arange(60 * 80).reshape(60, 80) * 13).astype(np.uint16))),
        None,
    )
    # bad ones
    put("simple/zero.png", b"", "empty")
    put("simple/garbage.png", rng.bytes(500), "corrupt")
    put(
        "simple/truncated.png",
        _png(Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)))[:3000],
        "truncated",
    )
    put("text/tiny.png", _png(Image.new("RGB", (8, 8), "red")), "too_small")
    put("text/huge.png", _png(Image.new("RGB", (3000, 3000), "blue")), "too_large")
    buf = io.BytesIO()
    Image.fromarray(np.ones((40, 40), np.float32)).save(buf, format="TIFF")
    put("text/float.tiff", buf.getvalue(), "unsupported_mode")
    put("text/notes.txt", b"hello", "unknown_file")
    put("loose.png", _png(logo(9)), "no_type_folder")
    return expect


def test_folder_ingest_reports_every_bad_file(tmp_path):
    src = tmp_path / "src"
    expect = _make_folder(src)
    data = DataConfig(sources=(str(src),), image_size=64, min_size=16, max_pixels=4_000_000)
    prep = collect(data, SplitConfig(), workers=1)
    rejects = dict(zip(prep.rejects["source"], prep.rejects["reason"], strict=True))
    for rel, reason in expect.items():
        if reason is None:
            assert rel in set(prep.logos["source"]), f"{rel} should be a logo: {rejects.get(rel)}"
        else:
            assert rejects.get(rel) == reason, f"{rel}: expected {reason}, got {rejects.get(rel)}"
    assert len(prep.logos) + len(prep.rejects) == len(expect)
    assert set(prep.logos["logo_type"]) == {"simple", "text", "gradient", "complex"}
    assert (prep.logos[["width", "height"]].max(axis=1) == 64).all()
    # every written logo is plain RGB
    for image_id, png in prep.pngs.items():
        assert Image.open(io.BytesIO(png)).mode == "RGB", image_id


def test_missing_source_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.source"):
        collect(DataConfig(sources=(str(tmp_path / "nope"),)), SplitConfig(), workers=1)


# --------------------------------------------------------------------------- splits


def test_splits_are_per_image_stratified_and_reproducible():
    ids = [f"{i:016x}" for i in range(400)]
    df = pd.DataFrame({"image_id": ids, "logo_type": [LOGO_TYPES[i % 4] for i in range(400)]})
    cfg = SplitConfig(seed=1, val=0.15, test=0.15)
    s1 = assign_splits(df, cfg)
    s2 = assign_splits(df.sample(frac=1.0, random_state=0), cfg).reindex(df.index)
    assert (s1 == s2).all()  # independent of row order
    counts = pd.crosstab(df["logo_type"], s1)
    assert (
        (counts["test"] == 15).all()
        and (counts["val"] == 15).all()
        and (counts["train"] == 70).all()
    )
    s3 = assign_splits(df, SplitConfig(seed=2, val=0.15, test=0.15))
    assert (s1 != s3).any()


def test_small_types_still_get_every_split():
    df = pd.DataFrame({"image_id": [f"{i:04d}" for i in range(3)], "logo_type": ["text"] * 3})
    assert sorted(assign_splits(df, SplitConfig())) == ["test", "train", "val"]


# --------------------------------------------------------------------------- stage


def test_stage_writes_outputs(tmp_path, tiny_params):
    tiny_params["data"].update(sizes=[192], size_share=0.5)  # 1 of each type's 2 train logos
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params))
    parse_params(tiny_params)
    cmd = [
        sys.executable,
        str(REPO_ROOT / "stages/prepare.py"),
        "--params",
        str(params),
        "--logos-dir",
        "data/logos",
        "--logos-csv",
        "data/logos.csv",
        "--reports",
        "reports/prepare",
    ]
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    logos = pd.read_csv(tmp_path / "data/logos.csv", dtype={"sizes": str}, keep_default_na=False)
    assert list(logos.columns) == [
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
    assert len(logos) == 16 and logos["image_id"].is_unique
    assert set(logos["origin"]) == {"synthetic"}
    large = logos[logos["sizes"] == "192"]
    assert len(large) == 4 and set(large["split"]) == {"train"}  # round(0.5 * 1) = 0 in val, test
    assert (logos["sizes"].isin(["192", ""])).all()
    written = sorted(p.stem for p in (tmp_path / "data/logos/192").iterdir())
    assert written == sorted(large["image_id"])
    summary = json.loads((tmp_path / "reports/prepare/summary.json").read_text())
    assert summary["by_size"] == {"96": 16, "192": 4} and summary["sizes_chosen"] == 4
    for row in logos.itertuples():
        png = (tmp_path / "data/logos" / row.path).read_bytes()
        from svg_quality.io import image_id_for

        assert image_id_for(png) == row.image_id
    assert (tmp_path / "reports/prepare/samples.png").stat().st_size > 1000
    assert not list((tmp_path / "data").glob(".*tmp"))  # no temp leftovers
    # a rerun gives byte-identical outputs
    first = (tmp_path / "data/logos.csv").read_bytes()
    first_dir = dir_digest(tmp_path / "data/logos")
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "data/logos.csv").read_bytes() == first
    assert dir_digest(tmp_path / "data/logos") == first_dir


# --------------------------------------------------------------------------- small or odd data


def _prepare_stage(tmp_path: Path, raw: dict) -> subprocess.CompletedProcess[str]:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    cmd = [
        sys.executable,
        str(REPO_ROOT / "stages/prepare.py"),
        "--params",
        str(params),
        "--logos-dir",
        "data/logos",
        "--logos-csv",
        "data/logos.csv",
        "--reports",
        "reports/prepare",
    ]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)


def test_no_usable_logo_still_writes_the_rejects_report(tmp_path, tiny_params):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):  # images, but not in <logo_type>/ folders
        (src / f"logo{i}.png").write_bytes(_png(Image.new("RGB", (40, 40), (i * 60, 0, 0))))
    raw = {**tiny_params, "data": {**tiny_params["data"], "sources": [str(src)]}}
    res = _prepare_stage(tmp_path, raw)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    rejects_csv = tmp_path / "reports/prepare/rejects.csv"
    assert f"every file and its reason is in {Path('reports/prepare/rejects.csv')}" in res.stderr
    assert "(3 no_type_folder)" in res.stderr and "<logo_type>/ subfolder" in res.stderr
    rejects = pd.read_csv(rejects_csv)
    assert sorted(rejects["source"]) == ["logo0.png", "logo1.png", "logo2.png"]
    assert set(rejects["reason"]) == {"no_type_folder"}
    assert not (tmp_path / "data/logos.csv").exists()  # nothing half-written


def test_splits_too_small_to_train_or_validate_are_warned_about(tmp_path, tiny_params):
    src = tmp_path / "src" / "simple"
    src.mkdir(parents=True)
    for i in range(3):
        (src / f"logo{i}.png").write_bytes(_png(synthetic.generate("simple", 0, i, 64)))
    raw = {**tiny_params, "data": {**tiny_params["data"], "sources": [str(src.parent)]}}
    res = _prepare_stage(tmp_path, raw)
    assert res.returncode == 0, res.stderr
    logos = pd.read_csv(tmp_path / "data/logos.csv")
    assert sorted(logos["split"]) == ["test", "train", "val"]  # 1/1/1
    assert "the train split has 1 image(s) of 3 logos: too few to learn from" in res.stderr
    assert "the val split has 1 image(s) (split.val = 0.15 of 3 logos)" in res.stderr
    assert "the test split has 1 image(s)" in res.stderr
    # 8 synthetic logos per type are enough: none of these warnings.
    (tmp_path / "enough").mkdir()
    raw = {**tiny_params, "data": {**tiny_params["data"], "per_type": 8}}
    res = _prepare_stage(tmp_path / "enough", raw)
    assert res.returncode == 0 and "split has" not in res.stderr, res.stderr
