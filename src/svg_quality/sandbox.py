"""One labelled sample, computed in a sandbox: convert, render, score, with isolation.

A **sandbox** is a long-lived child Python process (``python -m svg_quality.sandbox``)
that the parent feeds over a pipe; it is killed and restarted when a sample exceeds
its timeout or when the process dies (``os._exit``, SIGKILL, a segfault), so neither a
hung nor a crashing VTracer call can hang or crash the caller. Every outcome is a row
with a ``status`` (see :mod:`svg_quality.labeling`). The local pool
(:func:`run_local`) and the Dask backend (:mod:`svg_quality.label_cluster`) both drive
sandboxes; :mod:`svg_quality.labeling` plans the samples, resumes and stores the rows.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from svg_quality.native import require
from svg_quality.paramspace import PARAM_NAMES, scale_params

if TYPE_CHECKING:
    from svg_quality.config import VtracerConfig

STATUSES = ("ok", "panic", "render_error", "timeout", "worker_died", "error")
TRANSIENT = ("timeout", "worker_died")  # retried on a rerun; the rest is deterministic
TIMING_COLUMNS = ("convert_ms", "render_ms", "ssim_ms")
COLUMNS = (
    "image_id",
    "sample",
    "size",  # long side (px) of the PNG converted; the params are in the view's frame
    "logo_type",
    "split",
    "origin",  # where the logo came from: synthetic, artwork, folder (prepare's logos.csv)
    *PARAM_NAMES,
    "ssim",
    "svg_bytes",
    "n_paths",
    *TIMING_COLUMNS,
    "status",
    "error",
)
FAULTS = ("panic", "hang", "render", "die", "slow")  # test-only fault injection, see Task.fault
_HEADER = struct.Struct("<Q")


# --------------------------------------------------------------------------- one sample


@dataclass(frozen=True)
class Task:
    """One sample. ``params`` are in the frame of the model's view of the logo (long side
    ``view``, data.image_size); ``png`` is the view itself (``size`` None) or the logo at
    the larger long side ``size``, which VTracer converts with ``params`` scaled by
    ``size / view`` (:attr:`vtracer_params`). The row records ``params`` and ``size``."""

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
    size: int | None = None  # long side of `png` when larger than the view; None: the view
    view: int | None = None  # the view's long side (data.image_size); needed with `size`

    def __post_init__(self) -> None:
        if self.size is not None and (self.view is None or not 0 < self.view < self.size):
            raise ValueError(
                f"Task {self.image_id} size {self.size}: the view's long side {self.view} "
                "must be given and smaller"
            )

    @property
    def key(self) -> tuple[str, int | None, int]:
        return (self.image_id, self.size, self.sample)

    @property
    def vtracer_params(self) -> dict[str, float]:
        """What VTracer converts ``png`` with: ``params``, scaled to ``size`` if given."""
        if self.size is None:
            return dict(self.params)
        return scale_params(self.params, self.size / self.view)


def _empty_row(task: Task) -> dict[str, Any]:
    row: dict[str, Any] = {"image_id": task.image_id, "sample": task.sample, "size": task.size}
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

        from svg_quality.ssim import SSIMReference  # lazy: scipy, in the workers only

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
    # lazy: scipy (and VTracer, resvg), in the workers only; the pool's parent stays light
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
        # keyed by logo and size: a logo's view and its larger PNGs are different images
        rgb, reference = _REFERENCES.get(f"{task.image_id}@{task.size}", task.png)
        params = task.vtracer_params
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

    require("resvg_py")  # import errors should surface before "ready"
    require("vtracer")

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
            [sys.executable, "-m", "svg_quality.sandbox"],
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
                f"`{sys.executable} -m svg_quality.sandbox` to see why"
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
    """One cluster task: a logo's PNG at one size (shipped once) and the samples to run on
    it; ``size`` and ``view`` as in :class:`Task`."""

    image_id: str
    png: bytes
    vtracer: VtracerConfig
    samples: tuple[tuple[int, dict[str, float], str | None], ...]  # (sample, params, fault)
    size: int | None = None
    view: int | None = None

    def tasks(self) -> Iterator[Task]:
        for i, params, fault in self.samples:
            yield Task(
                self.image_id, i, params, self.png, self.vtracer, fault, self.size, self.view
            )


if __name__ == "__main__":
    _worker_main()
