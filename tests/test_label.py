"""The label stage: sampling, config validation, failures as rows, Dask parity, kill-and-resume."""

from __future__ import annotations

import copy
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image, ImageDraw

from svg_quality.config import LOGO_TYPES, parse_params
from svg_quality.io import image_id_for
from svg_quality.labeling import COLUMNS, TIMING_COLUMNS, ShardStore, fingerprint, label_dataset
from svg_quality.paramspace import PARAM_NAMES, SPECS, VTRACER_DEFAULTS, sample_params
from tests.conftest import REPO_ROOT
from tests.dask_fixtures import DaskCluster, free_port

# --------------------------------------------------------------------------- helpers


def _draw(logo_type: str, index: int, size: int) -> Image.Image:
    rng = np.random.default_rng(index * 10 + LOGO_TYPES.index(logo_type))
    im = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(im)
    colour = tuple(int(c) for c in rng.integers(0, 200, 3))
    if logo_type == "simple":
        d.ellipse((4, 4, size - 4 - index, size - 6), fill=colour)
    elif logo_type == "text":
        d.text((3, size // 3), f"Ab{index}", fill=colour, font_size=size // 3)
    elif logo_type == "gradient":
        a = np.linspace(0, 255, size, dtype=np.float32)
        arr = np.stack(
            np.broadcast_arrays(a[None, :], a[:, None], np.full((1, 1), 90.0 + index)), -1
        )
        im = Image.fromarray(arr.astype(np.uint8))
    else:
        for _ in range(25):
            x, y, r = (int(v) for v in rng.integers((0, 0, 2), (size, size, size // 5)))
            d.ellipse(
                (x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3))
            )
    return im


def make_logos(root: Path, per_type: int = 1, size: int = 48) -> tuple[pd.DataFrame, Path]:
    """A tiny logos.csv + logos/ in prepare's format."""
    logos_dir = root / "logos"
    logos_dir.mkdir(parents=True)
    rows = []
    for t in LOGO_TYPES:
        for i in range(per_type):
            buf = io.BytesIO()
            _draw(t, i, size).save(buf, format="PNG")
            image_id = image_id_for(buf.getvalue())
            (logos_dir / f"{image_id}.png").write_bytes(buf.getvalue())
            rows.append((image_id, f"{image_id}.png", t, f"test:{t}:{i}", size, size, "train"))
    df = pd.DataFrame(
        rows, columns=["image_id", "path", "logo_type", "source", "width", "height", "split"]
    )
    df.to_csv(root / "logos.csv", index=False)
    return df, logos_dir


def thread_cluster() -> Any:
    """A real Dask scheduler and one in-process worker (2 threads) on 127.0.0.1."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=None,
    )


def configs(tiny_params: dict[str, Any], **label: Any):
    raw = copy.deepcopy(tiny_params)
    raw["label"].update(label)
    p = parse_params(raw)
    return p.vtracer, p.label


def stable(df: pd.DataFrame) -> pd.DataFrame:
    """Everything but the wall-clock timing columns."""
    return df.drop(columns=list(TIMING_COLUMNS))


# --------------------------------------------------------------------------- sampling and config


def test_sampling_includes_defaults_is_deterministic_and_in_range(repo_params) -> None:
    ranges = parse_params(repo_params).vtracer.ranges
    a = sample_params("00112233aabbccdd", 64, ranges, seed=0)
    assert len(a) == 64
    assert a[0] == VTRACER_DEFAULTS
    assert a == sample_params("00112233aabbccdd", 64, ranges, seed=0)
    assert a != sample_params("00112233aabbccde", 64, ranges, seed=0)
    assert a != sample_params("00112233aabbccdd", 64, ranges, seed=1)
    assert sample_params("00112233aabbccdd", 12, ranges, seed=0) == a[:12]  # prefix-stable
    for point in a:
        for name in PARAM_NAMES:
            lo, hi = ranges[name]
            assert lo <= point[name] <= hi, (name, point[name])
            if SPECS[name].kind is int:
                assert isinstance(point[name], int)
    # Sobol points spread over each range: both ends of every range get visited.
    for name in PARAM_NAMES:
        lo, hi = ranges[name]
        vals = np.array([p[name] for p in a[1:]], dtype=float)
        assert vals.min() < lo + 0.1 * (hi - lo) and vals.max() > hi - 0.1 * (hi - lo), name


@pytest.mark.parametrize("share", [0.0, 0.3, 0.5, 1.0])
def test_mixed_design_is_prefix_stable_and_inside_its_boxes(repo_params, share) -> None:
    p = parse_params(repo_params)
    box, ranges = p.label.local_box, p.vtracer.ranges
    assert box, "params.yaml sets a local box"
    kw = {"local_box": box, "local_share": share}
    full = sample_params("00112233aabbccdd", 40, ranges, 0, **kw)
    for n in (1, 2, 3, 12, 14, 16, 33):  # raising n only appends (issue 17: 12 -> 14)
        assert sample_params("00112233aabbccdd", n, ranges, 0, **kw) == full[:n]
    assert full[0] == VTRACER_DEFAULTS
    inside = [
        all(box.get(k, ranges[k])[0] <= v <= box.get(k, ranges[k])[1] for k, v in s.items())
        for s in full[1:]
    ]
    assert sum(inside) >= round(39 * share)  # the local share, plus global points that fall in
    if share < 1.0:  # the global stream is the purely global design's, point for point
        glob = sample_params("00112233aabbccdd", 40, ranges, 0)
        local = np.floor(np.arange(1, 40) * share) > np.floor(np.arange(0, 39) * share)
        assert [s for s, loc in zip(full[1:], local, strict=True) if not loc] == glob[
            1 : 1 + int((~local).sum())
        ]


def test_default_dataset_gets_enough_rows(repo_params) -> None:
    p = parse_params(repo_params)
    assert p.data.per_type * len(LOGO_TYPES) * p.label.samples_per_image >= 4000


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("vtracer", "ranges.color_precision", [0, 8], "vtracer.ranges.color_precision"),
        ("vtracer", "ranges.max_iterations", [0, 20], "vtracer.ranges.max_iterations"),
        ("vtracer", "ranges.layer_difference", [32, 64], "must contain VTracer's default"),
        ("vtracer", "ranges.path_precision", [1.5, 8], "vtracer.ranges.path_precision"),
        ("vtracer", "mode", "bezier", "vtracer.mode"),
        ("label", "samples_per_image", 0, "label.samples_per_image"),
        ("label", "timeout_s", 0, "label.timeout_s"),
        ("label", "workers", -1, "label.workers"),
        ("label", "sampels_per_image", 3, "label.sampels_per_image"),
        ("label", "local_share", 1.5, "label.local_share"),
        ("label", "local_box.color_precision", [7, 8], "label.local_box.color_precision"),
        ("label", "local_box.filter_speckle", [1, 40], "inside vtracer.ranges.filter_speckle"),
        ("label", "local_box.colour_precision", [4, 8], "label.local_box.colour_precision"),
    ],
)
def test_bad_params_name_the_key(repo_params, section, key, value, message) -> None:
    raw = copy.deepcopy(repo_params)
    target = raw[section]
    *parents, leaf = key.split(".")
    for k in parents:
        target = target[k]
    target[leaf] = value
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        parse_params(raw)


# --------------------------------------------------------------------------- failures and backends


def test_planted_failures_become_rows_and_transient_ones_are_retried(tmp_path, tiny_params) -> None:
    logos, logos_dir = make_logos(tmp_path)
    vt, lab = configs(tiny_params, samples_per_image=3, workers=2, timeout_s=2.0)
    ids = sorted(logos["image_id"])
    faults = {(ids[0], 1): "panic", (ids[1], 1): "hang", (ids[2], 1): "render", (ids[3], 1): "die"}
    df, stats = label_dataset(
        logos, logos_dir, tmp_path / "work", vt, lab, faults=faults, progress=False
    )

    assert list(df.columns) == list(COLUMNS) and len(df) == 12  # nothing dropped
    status = {(r.image_id, r.sample): r.status for r in df.itertuples()}
    assert status[(ids[0], 1)] == "panic"
    assert status[(ids[1], 1)] == "timeout"
    assert status[(ids[2], 1)] == "render_error"
    assert status[(ids[3], 1)] == "worker_died"
    others = df[df["sample"] != 1]
    assert (others["status"] == "ok").all()  # the pool survived a hang and a dead worker
    assert others["ssim"].between(0, 1).all() and others["svg_bytes"].gt(0).all()
    failed = df[df["sample"] == 1]
    assert failed["ssim"].isna().all() and failed["error"].str.len().gt(0).all()
    assert "is_same_color_a" in failed.loc[failed["status"] == "panic", "error"].item()
    assert stats.computed == 12 and stats.reused == 0

    # A rerun reuses the deterministic rows and retries only timeout / worker_died.
    df2, stats2 = label_dataset(logos, logos_dir, tmp_path / "work", vt, lab, progress=False)
    assert stats2.computed == 2 and stats2.reused == 10
    retried = df2.set_index(["image_id", "sample"]).loc[[(ids[1], 1), (ids[3], 1)], "status"]
    assert (retried == "ok").all()
    assert df2.set_index(["image_id", "sample"]).loc[(ids[0], 1), "status"] == "panic"


def test_dask_cluster_gives_the_same_labels_as_the_local_pool(tmp_path, tiny_params) -> None:

    logos, logos_dir = make_logos(tmp_path)
    ids = sorted(logos["image_id"])
    faults = {(ids[2], 0): "panic"}
    vt, lab = configs(tiny_params, samples_per_image=3, workers=2)
    local, _ = label_dataset(
        logos, logos_dir, tmp_path / "w1", vt, lab, faults=faults, progress=False
    )
    with thread_cluster() as cluster:
        vt, lab = configs(tiny_params, samples_per_image=3, cluster=cluster.scheduler_address)
        remote, stats = label_dataset(
            logos, logos_dir, tmp_path / "w2", vt, lab, faults=faults, progress=False
        )
    assert stats.backend == "dask" and stats.computed == 12
    assert (local["status"] == "ok").sum() == 11
    pd.testing.assert_frame_equal(stable(local), stable(remote))


# --------------------------------------------------------------------------- kill -9 and resume


def _stage_cmd(root: Path, params: Path, out: str, work: str) -> list[str]:
    return [
        sys.executable,
        str(REPO_ROOT / "stages" / "label.py"),
        "--params",
        str(params),
        "--logos-csv",
        str(root / "logos.csv"),
        "--logos-dir",
        str(root / "logos"),
        "--out",
        str(root / out),
        "--reports",
        str(root / f"reports-{out}"),
        "--work-dir",
        str(root / work),
    ]


def test_kill_minus_9_then_resume_equals_a_clean_run(tmp_path, tiny_params) -> None:
    logos, _ = make_logos(tmp_path, per_type=2, size=96)
    raw = copy.deepcopy(tiny_params)
    raw["label"].update(samples_per_image=8, workers=1)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    total = len(logos) * 8
    p = parse_params(raw)
    shards = ShardStore(tmp_path / "work" / fingerprint(p.vtracer))

    proc = subprocess.Popen(
        _stage_cmd(tmp_path, params, "resumed.parquet", "work"),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(shards.load()) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(shards.load())
    assert 0 < done < total, f"kill landed outside the run ({done}/{total} samples done)"
    assert not (tmp_path / "resumed.parquet").exists()

    subprocess.run(_stage_cmd(tmp_path, params, "resumed.parquet", "work"), check=True)
    subprocess.run(_stage_cmd(tmp_path, params, "clean.parquet", "work-clean"), check=True)
    resumed = pd.read_parquet(tmp_path / "resumed.parquet")
    clean = pd.read_parquet(tmp_path / "clean.parquet")
    assert len(clean) == total and (clean["status"] == "ok").all()
    pd.testing.assert_frame_equal(stable(resumed), stable(clean))
    import json

    summary = json.loads((tmp_path / "reports-resumed.parquet" / "summary.json").read_text())
    assert summary["run"]["reused"] == done and summary["rows"] == total
    assert (tmp_path / "reports-clean.parquet" / "ssim_by_type.png").stat().st_size > 0


def test_raising_samples_per_image_reuses_every_finished_sample(tmp_path, tiny_params) -> None:
    """Issue 17 row 6: the resume key is per sample, so 3 -> 5 samples computes only the new 2."""
    logos, logos_dir = make_logos(tmp_path)
    vt, lab3 = configs(tiny_params, samples_per_image=3, workers=2)
    first, stats = label_dataset(logos, logos_dir, tmp_path / "work", vt, lab3, progress=False)
    assert stats.computed == 12 and stats.reused == 0
    _, lab5 = configs(tiny_params, samples_per_image=5, workers=2)
    more, stats5 = label_dataset(logos, logos_dir, tmp_path / "work", vt, lab5, progress=False)
    assert stats5.reused == 12 and stats5.computed == 8
    assert len(more) == 20 and (more["status"] == "ok").all()
    # The first 3 samples of the 5-sample plan are the old rows, timings included (reused).
    pd.testing.assert_frame_equal(
        more[more["sample"] < 3].reset_index(drop=True), first.reset_index(drop=True)
    )
    # ... and equal a clean 5-sample run everywhere but the wall-clock columns.
    clean, _ = label_dataset(logos, logos_dir, tmp_path / "clean", vt, lab5, progress=False)
    pd.testing.assert_frame_equal(stable(more), stable(clean))
    # Lowering it again reuses everything.
    _, stats3 = label_dataset(logos, logos_dir, tmp_path / "work", vt, lab3, progress=False)
    assert stats3.computed == 0 and stats3.reused == 12


# --------------------------------------------------------------------------- a real Dask cluster


@pytest.fixture
def dask_cluster(tmp_path):
    cluster = DaskCluster(tmp_path, workers=2)
    yield cluster
    cluster.close()


@pytest.mark.slow
def test_real_cluster_rows_equal_the_local_pool_with_every_failure(
    tmp_path, tiny_params, dask_cluster
) -> None:
    logos, logos_dir = make_logos(tmp_path)
    ids = sorted(logos["image_id"])
    faults = {(ids[0], 1): "panic", (ids[1], 1): "hang", (ids[2], 1): "render", (ids[3], 1): "die"}
    vt, lab = configs(tiny_params, samples_per_image=3, workers=2, timeout_s=2.0)
    local, _ = label_dataset(
        logos, logos_dir, tmp_path / "w1", vt, lab, faults=faults, progress=False
    )
    _, lab = configs(tiny_params, samples_per_image=3, timeout_s=2.0, cluster=dask_cluster.address)
    remote, stats = label_dataset(
        logos, logos_dir, tmp_path / "w2", vt, lab, faults=faults, progress=False
    )
    assert stats.backend == "dask" and stats.computed == 12
    assert sorted(remote.loc[remote["status"] != "ok", "status"]) == sorted(
        ["panic", "timeout", "render_error", "worker_died"]
    )
    pd.testing.assert_frame_equal(stable(local), stable(remote))
    # Resumable shards: a local rerun of the cluster's work dir retries only the transient two.
    _, lab = configs(tiny_params, samples_per_image=3, workers=2)
    _, again = label_dataset(logos, logos_dir, tmp_path / "w2", vt, lab, progress=False)
    assert again.computed == 2 and again.reused == 10


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_no_finished_row(tmp_path, tiny_params, dask_cluster) -> None:
    import threading

    logos, logos_dir = make_logos(tmp_path, per_type=2)
    vt, lab = configs(tiny_params, samples_per_image=3, cluster=dask_cluster.address)
    slow = {(i, s): "slow" for i in logos["image_id"] for s in range(3)}  # 0.3 s per sample
    shards = ShardStore(tmp_path / "work" / fingerprint(vt))
    out: dict[str, Any] = {}

    def run() -> None:
        out["df"], out["stats"] = label_dataset(
            logos, logos_dir, tmp_path / "work", vt, lab, faults=slow, progress=False
        )

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while len(shards.load()) < 3 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    dask_cluster.kill(dask_cluster.workers[0])
    before = shards.load()
    thread.join(timeout=180)
    assert not thread.is_alive(), "the run hung after a worker died"
    df = out["df"]
    assert 3 <= len(before) < 24, f"kill landed outside the run ({len(before)}/24 rows)"
    assert len(df) == 24 and set(df["status"]) <= {"ok", "worker_died"}
    final = {(r["image_id"], r["sample"]): r for r in df.to_dict("records")}
    for row in before.values():  # every row finished before the kill is in the result
        assert final[(row["image_id"], row["sample"])]["ssim"] == row["ssim"]
    _, lab_local = configs(tiny_params, samples_per_image=3, workers=2)
    local, _ = label_dataset(logos, logos_dir, tmp_path / "local", vt, lab_local, progress=False)
    ok = (df["status"] == "ok").to_numpy()
    assert ok.sum() >= 21  # at most the dead worker's one in-flight logo gave up
    pd.testing.assert_frame_equal(
        stable(df)[ok].reset_index(drop=True), stable(local)[ok].reset_index(drop=True)
    )


@pytest.mark.slow
def test_unreachable_scheduler_and_workers_without_vtracer_fail_clearly(
    tmp_path, tiny_params
) -> None:
    logos, logos_dir = make_logos(tmp_path)
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    vt, lab = configs(tiny_params, cluster=nowhere)
    with pytest.raises(ConnectionError, match=f"label.cluster = '{nowhere}'.*unreachable"):
        label_dataset(logos, logos_dir, tmp_path / "work", vt, lab, progress=False)

    # A worker whose Python cannot import vtracer (a shadowing module that raises).
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "vtracer.py").write_text("raise ImportError('vtracer is not installed here')\n")
    env = dict(os.environ, PYTHONPATH=f"{shadow}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    cluster = DaskCluster(tmp_path, workers=1, env=env)
    try:
        vt, lab = configs(tiny_params, cluster=cluster.address)
        with pytest.raises(RuntimeError, match="vtracer missing .*install the same versions"):
            label_dataset(logos, logos_dir, tmp_path / "work", vt, lab, progress=False)
    finally:
        cluster.close()
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").rglob("*.jsonl"))
