"""The label stage on a Dask cluster (``label.cluster``): the local pool's work, shaped for it.

One task is one logo at one size (:class:`svg_quality.sandbox.LogoJob`): its PNG at that
size crosses the network once, and all its samples there run back to back in one
long-lived sandbox that a worker plugin (:class:`SandboxPlugin`) keeps per worker
thread, the same :class:`svg_quality.sandbox.Sandbox` the local pool uses. So a sample
costs what it costs locally (no process start, one SSIM reference per logo and size),
and a timeout, a panic or a crashed conversion ends as the same row. A worker that dies
takes its in-flight task with it: Dask reruns that task elsewhere, and after
``allowed-failures`` deaths its samples are recorded as ``worker_died`` (retried by the
next run). Rows go to the caller's resumable shards as each task finishes.

Before any work: the scheduler must answer within :data:`CONNECT_TIMEOUT_S`, a worker
must join, and every worker must import vtracer and resvg-py at this machine's versions
(else the labels would differ); each failure is one error naming the address and the fix.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from distributed import Client, WorkerPlugin, as_completed, get_worker

from svg_quality.sandbox import LogoJob, Sandbox, failed_row

PLUGIN_NAME = "svg-quality-label"
CONNECT_TIMEOUT_S = 10.0  # an unreachable label.cluster fails after this long


class SandboxPlugin(WorkerPlugin):
    """Dask worker plugin: the worker's long-lived sandboxes, one per worker thread.

    Registered by :func:`run_dask`; a task takes a sandbox, runs its logo's samples in it
    one by one (each with the per-sample timeout, panic and crash isolation of the local
    pool) and gives it back. The sandboxes live as long as the worker, so a sample pays
    for neither a process start nor the logo's SSIM reference, which the sandbox keeps.
    """

    name = PLUGIN_NAME

    def setup(self, worker: Any) -> None:
        self._idle: queue.SimpleQueue[Sandbox] = queue.SimpleQueue()
        self._all: list[Sandbox] = []
        self._lock = threading.Lock()

    def acquire(self) -> Sandbox:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            sb = Sandbox()
            with self._lock:
                self._all.append(sb)
            return sb

    def release(self, sb: Sandbox) -> None:
        self._idle.put(sb)

    def teardown(self, worker: Any) -> None:
        with self._lock:
            for sb in self._all:
                sb.close()
            self._all.clear()


def run_logo_job(job: LogoJob, timeout_s: float) -> list[dict[str, Any]]:
    """Dask task body: every sample of ``job`` in one of this worker's sandboxes."""
    plugin = get_worker().plugins[PLUGIN_NAME]
    sb = plugin.acquire()
    try:
        return [sb.run(task, timeout_s) for task in job.tasks()]
    finally:
        plugin.release(sb)


def worker_versions() -> dict[str, str]:
    """Run on every Dask worker before labelling: what it would label with."""
    from importlib.metadata import version

    out = {"python": sys.executable}
    for module, dist in (("vtracer", "vtracer"), ("resvg_py", "resvg-py")):
        try:
            __import__(module)
            out[dist] = version(dist)
        except Exception as exc:
            out[dist] = f"missing ({type(exc).__name__}: {exc})"
    return out


def connect(address: str) -> Any:
    """A Dask client for ``label.cluster``, or a clear error naming the address."""
    try:
        return Client(address, set_as_default=False, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConnectionError(
            f"label.cluster = {address!r}: the Dask scheduler is unreachable ({exc}); start "
            "one with `dask scheduler` and workers with `dask worker <address> --nthreads 1`, "
            "or set label.cluster: null to label on this machine"
        ) from None


def check_workers(client: Any, address: str, timeout_s: float = 60.0) -> int:
    """Wait for a worker, check every worker can label like this process; return the slots."""
    from importlib.metadata import version

    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError:
        raise RuntimeError(
            f"label.cluster = {address!r}: no Dask worker joined within {timeout_s:.0f} s; "
            f"start workers with `dask worker {address} --nthreads 1`"
        ) from None
    try:
        found = client.run(worker_versions)
    except Exception as exc:  # e.g. the worker cannot import svg_quality to run the check
        raise RuntimeError(
            f"label.cluster = {address!r}: the Dask workers cannot run the label code "
            f"({type(exc).__name__}: {exc}); install this project (pip install -e .) on "
            "every worker"
        ) from None
    want = {"vtracer": version("vtracer"), "resvg-py": version("resvg-py")}
    for addr, got in sorted(found.items()):
        for dist, v in want.items():
            if got.get(dist) != v:
                raise RuntimeError(
                    f"label.cluster = {address!r}: worker {addr} ({got['python']}) has "
                    f"{dist} {got.get(dist)}, this machine {v}; install the same versions on "
                    "every worker (pip install -r requirements.lock) so labels agree"
                )
    return max(1, sum(client.nthreads().values()))


def run_dask(
    jobs: Iterable[LogoJob], address: str, timeout_s: float, on_row: Callable[[dict], None]
) -> None:
    """Run ``jobs`` (one logo at one size each) on the Dask cluster at ``address``: the
    local pool's rows."""
    with connect(address) as client:
        slots = check_workers(client, address)
        client.register_plugin(SandboxPlugin(), name=PLUGIN_NAME)
        it = iter(jobs)
        by_key: dict[str, LogoJob] = {}

        def submit_next() -> Any:
            job = next(it, None)
            if job is None:
                return None
            fut = client.submit(run_logo_job, job, timeout_s, pure=False)
            by_key[fut.key] = job
            return fut

        # Bounded in flight (jobs carry PNG bytes), deep enough that no worker waits.
        first = [f for f in (submit_next() for _ in range(4 * slots)) if f is not None]
        stream = as_completed(first, loop=client.loop)
        for fut in stream:
            job = by_key.pop(fut.key)
            if fut.status == "finished":
                rows = fut.result()
            else:
                # Dask retries a job whose worker died, and gives up after `allowed-failures`
                # deaths (KilledWorker): record its samples like a local worker death.
                exc = fut.exception()
                error = f"{type(exc).__name__}: {exc}"[:500]
                rows = [failed_row(t, "worker_died", error) for t in job.tasks()]
            fut.release()
            for row in rows:
                on_row(row)
            nxt = submit_next()
            if nxt is not None:
                stream.add(nxt)
