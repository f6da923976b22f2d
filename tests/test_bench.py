"""Every benchmark under bench/ runs end to end in its ``--smoke`` mode (tiny inputs, few
repeats, the real code paths) and prints its ratio last as ``<figure>x``: nothing else
runs the benchmarks, so without this they rot (issue #30: gpu_check's train part and
train_throughput broke when ``model.members`` landed and nobody noticed).

Each script runs in a subprocess from the repository root, as a person would run it, with
one torch thread; the selected scripts run two at a time (a module fixture starts them
all, each test waits for its own), which halves the file's time on 2 cores. ``slow``: in
CI's plain ``pytest``, out of ``make test-fast``.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH = REPO_ROOT / "bench"
# Slowest first, so the two runners finish together (seconds on 2 busy cores, alone).
SCRIPTS = (
    "convert_throughput.py",  # ~55: builds the tests' tiny export (native_resolution's smoke)
    "inference_latency.py",  # ~20: three ONNX exports of a random model
    "gpu_check.py",  # ~20: a pytest run, ResNet-50 featurize, train
    "input_ablation.py",  # ~9: a tiny labelled project, 2 configs
    "featurize_throughput.py",  # ~8: ResNet-50 on 4 images
    "learning_curve.py",  # ~7
    "artwork_curve.py",  # ~7: a tiny project with 6 real icons, 2 points
    "train_throughput.py",  # ~6
    "label_cluster.py",  # ~5: a 1-worker Dask LocalCluster
    "label_throughput.py",  # ~2
)
# Owned by others, who are adding their --smoke modes: each test turns on once it has one.
LATER = ("build_real_icons.py", "suggest_vs_search.py")
PARALLEL = 2
TIMEOUT_S = 300  # a hung script fails its test instead of hanging the suite


@functools.cache
def has_smoke(script: str) -> bool:
    """Whether ``bench/<script> --help`` mentions ``--smoke``."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return "--smoke" in proc.stdout


def run_smoke(script: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``python bench/<script> --smoke`` from the repository root; the process, seconds."""
    # One thread per process: on 2 busy cores, torch's two OpenMP threads spin against each
    # other and the other load (train_throughput --smoke took 28 s with them, 5 s without).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    return proc, time.perf_counter() - t0


def ratio_of(stdout: str) -> float:
    """The figure of the last non-empty line, which must end in ``<figure>x``."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    assert lines, "no output"
    last = lines[-1]
    assert last.endswith("x"), f"last line {last!r} does not end in <figure>x"
    try:
        return float(last.split()[-1][:-1])
    except ValueError:
        raise AssertionError(f"last line {last!r} does not end in a <figure>x ratio") from None


PARAMS = [pytest.param(s, id=s.removesuffix(".py")) for s in SCRIPTS] + [
    pytest.param(
        s,
        id=s.removesuffix(".py"),
        marks=pytest.mark.skipif(not has_smoke(s), reason=f"bench/{s} has no --smoke yet"),
    )
    for s in LATER
]


@pytest.fixture(scope="module")
def smoke_runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Future]]:
    """The smoke runs of the scripts selected in this session, started ``PARALLEL`` at a
    time in ``PARAMS`` order (skipped ones left out)."""
    selected = [
        item.callspec.params["script"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    scripts = [s for s in selected if s in SCRIPTS or has_smoke(s)]
    pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="bench-smoke")
    try:
        yield {s: pool.submit(run_smoke, s) for s in scripts}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.slow
@pytest.mark.parametrize("script", PARAMS)
def test_bench_smoke(script: str, smoke_runs: dict[str, Future]) -> None:
    proc, seconds = smoke_runs[script].result()
    tail = f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, (
        f"bench/{script} --smoke exited {proc.returncode} after {seconds:.1f} s\n{tail}"
    )
    ratio = ratio_of(proc.stdout)
    assert math.isfinite(ratio) and ratio >= 0, f"ratio {ratio}\n{tail}"
