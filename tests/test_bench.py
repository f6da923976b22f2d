"""Every benchmark under bench/ runs end to end in its ``--smoke`` mode (tiny inputs, few
repeats, the real code paths) and prints its ratio last as ``<figure>x``: nothing else
runs the benchmarks, so without this they rot (issue #30: gpu_check's train part and
train_throughput broke when ``model.members`` landed and nobody noticed).

Each script runs in a subprocess from the repository root, as a person would run it, with
one torch thread, and with ``--json`` where it writes a bench/benchjson record (which must
hold the printed ratio); the selected scripts run two at a time (a module fixture starts
them all, each test waits for its own), which halves the file's time on 2 cores. ``slow``:
in CI's plain ``pytest``, out of ``make test-fast``. The other tests check that
docs/benchmarks.md shows what the records in bench/results/ hold (scripts/bench_page.py).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import shutil
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
# Those whose --json writes a bench/benchjson record (gpu_check.py writes its report with
# --out, build_real_icons.py builds data).
RECORDED = frozenset(SCRIPTS + LATER) - {"gpu_check.py", "build_real_icons.py"}
PAGE_SCRIPT = REPO_ROOT / "scripts" / "bench_page.py"
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


def run_smoke(script: str, out: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """``python bench/<script> --smoke`` from the repository root, with ``--json
    out/<name>.json`` if it writes a record; the process, seconds."""
    # One thread per process: on 2 busy cores, torch's two OpenMP threads spin against each
    # other and the other load (train_throughput --smoke took 28 s with them, 5 s without).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *record_args(script, out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    return proc, time.perf_counter() - t0


def record_args(script: str, out: Path) -> list[str]:
    return ["--json", str(out / f"{Path(script).stem}.json")] if script in RECORDED else []


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
def smoke_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future]]:
    """The smoke runs of the scripts selected in this session, started ``PARALLEL`` at a
    time in ``PARAMS`` order (skipped ones left out), their records in a temp folder."""
    selected = [
        item.callspec.params["script"]
        for item in request.session.items
        if item.module is request.module and item.originalname == "test_bench_smoke"
    ]
    scripts = [s for s in selected if s in SCRIPTS or has_smoke(s)]
    out = tmp_path_factory.mktemp("bench-records")
    pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="bench-smoke")
    try:
        yield {s: pool.submit(run_smoke, s, out) for s in scripts}
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
    if script in RECORDED:
        check_record(script, proc, ratio)


def check_record(script: str, proc: subprocess.CompletedProcess[str], ratio: float) -> None:
    """The smoke run's record: its command, its ratio as printed, tables the page renders."""
    path = Path(proc.args[-1])  # the --json path
    assert path.stem == Path(script).stem, proc.args
    rec = json.loads(path.read_text())
    assert rec["bench"] == path.stem and rec["argv"][1:] == proc.args[2:], rec["argv"]
    assert len(rec["load_start"]) == len(rec["load_end"]) == 3
    printed = proc.stdout.strip().splitlines()[-1].split()[-1][:-1]  # "2.02" of "ratio 2.02x"
    digits = len(printed.partition(".")[2])
    assert round(rec["ratio"], digits) == ratio, f"record {rec['ratio']}, printed {printed}"
    assert rec["tables"] and all(rows for rows in rec["tables"].values()), rec["tables"]
    page = load_page_script()
    assert "|---|" in page.render(page.load_record(path))


def load_page_script():
    """scripts/bench_page.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_page", PAGE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_page(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PAGE_SCRIPT), *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_benchmarks_page_matches_the_records() -> None:
    """docs/benchmarks.md's generated sections are what bench/results/ gives."""
    proc = bench_page("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def page_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of docs/benchmarks.md and of bench/results/ to change."""
    page, results = tmp_path / "benchmarks.md", tmp_path / "results"
    shutil.copy(REPO_ROOT / "docs" / "benchmarks.md", page)
    shutil.copytree(REPO_ROOT / "bench" / "results", results)
    return page, results


@pytest.mark.parametrize("name", sorted(p.stem for p in (BENCH / "results").glob("*.json")))
def test_benchmarks_page_check_names_a_changed_ratio(
    name: str, page_copy: tuple[Path, Path]
) -> None:
    page, results = page_copy
    path = results / f"{name}.json"
    rec = json.loads(path.read_text())
    rec["ratio"] *= 2
    path.write_text(json.dumps(rec))
    proc = bench_page("--check", "--page", page, "--results", results)
    assert proc.returncode == 1 and f"stale sections [{name!r}]" in proc.stderr, proc.stderr


def test_benchmarks_page_check_fails_on_a_table_figure_then_rewrites(
    page_copy: tuple[Path, Path],
) -> None:
    page, results = page_copy
    path = results / "label_throughput.json"
    rec = json.loads(path.read_text())
    first = next(iter(rec["tables"].values()))[0]
    first["samples_per_s"] *= 2
    path.write_text(json.dumps(rec))
    args = ("--page", page, "--results", results)
    proc = bench_page("--check", *args)
    assert proc.returncode == 1 and "['label_throughput']" in proc.stderr, proc.stderr
    assert bench_page(*args).returncode == 0
    assert f"| {first['samples_per_s']:.4g} |" in page.read_text()
    assert bench_page("--check", *args).returncode == 0


def test_benchmarks_page_needs_a_section_per_record(page_copy: tuple[Path, Path]) -> None:
    page, results = page_copy
    shutil.copy(results / "label_throughput.json", results / "label_throughput-again.json")
    proc = bench_page("--check", "--page", page, "--results", results)
    assert proc.returncode == 1 and "label_throughput-again" in proc.stderr, proc.stderr
