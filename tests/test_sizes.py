"""Labels at larger long sides (issue 31): the config, the drawing, prepare's choice and
PNGs, and label's rows at every size, with real VTracer conversions on tiny logos."""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from svg_quality import images, synthetic, vectorize
from svg_quality.config import LOGO_TYPES, DataConfig, LabelConfig, SplitConfig, parse_params
from svg_quality.labeling import (
    COLUMNS,
    TIMING_COLUMNS,
    ShardStore,
    fingerprint,
    label_dataset,
    sample_key,
    size_seed,
)
from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS, sample_params, scale_params
from svg_quality.prepare import choose_sized, collect, write
from tests.conftest import REPO_ROOT
from tests.test_label import thread_cluster

# The commit before the larger sizes: its generator is what today's logos were drawn with.
BEFORE_SIZES = "271ad09e28efa6400be7dd742b8e4d4d79c99a87"


def stable(df: pd.DataFrame) -> pd.DataFrame:
    """Everything but the wall-clock timing columns."""
    return df.drop(columns=list(TIMING_COLUMNS))


def mean_abs(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


# --------------------------------------------------------------------------- config


def test_defaults_keep_tiny_configs_as_they_were(repo_params) -> None:
    assert DataConfig().sizes == () and DataConfig().size_share == 0.25
    assert LabelConfig().samples_per_size == 4
    p = parse_params(repo_params)
    assert p.data.sizes == (512, 1024) and p.label.samples_per_size == 4


@pytest.mark.parametrize(
    ("section", "key", "value", "needle"),
    [
        ("data", "sizes", [256], "data.sizes = [256]"),  # not above image_size
        ("data", "sizes", [1024, 512], "data.sizes = [1024, 512]"),  # not ascending
        ("data", "sizes", [512, 512], "data.sizes = [512, 512]"),
        ("data", "sizes", [512, 8192], "data.sizes = [512, 8192]"),  # over 4096
        ("data", "sizes", 512, "data.sizes = 512"),  # not a list
        ("data", "sizes", [512.5], "data.sizes[0] = 512.5"),
        ("data", "size_share", 1.5, "data.size_share = 1.5"),
        ("data", "size_share", -0.1, "data.size_share = -0.1"),
        ("label", "samples_per_size", 0, "label.samples_per_size = 0"),
        ("label", "samples_per_size", 5000, "label.samples_per_size = 5000"),
    ],
)
def test_bad_size_params_name_the_key_and_value(repo_params, section, key, value, needle) -> None:
    raw = copy.deepcopy(repo_params)
    raw[section][key] = value
    with pytest.raises(ValueError, match="allowed") as exc:
        parse_params(raw)
    assert needle in str(exc.value)


# --------------------------------------------------------------------------- drawing


def _generator_before_sizes() -> Any:
    try:
        source = subprocess.run(
            ["git", "show", f"{BEFORE_SIZES}:src/svg_quality/synthetic.py"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"needs git and commit {BEFORE_SIZES[:7]} (a clone of the repository)")
    path = Path(__import__("tempfile").mkdtemp()) / "synthetic_before_sizes.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("synthetic_before_sizes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_logos_up_to_512_px_are_drawn_bit_for_bit_as_before() -> None:
    """data/logos of every earlier run stays valid: same bytes, same image_ids."""
    before = _generator_before_sizes()
    for t in LOGO_TYPES:
        for i in range(3):
            for size in (96, 256, 512):
                old, new = before.generate(t, 0, i, size), synthetic.generate(t, 0, i, size)
                assert old.tobytes() == new.tobytes(), (t, i, size)
    assert synthetic.supersampling(512) == 4 and synthetic.supersampling(513) == 2


def test_a_large_drawing_is_the_same_picture_as_the_view() -> None:
    for t in LOGO_TYPES:
        for i in (0, 2):
            big = synthetic.generate(t, 0, i, 1024, like=256)  # the same draws, or it raises
            small = images.to_rgb_on_white(synthetic.generate(t, 0, i, 256))
            down = images.resize_longest(images.to_rgb_on_white(big), 256, Image.Resampling.BOX)
            assert down.size == small.size
            assert mean_abs(down, small) < 3.0, (t, i)  # grey levels per pixel; measured 0.2-2.4


def test_a_logo_a_size_draws_differently_is_caught() -> None:
    # complex 87: its dot grid has one column more at 1024 px (the short side rounds to
    # 770, not 4 x 192); text 24: under 128 px its short side is held at 32 px
    with pytest.raises(synthetic.LayoutDiffers, match="complex logo 87 .* at 1024 px .*layout"):
        synthetic.generate("complex", 0, 87, 1024, like=256)
    with pytest.raises(synthetic.LayoutDiffers, match="text logo 24 .*aspect"):
        synthetic.generate("text", 0, 24, 192, like=96)


# --------------------------------------------------------------------------- prepare


def test_the_choice_is_a_share_of_each_type_and_split_whatever_the_order() -> None:
    rng = np.random.default_rng(0)
    rows = [
        (f"{rng.integers(1 << 62):016x}", t, s)
        for t in LOGO_TYPES
        for s, n in (("train", 30), ("val", 6), ("test", 5))
        for _ in range(n)
    ]
    logos = pd.DataFrame(rows, columns=["image_id", "logo_type", "split"])
    chosen = choose_sized(logos, 0.25)
    counts = logos[chosen].groupby(["logo_type", "split"]).size()
    assert set(counts.xs("train", level="split")) == {8}  # round(7.5) = 8 (half to even)
    assert set(counts.xs("val", level="split")) == {2}  # round(1.5) = 2
    assert set(counts.xs("test", level="split")) == {1}  # round(1.25) = 1
    shuffled = logos.sample(frac=1.0, random_state=3)
    assert chosen.equals(choose_sized(shuffled, 0.25).reindex(logos.index))
    assert not choose_sized(logos, 0.0).any() and choose_sized(logos, 1.0).all()
    # not simply the first image_ids of a group
    first = logos.sort_values("image_id").groupby(["logo_type", "split"]).head(8)
    assert set(first.index) != set(logos.index[chosen])


def test_prepare_draws_the_chosen_logos_at_each_larger_size(tmp_path) -> None:
    data = DataConfig(per_type=6, image_size=128, sizes=(192, 256), size_share=0.5)
    prep = collect(data, SplitConfig(), workers=1)
    again = collect(data, SplitConfig(), workers=2)  # worker processes: the same choice
    assert prep.logos.equals(again.logos)
    assert {k: v.pngs for k, v in prep.sized.items()} == {k: v.pngs for k, v in again.sized.items()}
    # the view PNGs and every other column are what prepare wrote before sizes existed
    plain = collect(DataConfig(per_type=6, image_size=128), SplitConfig(), workers=1)
    assert plain.pngs == prep.pngs and (plain.logos["sizes"] == "").all()
    assert plain.logos.drop(columns="sizes").equals(prep.logos.drop(columns="sizes"))

    expected = prep.logos.loc[choose_sized(prep.logos, 0.5), "image_id"]
    assert set(prep.sized) == set(expected) and 0 < len(expected) < len(prep.logos)
    chosen = prep.logos[prep.logos["sizes"] != ""]
    assert (chosen["sizes"] == "192 256").all() and set(chosen["image_id"]) <= set(expected)
    for image_id in set(expected) - set(chosen["image_id"]):  # drawn otherwise at 256 px
        assert prep.sized[image_id].skipped == {192: "layout_differs", 256: "layout_differs"}

    write(prep, tmp_path / "logos", tmp_path / "logos.csv", tmp_path / "reports")
    for size in (192, 256):
        written = sorted(p.stem for p in (tmp_path / "logos" / str(size)).iterdir())
        assert written == sorted(chosen["image_id"])
    for row in chosen.itertuples():
        view = Image.open(tmp_path / "logos" / row.path)
        big = Image.open(tmp_path / "logos" / "256" / row.path)
        assert big.mode == "RGB" and max(big.size) == 256
        assert max(Image.open(tmp_path / "logos" / "192" / row.path).size) == 192
        # the same picture (fine detail rasterised at 2x differs by up to ~7.5 grey levels
        # per pixel; two logos of a type differ by tens)
        assert mean_abs(big.resize(view.size, Image.Resampling.BOX), view) < 10.0
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    n = len(chosen)
    assert summary["by_size"] == {"128": 24, "192": n, "256": n}
    assert summary["sizes_chosen"] == len(expected)


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_folder_logos_are_never_upsampled(tmp_path) -> None:
    src = tmp_path / "src"
    sides = {
        "simple/big.png": (300, 200),
        "simple/small.png": (150, 100),
        "text/wide.png": (600, 90),
    }
    for i, (rel, (w, h)) in enumerate(sides.items()):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        arr = np.full((h, w, 4), 0, np.uint8)  # transparent: composited on white
        arr[h // 4 : 3 * h // 4, w // 4 : w // 2] = (40 * i, 90, 200, 255)
        (src / rel).write_bytes(_png(Image.fromarray(arr, "RGBA")))
    data = DataConfig(sources=(str(src),), image_size=64, sizes=(128, 256), size_share=1.0)
    prep = collect(data, SplitConfig(), workers=1)
    by_source = prep.logos.set_index("source")
    assert by_source.loc["simple/big.png", "sizes"] == "128 256"
    assert by_source.loc["simple/small.png", "sizes"] == "128"  # 150 px: no 256
    assert by_source.loc["text/wide.png", "sizes"] == "128 256"
    small = prep.sized[by_source.loc["simple/small.png", "image_id"]]
    assert small.skipped == {256: "source_too_small"}
    # normalized from the source like the view: RGB on white, resized to the long side
    source = images.open_image(src / "simple/small.png", max_pixels=10**7)
    assert small.pngs[128] == images.png_bytes(images.normalize(source, 128))
    assert Image.open(io.BytesIO(small.pngs[128])).size == (128, 85)
    write(prep, tmp_path / "logos", tmp_path / "logos.csv", tmp_path / "reports")
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert summary["by_size"] == {"64": 3, "128": 3, "256": 2}
    assert summary["sizes_skipped"] == {"256/source_too_small": 1}


# --------------------------------------------------------------------------- label

VIEW, LARGE = 96, 192


def sized_project(root: Path, per_type: int = 1) -> tuple[pd.DataFrame, Path]:
    """Synthetic logos at VIEW px, every one also at LARGE px, as prepare writes them."""
    data = DataConfig(per_type=per_type, image_size=VIEW, sizes=(LARGE,), size_share=1.0)
    prep = collect(data, SplitConfig(), workers=1)
    write(prep, root / "logos", root / "logos.csv", root / "reports")
    logos = pd.read_csv(root / "logos.csv", dtype={"image_id": str, "sizes": str})
    assert (logos["sizes"] == str(LARGE)).all()
    return logos, root / "logos"


def configs(tiny_params: dict[str, Any], **label: Any):
    raw = copy.deepcopy(tiny_params)
    raw["data"].update(image_size=VIEW, sizes=[LARGE])
    raw["label"].update({"samples_per_image": 3, "samples_per_size": 2, "workers": 2, **label})
    p = parse_params(raw)
    return p.vtracer, p.label


def test_label_rows_at_every_size_hold_the_views_params(tmp_path, tiny_params) -> None:
    logos, logos_dir = sized_project(tmp_path)
    vt, lab = configs(tiny_params)
    df, stats = label_dataset(
        logos, logos_dir, tmp_path / "work", vt, lab, image_size=VIEW, progress=False
    )
    assert list(df.columns) == list(COLUMNS) and list(df.columns)[:3] == [
        "image_id",
        "sample",
        "size",
    ]
    assert df["size"].dtype == np.int64 and stats.computed == len(df) == 4 * (3 + 2)
    assert (df["status"] == "ok").all()
    order = df.sort_values(["image_id", "size", "sample"]).index
    assert list(order) == list(range(len(df)))
    assert df.groupby("size").size().to_dict() == {VIEW: 12, LARGE: 8}

    design = {"local_box": lab.local_box, "local_share": lab.local_share}
    for image_id, g in df.groupby("image_id"):
        large = g[g["size"] == LARGE]
        want = sample_params(image_id, 2, vt.ranges, size_seed(lab.seed, LARGE), **design)
        assert large[list(PARAM_NAMES)].to_dict("records") == want  # the view's frame
        assert want[0] == VTRACER_DEFAULTS
        view_sets = sample_params(image_id, 3, vt.ranges, lab.seed, **design)
        assert want[1] != view_sets[1]  # a stream of its own

    # VTracer converted the LARGE px PNG with the params scaled by LARGE / VIEW.
    differs = 0
    for row in df[df["size"] == LARGE].itertuples():
        png = (logos_dir / str(LARGE) / f"{row.image_id}.png").read_bytes()
        rgb = images.load_rgb(logos_dir / str(LARGE) / f"{row.image_id}.png")
        params = {n: getattr(row, n) for n in PARAM_NAMES}
        scaled = vectorize.score(rgb, scale_params(params, LARGE / VIEW), vt, png_bytes=png)
        assert (scaled.ssim, scaled.svg_bytes) == (row.ssim, row.svg_bytes)
        unscaled = vectorize.score(rgb, params, vt, png_bytes=png)
        differs += unscaled.svg_bytes != row.svg_bytes
    assert differs >= 4  # scaling the defaults alone changes the SVG

    again, stats2 = label_dataset(
        logos, logos_dir, tmp_path / "work", vt, lab, image_size=VIEW, progress=False
    )
    assert stats2.computed == 0 and stats2.reused == len(df)
    pd.testing.assert_frame_equal(again, df)


def test_view_rows_keep_their_resume_keys_and_values(tmp_path, tiny_params) -> None:
    logos, logos_dir = sized_project(tmp_path)
    vt, lab = configs(tiny_params)
    work = tmp_path / "work"
    # A run from before sizes (no column) stores the view rows under their old keys.
    before, _ = label_dataset(logos.drop(columns="sizes"), logos_dir, work, vt, lab, progress=False)
    assert (before["size"] == VIEW).all() and len(before) == 12
    shards = work / fingerprint(vt)
    stored = ShardStore(shards).load()
    for row in before.itertuples():
        params = {n: getattr(row, n) for n in PARAM_NAMES}
        assert sample_key(row.image_id, params) in stored
    for shard in shards.glob("rows-*.jsonl"):  # as the label code before sizes wrote them
        rows = [json.loads(line) for line in shard.read_text().splitlines()]
        assert all(r.pop("size") is None for r in rows)
        shard.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    after, stats = label_dataset(logos, logos_dir, work, vt, lab, image_size=VIEW, progress=False)
    assert stats.reused == 12 and stats.computed == 8  # only the larger size's samples
    pd.testing.assert_frame_equal(after[after["size"] == VIEW].reset_index(drop=True), before)
    # the same params at another size are another sample
    large0 = after[(after["size"] == LARGE) & (after["sample"] == 0)].iloc[0]
    params = {n: large0[n] for n in PARAM_NAMES}
    assert sample_key(large0["image_id"], params, LARGE) != sample_key(large0["image_id"], params)


def test_a_dask_cluster_gives_the_same_rows_at_every_size(tmp_path, tiny_params) -> None:

    logos, logos_dir = sized_project(tmp_path)
    ids = sorted(logos["image_id"])
    faults = {(ids[1], 1, LARGE): "panic", (ids[2], 0): "render"}
    vt, lab = configs(tiny_params)
    local, _ = label_dataset(
        logos, logos_dir, tmp_path / "w1", vt, lab, image_size=VIEW, faults=faults, progress=False
    )
    with thread_cluster() as cluster:
        _, lab = configs(tiny_params, cluster=cluster.scheduler_address)
        remote, stats = label_dataset(
            logos,
            logos_dir,
            tmp_path / "w2",
            vt,
            lab,
            image_size=VIEW,
            faults=faults,
            progress=False,
        )
    assert stats.backend == "dask" and stats.computed == 20
    bad = local[local["status"] != "ok"].set_index(["image_id", "size", "sample"])["status"]
    assert bad.to_dict() == {(ids[1], LARGE, 1): "panic", (ids[2], VIEW, 0): "render_error"}
    pd.testing.assert_frame_equal(stable(local), stable(remote))


def test_the_stages_write_and_report_every_size(tmp_path, tiny_params) -> None:
    raw = copy.deepcopy(tiny_params)
    raw["data"].update(image_size=VIEW, sizes=[LARGE], size_share=0.5)
    raw["label"].update(samples_per_image=2, samples_per_size=2, workers=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))

    def stage(name: str, *args: str) -> None:
        cmd = [sys.executable, str(REPO_ROOT / "stages" / f"{name}.py"), "--params", "params.yaml"]
        res = subprocess.run([*cmd, *args], cwd=tmp_path, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr

    logos_args = ("--logos-dir", "data/logos", "--logos-csv", "data/logos.csv")
    stage("prepare", *logos_args, "--reports", "reports/prepare")
    stage(
        "label",
        *logos_args,
        "--out",
        "data/labels.parquet",
        "--reports",
        "reports/label",
        "--work-dir",
        "data/.label_work",
    )
    logos = pd.read_csv(tmp_path / "data/logos.csv", dtype={"image_id": str, "sizes": str})
    n_large = int((logos["sizes"] == str(LARGE)).sum())
    assert n_large == 4  # 1 of each type's 2 train logos; round(0.5) = 0 in val and test
    labels = pd.read_parquet(tmp_path / "data/labels.parquet")
    assert labels.groupby("size").size().to_dict() == {VIEW: 2 * 16, LARGE: 2 * n_large}
    summary = json.loads((tmp_path / "reports/label/summary.json").read_text())
    by_size = summary["by_size"]
    assert set(by_size) == {str(VIEW), str(LARGE)} and by_size[str(LARGE)]["rows"] == 8
    assert 0 < by_size[str(LARGE)]["ssim_mean"] <= 1
    assert by_size[str(LARGE)]["mean_ms"]["convert"] > 0
