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

Before any work (:mod:`svg_quality.cluster`): the scheduler must answer, a worker must
join, and every worker must run vtracer, resvg-py and svg_quality's code at this
machine's versions (else the labels would differ); each failure is one error naming the
address and the fix.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

from distributed import WorkerPlugin, get_worker

from svg_quality.cluster import check_workers, connect, stream
from svg_quality.sandbox import LogoJob, Sandbox, failed_row

PLUGIN_NAME = "svg-quality-label"


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


def run_dask(
    jobs: Iterable[LogoJob],
    address: str,
    timeout_s: float,
    on_row: Callable[[dict], None],
    where: str | None = None,
) -> None:
    """Run ``jobs`` (one logo at one size each) on the Dask cluster at ``address``: the
    local pool's rows. ``where`` names the setting in errors (default ``label.cluster``;
    evaluate's ``--cluster``)."""
    if where is None:
        where, local = f"label.cluster = {address!r}", "set label.cluster: null"
    else:
        local = "leave out --cluster"
    local += " to label on this machine"
    with connect(address, where, local) as client:
        slots = check_workers(client, address, where)
        client.register_plugin(SandboxPlugin(), name=PLUGIN_NAME)

        def submit(job: LogoJob) -> Any:
            return client.submit(run_logo_job, job, timeout_s, pure=False)

        def done(job: LogoJob, fut: Any) -> None:
            if fut.status == "finished":
                rows = fut.result()
            else:
                # Dask retries a job whose worker died, and gives up after `allowed-failures`
                # deaths (KilledWorker): record its samples like a local worker death.
                exc = fut.exception()
                error = f"{type(exc).__name__}: {exc}"[:500]
                rows = [failed_row(t, "worker_died", error) for t in job.tasks()]
            for row in rows:
                on_row(row)

        # Deep enough that no worker waits between tasks.
        stream(client, jobs, submit, done, depth=4 * slots)
