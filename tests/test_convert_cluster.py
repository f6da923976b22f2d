"""`svg-quality convert --cluster` and `evaluate --cluster` on a real Dask scheduler and
2 workers on 127.0.0.1 (processes): the local run's SVGs and report, a worker killed
mid-batch, a batch interrupted on this machine finished on the cluster."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from svg_quality.convert import JOURNAL, REPORT, SIDE, Settings, run_batch
from tests.dask_fixtures import DaskCluster
from tests.test_convert import CLI, interrupted, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    c = DaskCluster(tmp_path_factory.mktemp("dask"), workers=2)
    yield c
    c.close()


@pytest.fixture(scope="module")
def export_dir(vtracer_export: dict[str, Path]) -> Path:
    return vtracer_export["out"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 synthetic logos as <type>/<file> (the real `svg-quality sample`), a corrupt PNG
    and a text file."""
    import subprocess

    root = tmp_path_factory.mktemp("logos")
    subprocess.run([*CLI, "sample", str(root), "--per-type", "2", "--size", "64"], check=True)
    (root / "simple" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (root / "notes.txt").write_text("not a logo")
    return root


def settings(export_dir: Path) -> Settings:
    return Settings(
        model=str(export_dir),
        runtime="onnx",
        objective="size",
        verify=4,
        candidates=64,
        min_ssim=None,
        tolerance=0.002,
        seed=0,
    )


@pytest.fixture(scope="module")
def local(export_dir: Path, folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same folder converted by 2 local worker processes."""
    out = tmp_path_factory.mktemp("local")
    run_batch([folder], out, settings(export_dir), workers=2, progress=False)
    return out


def outputs(out: Path) -> dict[str, bytes]:
    """Every SVG and side file written, by relative path (the report and journal aside)."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.suffix in (".svg", ".png")
    }


def unset(rel: str) -> str:
    """``set1/simple/a.svg`` (or ``.svg-quality/set1/...``) -> the one-copy run's path."""
    return re.sub(r"(^|/)set\d/", r"\1", rel)


def records(out: Path) -> list[dict[str, Any]]:
    """The report's records without the per-logo times (machine-dependent)."""
    report = json.loads((out / REPORT).read_text())
    return [{k: v for k, v in r.items() if k not in ("ms", "resumed")} for r in report["logos"]]


def test_the_cluster_writes_the_local_runs_svgs_and_report(cluster, export_dir, folder, local):
    out = local.parent / "cluster"
    res = run(
        "convert", str(folder), "-o", str(out), "--model", str(export_dir), "--objective",
        "size", "--candidates", "64", "--cluster", cluster.address, "--no-progress",
    )  # fmt: skip
    assert res.returncode == 1, res.stderr  # the corrupt file: reported, the rest converted
    assert "8/9 logos ok" in res.stdout
    assert "1 bad" in res.stdout and "skipped" in res.stdout
    assert outputs(out) == outputs(local) and len(outputs(local)) >= 2 * 8
    assert records(out) == records(local)
    bad = [r for r in records(out) if r["status"] == "bad"]
    assert len(bad) == 1 and str(folder / "simple" / "corrupt.png") in bad[0]["error"]
    assert "svg-quality-logo-" not in (out / REPORT).read_text()  # no worker temp path leaks


def test_a_worker_killed_mid_batch_loses_nothing(cluster, export_dir, folder, local, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):  # 27 logos: the batch is still running when a worker dies
        shutil.copytree(folder, src / f"set{i}", ignore=shutil.ignore_patterns("*.txt"))
    done: list[dict[str, Any]] = []
    result: dict[str, Any] = {}

    def batch() -> None:
        result["report"] = run_batch(
            [src], out, settings(export_dir), cluster=cluster.address, progress=False,
            on_record=done.append,
        )  # fmt: skip

    thread = threading.Thread(target=batch)
    thread.start()
    deadline = time.monotonic() + 180
    while len(done) < 4 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    killed_after = len(done)
    cluster.kill(cluster.workers[0])  # the nanny and its worker, mid-logo
    thread.join(timeout=300)
    cluster.workers[0] = cluster.add_worker("w0-again")  # for the tests after this one
    assert not thread.is_alive(), "the batch hung after a worker died"
    assert 4 <= killed_after < 27, f"the kill landed outside the batch ({killed_after}/27)"
    summary = result["report"]["summary"]
    assert summary["ok"] == 24 and summary["bad"] == 3 and summary["failed"] == 0
    want = outputs(local)
    for rel, data in outputs(out).items():  # every logo, the one in flight on w0 included
        assert data == want[unset(rel)], rel
    assert len(outputs(out)) == 3 * len(want)


def test_a_batch_interrupted_here_finishes_on_the_cluster(cluster, export_dir, folder, local):
    src, out = local.parent / "resume-in", local.parent / "resume-out"
    for i in range(2):
        shutil.copytree(folder, src / f"set{i}", ignore=shutil.ignore_patterns("*.txt"))
    argv = [*CLI, "convert", str(src), "-o", str(out), "--model", str(export_dir)]
    argv += ["--objective", "size", "--candidates", "64", "--no-progress"]
    journal = out / JOURNAL
    rc, err = interrupted(argv, journal)
    assert rc == 130, err
    before = journal.read_text().count("\n")
    assert 2 <= before < 16

    report = run_batch([src], out, settings(export_dir), cluster=cluster.address, progress=False)
    s = report["summary"]
    assert (s["resumed"], s["converted"], s["bad"]) == (before, 16 - before, 2)
    want = outputs(local)
    got = outputs(out)
    assert len(got) == 2 * len(want)
    assert all(data == want[unset(rel)] for rel, data in got.items())
    assert (out / SIDE).is_dir()


def test_evaluate_on_the_cluster_gives_the_local_figures(cluster, export_dir, folder, tmp_path):
    from svg_quality.evaluate import evaluate_folder

    clean = tmp_path / "logos"
    shutil.copytree(folder, clean, ignore=shutil.ignore_patterns("*.txt", "corrupt.png"))
    kw: dict[str, Any] = {"samples": 3, "sizes": (), "progress": False}
    here = evaluate_folder(clean, export_dir, tmp_path / "here", workers=2, **kw)
    there = evaluate_folder(clean, export_dir, tmp_path / "there", cluster=cluster.address, **kw)
    timing = [c for c in here.predictions.columns if c.endswith("_ms")]
    pd.testing.assert_frame_equal(
        here.predictions.drop(columns=timing), there.predictions.drop(columns=timing)
    )
    assert here.metrics["overall"] == there.metrics["overall"]
    assert len(here.predictions) == 8 * 3


def test_an_unreachable_cluster_is_named_before_any_output(export_dir, folder, tmp_path):
    from tests.dask_fixtures import free_port

    nowhere = f"tcp://127.0.0.1:{free_port()}"
    res = run(
        "convert", str(folder), "-o", str(tmp_path / "out"), "--model", str(export_dir),
        "--cluster", nowhere, check=False,
    )  # fmt: skip
    assert res.returncode == 2
    assert f"--cluster {nowhere}: the Dask scheduler is unreachable" in res.stderr
    assert "leave out --cluster" in res.stderr
    assert not any((tmp_path / "out").glob("**/*.svg"))
