"""The ``label`` stage's machinery: sample, convert, render, score; robustly and resumably.

Work unit: one *sample*, i.e. one (logo, parameter set). Each sample runs inside a
**sandbox**, a long-lived child Python process (``python -m svg_quality.labeling``)
that the parent feeds over a pipe. A sandbox is killed and restarted when a sample
exceeds ``label.timeout_s`` or when the process dies (``os._exit``, SIGKILL, a
segfault), so neither a hung nor a crashing VTracer call can hang or crash the
stage. Every outcome is a row with a ``status``:

=============  ===========================================================
ok             converted, rendered and scored
panic          VTracer panicked (``pyo3_runtime.PanicException``)
render_error   resvg could not render VTracer's SVG
timeout        no result within ``label.timeout_s``; the sandbox was killed
worker_died    the sandbox process exited while working on this sample
error          anything else (the message is in ``error``)
=============  ===========================================================

Backends. Locally, ``label.workers`` sandboxes are driven by as many threads (the
work happens in the child processes, so threads are enough). With ``label.cluster``
set, one Dask task is one logo (:class:`LogoJob`: its PNG shipped once, all its
samples); a worker plugin (:class:`SandboxPlugin`) keeps one long-lived sandbox per
worker thread, so a task pays neither a process start nor a second SSIM reference,
and timeouts, panics and crashes end as the same rows as on the local pool.
Results do not depend on the backend: a sample's parameters depend only on
``(label.seed, image_id, sample)`` and VTracer, resvg and SSIM are deterministic.

Resume. Each finished row is appended (flushed) to a JSON-lines shard under
``<work_dir>/<fingerprint>/`` as soon as it arrives, so an interrupted run (Ctrl-C,
``kill -9``) loses at most the samples in flight. The fingerprint covers everything
a row depends on besides its logo and parameters (VTracer's fixed settings, library
versions), and inside it a row is found by its logo's content hash and its 8 raw
parameter values (:func:`sample_key`), never by its position in the plan. So rows are
only reused when they would be recomputed identically, and any plan that asks for a
finished sample reuses it: raising ``label.samples_per_image`` (the plan's first
samples do not depend on the count, see ``paramspace.sample_params``) or changing
the design computes only the new samples; rows of new logos are simply added. ``timeout`` and ``worker_died`` rows are transient and
are retried by a rerun; every other status is reused. ``work_dir`` is kept outside
DVC's declared outs (``data/.label_work``), so ``dvc repro`` never deletes it.

"Identical" output: the final parquet is sorted by ``(image_id, sample)`` and is
identical between an interrupted-then-resumed run and a clean run in every column
except the timing columns (``convert_ms, render_ms, ssim_ms``), which are
wall-clock measurements.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import time
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from svg_quality.io import json_digest
from svg_quality.paramspace import PARAM_NAMES, SPECS, sample_params

if TYPE_CHECKING:
    import pandas as pd

    from svg_quality.config import LabelConfig, VtracerConfig

STATUSES = ("ok", "panic", "render_error", "timeout", "worker_died", "error")
TRANSIENT = ("timeout", "worker_died")  # retried on a rerun; the rest is deterministic
TIMING_COLUMNS = ("convert_ms", "render_ms", "ssim_ms")
COLUMNS = (
    "image_id",
    "sample",
    "logo_type",
    "split",
    *PARAM_NAMES,
    "ssim",
    "svg_bytes",
    "n_paths",
    *TIMING_COLUMNS,
    "status",
    "error",
)
FAULTS = ("panic", "hang", "render", "die", "slow")  # test-only fault injection, see Task.fault
_FORMAT_VERSION = 2  # bump when a row's meaning changes, to invalidate cached shards
_HEADER = struct.Struct("<Q")


# --------------------------------------------------------------------------- one sample


@dataclass(frozen=True)
class Task:
    image_id: str
    sample: int
    params: dict[str, float]
    png: bytes  # the logo's PNG file; shipped with the task so cluster workers need no shared disk
    vtracer: VtracerConfig
    # Test-only fault injection (never set from params.yaml): "panic" passes
    # color_precision=0 to VTracer, "hang" sleeps forever, "render" corrupts the SVG
    # before resvg sees it, "die" exits the worker process, "slow" sleeps 0.3 s first
    # (then runs normally: paces a run so a test can act in the middle of it).
    fault: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.image_id, self.sample)


def _empty_row(task: Task) -> dict[str, Any]:
    row: dict[str, Any] = {"image_id": task.image_id, "sample": task.sample}
    row.update({n: task.params[n] for n in PARAM_NAMES})
    row.update(
        ssim=None, svg_bytes=None, n_paths=None, convert_ms=None, render_ms=None, ssim_ms=None
    )
    row.update(status="error", error=None)
    return row


def failed_row(task: Task, status: str, error: str) -> dict[str, Any]:
    row = _empty_row(task)
    row.update(status=status, error=error)
    return row


class _References:
    """Per-process cache of decoded logos and their SSIM side (a few logos at a time)."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._cache: OrderedDict[str, tuple[np.ndarray, Any]] = OrderedDict()

    def get(self, image_id: str, png: bytes) -> tuple[np.ndarray, Any]:
        from PIL import Image

        from svg_quality.ssim import SSIMReference

        hit = self._cache.get(image_id)
        if hit is None:
            with Image.open(io.BytesIO(png)) as im:
                rgb = np.asarray(im.convert("RGB"))
            hit = (rgb, SSIMReference(rgb))
            self._cache[image_id] = hit
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(image_id)
        return hit


_REFERENCES = _References()


def run_sample(task: Task) -> dict[str, Any]:
    """Convert, render and score one sample in this process. Never raises for a bad sample."""
    from svg_quality.vectorize import ConversionFailed, RenderFailed, convert, count_paths, render

    row = _empty_row(task)
    try:
        if task.fault is not None and task.fault not in FAULTS:
            raise ValueError(f"unknown fault {task.fault!r}; known: {FAULTS}")
        if task.fault == "die":
            os._exit(3)
        if task.fault == "hang":
            time.sleep(10**6)
        if task.fault == "slow":
            time.sleep(0.3)
        rgb, reference = _REFERENCES.get(task.image_id, task.png)
        params = dict(task.params)
        if task.fault == "panic":
            params["color_precision"] = 0  # VTracer asserts precision loss < 8 and panics
        t0 = time.perf_counter()
        svg = convert(task.png, params, task.vtracer)
        t1 = time.perf_counter()
        row.update(
            convert_ms=(t1 - t0) * 1e3, svg_bytes=len(svg.encode()), n_paths=count_paths(svg)
        )
        if task.fault == "render":
            svg = svg[: len(svg) // 2]  # truncated XML: resvg refuses it
        rendering = render(svg, rgb.shape[1], rgb.shape[0])
        t2 = time.perf_counter()
        value = reference.score(rendering)
        t3 = time.perf_counter()
        row.update(
            render_ms=(t2 - t1) * 1e3,
            ssim_ms=(t3 - t2) * 1e3,
            ssim=float(np.clip(value, 0.0, 1.0)),
            status="ok",
        )
    except ConversionFailed as exc:
        row.update(status="panic" if exc.panic else "error", error=str(exc)[:500])
    except RenderFailed as exc:
        row.update(status="render_error", error=str(exc)[:500])
    except Exception as exc:
        row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:500])
    return row


# --------------------------------------------------------------------------- sandboxes


def _write_frame(fh: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(_HEADER.pack(len(data)) + data)
    fh.flush()


def _read_exact(fh: Any, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = fh.read(left)
        if not chunk:
            return None  # EOF: the other side is gone
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(fh: Any) -> Any:
    header = _read_exact(fh, _HEADER.size)
    if header is None:
        return None
    body = _read_exact(fh, _HEADER.unpack(header)[0])
    return None if body is None else pickle.loads(body)


def _worker_main() -> None:
    """Child side: read tasks from stdin, write rows to stdout, until stdin closes."""
    # Keep the protocol channel private: anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    import resvg_py  # noqa: F401  (import errors should surface before "ready")
    import vtracer  # noqa: F401

    import svg_quality.ssim
    import svg_quality.vectorize  # noqa: F401

    _write_frame(out, {"ready": os.getpid()})
    # From here on, VTracer's panic messages would flood the parent's terminal; the
    # message is in the row's `error` anyway.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.dup2(devnull, 1)
    while True:
        task = _read_frame(inp)
        if task is None:
            return
        _write_frame(out, run_sample(task))


class Sandbox:
    """One child process that runs samples; killed and restarted on timeout or death."""

    def __init__(self, start_timeout_s: float = 120.0) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._start_timeout_s = start_timeout_s
        self._finalizer: weakref.finalize | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, RUST_BACKTRACE="0", PYTHONUNBUFFERED="1")
        # own session: a terminal Ctrl-C reaches only the parent, which stops cleanly
        # instead of seeing its workers die and recording bogus `worker_died` rows.
        proc = subprocess.Popen(
            [sys.executable, "-m", "svg_quality.labeling"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            bufsize=0,
            start_new_session=True,
        )
        ready, _, _ = select.select([proc.stdout], [], [], self._start_timeout_s)
        hello = _read_frame(proc.stdout) if ready else None
        if not isinstance(hello, dict) or "ready" not in hello:
            _kill(proc)
            raise RuntimeError(
                f"label worker process failed to start (exit code {proc.returncode}); run "
                f"`{sys.executable} -m svg_quality.labeling` to see why"
            )
        self._proc = proc
        self._finalizer = weakref.finalize(self, _kill, proc)
        return proc

    def run(self, task: Task, timeout_s: float) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            proc = self._start()
        try:
            _write_frame(proc.stdin, task)
        except (BrokenPipeError, OSError):
            # died between samples (not this sample's doing): restart once and resend
            self.close()
            proc = self._start()
            _write_frame(proc.stdin, task)
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        if not ready:
            self.close()
            return failed_row(
                task, "timeout", f"no result within label.timeout_s = {timeout_s} s; worker killed"
            )
        row = _read_frame(proc.stdout)
        if row is None:
            code = proc.wait()
            self.close()
            return failed_row(
                task, "worker_died", f"worker process exited with code {code} during this sample"
            )
        return row

    def close(self) -> None:
        if self._proc is not None:
            _kill(self._proc)
            self._proc = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for fh in (proc.stdin, proc.stdout):
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()


# --------------------------------------------------------------------------- backends


def resolve_workers(workers: int) -> int:
    """``label.workers``: 0 means every core this process may use."""
    if workers > 0:
        return workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_local(
    tasks: Iterable[Task], workers: int, timeout_s: float, on_row: Callable[[dict], None]
) -> None:
    """Run ``tasks`` on ``workers`` sandboxes; ``on_row`` gets each row as it finishes."""
    idle: queue.SimpleQueue[Sandbox] = queue.SimpleQueue()
    sandboxes = [Sandbox() for _ in range(workers)]
    for sb in sandboxes:
        idle.put(sb)

    def job(task: Task) -> dict[str, Any]:
        sb = idle.get()
        try:
            return sb.run(task, timeout_s)
        finally:
            idle.put(sb)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="label")
    try:
        pending: set = set()
        for task in tasks:
            pending.add(pool.submit(job, task))
            if len(pending) >= 2 * workers:  # bounded: tasks carry PNG bytes
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    on_row(fut.result())
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                on_row(fut.result())
    finally:
        # Kill first so threads blocked on a sandbox return at once (their rows are dropped:
        # the caller stopped listening), then let the pool go.
        for sb in sandboxes:
            sb.close()
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class LogoJob:
    """One cluster task: a logo's PNG (shipped once) and the samples to run on it."""

    image_id: str
    png: bytes
    vtracer: VtracerConfig
    samples: tuple[tuple[int, dict[str, float], str | None], ...]  # (sample, params, fault)

    def tasks(self) -> Iterator[Task]:
        for i, params, fault in self.samples:
            yield Task(self.image_id, i, params, self.png, self.vtracer, fault)


# --------------------------------------------------------------------------- persistence


def fingerprint(vtracer_cfg: VtracerConfig) -> str:
    """Digest of everything a row's values depend on besides its logo and parameter set.

    Not the sampling design (ranges, ``samples_per_image``, seed): a stored row is found by
    :func:`sample_key`, its logo and its own parameter values, so any plan that asks for
    an already finished sample reuses it (issue 17: 12 -> 14 samples computes only 2 per logo).
    """
    from importlib.metadata import version

    payload = {
        "format": _FORMAT_VERSION,
        "colormode": vtracer_cfg.colormode,
        "hierarchical": vtracer_cfg.hierarchical,
        "mode": vtracer_cfg.mode,
        "vtracer": version("vtracer"),
        "resvg_py": version("resvg-py"),
    }
    return json_digest(payload)


def sample_key(image_id: str, params: Mapping[str, Any]) -> str:
    """A finished sample's resume key: the logo (a content hash) and the 8 raw values."""
    values = [SPECS[n].kind(params[n]) for n in PARAM_NAMES]
    return f"{image_id}:{json.dumps(values)}"


class ShardStore:
    """Append-only JSON-lines shards of finished rows under ``root``; one file per run."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._fh: io.TextIOWrapper | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """Every stored row by :func:`sample_key`; later shards win (a retry replaces a row)."""
        rows: dict[str, dict[str, Any]] = {}
        if not self.root.is_dir():
            return rows
        for path in sorted(self.root.glob("rows-*.jsonl")):
            with path.open() as fh:
                for line in fh:
                    if not line.endswith("\n"):
                        break  # a line cut short by kill -9: that sample was in flight
                    row = json.loads(line)
                    rows[sample_key(row["image_id"], row)] = row
        return rows

    def append(self, row: Mapping[str, Any]) -> None:
        if self._fh is None:
            self.root.mkdir(parents=True, exist_ok=True)
            name = f"rows-{time.time_ns():020d}-{os.getpid()}.jsonl"
            self._fh = (self.root / name).open("a")
        self._fh.write(json.dumps(row, sort_keys=True) + "\n")
        self._fh.flush()  # in the OS after this: survives kill -9 of this process

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# --------------------------------------------------------------------------- the stage


@dataclass
class LabelStats:
    total: int = 0
    reused: int = 0
    computed: int = 0
    compute_s: float = 0.0
    backend: str = "local"
    workers: int = 0
    by_status_this_run: dict[str, int] = field(default_factory=dict)


def plan(
    logos: pd.DataFrame, logos_dir: Path, vtracer_cfg: VtracerConfig, label_cfg: LabelConfig
) -> list[tuple[str, int, dict[str, float], Path]]:
    """Every (image_id, sample, params, png path) of the dataset, in output order."""
    out = []
    for image_id in sorted(logos["image_id"]):
        path = logos_dir / f"{image_id}.png"
        sets = sample_params(
            image_id,
            label_cfg.samples_per_image,
            vtracer_cfg.ranges,
            label_cfg.seed,
            local_box=label_cfg.local_box,
            local_share=label_cfg.local_share,
        )
        out.extend((image_id, i, p, path) for i, p in enumerate(sets))
    return out


def label_dataset(
    logos: pd.DataFrame,
    logos_dir: str | Path,
    work_dir: str | Path,
    vtracer_cfg: VtracerConfig,
    label_cfg: LabelConfig,
    *,
    faults: Mapping[tuple[str, int], str] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, LabelStats]:
    """Label every logo in ``logos`` (a logos.csv frame), reusing rows stored in ``work_dir``.

    Returns the labels table (DESIGN.md columns plus ``sample``, ``split``, ``ssim_ms``),
    sorted by ``(image_id, sample)``. ``faults`` plants test-only failures by key.
    """
    import pandas as pd
    from tqdm import tqdm

    logos_dir = Path(logos_dir)
    needed = {"image_id", "logo_type", "split"}
    missing = needed - set(logos.columns)
    if missing:
        raise ValueError(f"logos.csv lacks column(s) {sorted(missing)}; rerun `dvc repro prepare`")
    work = plan(logos, logos_dir, vtracer_cfg, label_cfg)
    store = ShardStore(Path(work_dir) / fingerprint(vtracer_cfg))
    stored = store.load()
    keys = [sample_key(image_id, params) for image_id, _, params, _ in work]
    todo = [
        w
        for w, key in zip(work, keys, strict=True)
        if key not in stored or stored[key]["status"] in TRANSIENT
    ]
    for _, _, _, path in todo:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: logo listed in logos.csv is missing; rerun prepare")

    faults = dict(faults or {})

    def tasks() -> Iterator[Task]:
        png_cache: tuple[Path, bytes] | None = None
        for image_id, i, params, path in todo:
            if png_cache is None or png_cache[0] != path:
                png_cache = (path, path.read_bytes())
            yield Task(image_id, i, params, png_cache[1], vtracer_cfg, faults.get((image_id, i)))

    def jobs() -> Iterator[LogoJob]:  # the cluster's unit: one logo, its PNG read once
        by_logo: dict[str, list[tuple[int, dict[str, float], str | None]]] = defaultdict(list)
        paths: dict[str, Path] = {}
        for image_id, i, params, path in todo:
            by_logo[image_id].append((i, params, faults.get((image_id, i))))
            paths[image_id] = path
        for image_id, samples in by_logo.items():
            png = paths[image_id].read_bytes()
            yield LogoJob(image_id, png, vtracer_cfg, tuple(samples))

    stats = LabelStats(total=len(work), reused=len(work) - len(todo))
    stats.backend = "dask" if label_cfg.cluster else "local"
    stats.workers = 0 if label_cfg.cluster else resolve_workers(label_cfg.workers)
    counts: dict[str, int] = defaultdict(int)
    bar = tqdm(total=len(todo), desc="label", unit="sample", disable=not progress or not todo)

    def on_row(row: dict[str, Any]) -> None:
        store.append(row)
        stored[sample_key(row["image_id"], row)] = row
        counts[row["status"]] += 1
        bar.update(1)
        bar.set_postfix({k: v for k, v in counts.items() if k != "ok"}, refresh=False)

    t0 = time.perf_counter()
    try:
        if todo and label_cfg.cluster:
            from svg_quality.label_cluster import run_dask

            run_dask(jobs(), label_cfg.cluster, label_cfg.timeout_s, on_row)
        elif todo:
            run_local(tasks(), stats.workers, label_cfg.timeout_s, on_row)
    finally:
        store.close()
        bar.close()
    stats.compute_s = time.perf_counter() - t0
    stats.computed = len(todo)
    stats.by_status_this_run = dict(counts)

    # A reused row takes this plan's sample number (the same values may sit elsewhere in it).
    rows = [dict(stored[key], sample=w[1]) for w, key in zip(work, keys, strict=True)]
    df = pd.DataFrame(rows)
    meta = logos.set_index("image_id")[["logo_type", "split"]]
    df = df.join(meta, on="image_id")
    return _typed(df), stats


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    df = df.sort_values(["image_id", "sample"], kind="stable").reset_index(drop=True)
    out = pd.DataFrame(
        {
            "image_id": df["image_id"].astype(str),
            "sample": df["sample"].astype("int64"),
            "logo_type": df["logo_type"].astype(str),
            "split": df["split"].astype(str),
        }
    )
    for name in PARAM_NAMES:
        out[name] = df[name].astype("int64" if SPECS[name].kind is int else "float64")
    out["ssim"] = pd.to_numeric(df["ssim"]).astype("float64")
    out["svg_bytes"] = pd.array(df["svg_bytes"], dtype="Int64")
    out["n_paths"] = pd.array(df["n_paths"], dtype="Int64")
    for col in TIMING_COLUMNS:
        out[col] = pd.to_numeric(df[col]).astype("float64")
    out["status"] = df["status"].astype(str)
    out["error"] = df["error"].astype(object).where(df["error"].notna(), None)
    return out[list(COLUMNS)]


def summarize(df: pd.DataFrame, stats: LabelStats) -> dict[str, Any]:
    """The numbers in reports/label/summary.json."""
    ok = df[df["status"] == "ok"]
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)

    def describe(s: pd.Series) -> dict[str, float]:
        if s.empty:
            return {"n": 0}
        d = {"n": int(s.size), "mean": float(s.mean()), "std": float(s.std(ddof=0))}
        d.update({f"q{int(q * 100):02d}": float(s.quantile(q)) for q in qs})
        return d

    failures = df.loc[df["status"] != "ok", "status"].value_counts()
    return {
        "rows": len(df),
        "images": int(df["image_id"].nunique()),
        "ok": len(ok),
        "failures": {s: int(failures.get(s, 0)) for s in STATUSES if s != "ok"},
        "ssim": describe(ok["ssim"]),
        "ssim_by_type": {t: describe(g["ssim"]) for t, g in ok.groupby("logo_type")},
        "mean_ms": {
            c.removesuffix("_ms"): float(ok[c].mean()) if len(ok) else None for c in TIMING_COLUMNS
        },
        "run": {
            "backend": stats.backend,
            "workers": stats.workers,
            "computed": stats.computed,
            "reused": stats.reused,
            "compute_s": round(stats.compute_s, 3),
            "samples_per_s": round(stats.computed / stats.compute_s, 2) if stats.computed else None,
            "status_this_run": stats.by_status_this_run,
        },
    }


def plot_ssim_by_type(df: pd.DataFrame, path: str | Path) -> None:
    """SSIM distribution per logo type (ok rows), written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from svg_quality.io import atomic_path

    ok = df[df["status"] == "ok"]
    types = sorted(ok["logo_type"].unique())
    fig, ax = plt.subplots(figsize=(7, 4))
    data = [ok.loc[ok["logo_type"] == t, "ssim"].to_numpy() for t in types]
    if data:
        ax.violinplot(data, showmedians=True)
    ax.set_xticks(
        range(1, len(types) + 1),
        labels=[f"{t}\n(n={len(d)})" for t, d in zip(types, data, strict=True)],
    )
    ax.set_ylabel("SSIM (logo vs VTracer rendering)")
    ax.set_title("Label distribution per logo type")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    _worker_main()
