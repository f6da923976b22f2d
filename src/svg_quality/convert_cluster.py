"""`svg-quality convert --cluster ADDRESS`: the batch's logos as Dask tasks, one per logo.

    this process: read each logo's bytes ──task──> a worker: convert_one at the logo's size
    this process <──(record, SVG, side files)── as each task finishes: the batch's finish()

A worker plugin (:class:`ModelPlugin`) carries the export's files to every worker once,
writes them into the worker's local directory and keeps one loaded
:class:`~svg_quality.serving.predictor.Predictor` per worker thread, so a task pays for
neither loading the model nor shipping it. A task ships one logo's bytes and runs
exactly the local path (:func:`svg_quality.convertlogo.convert_one`), so its SVG and record
are the local run's. The results come back to the caller's ``finish``, the same one the
local pool calls: only the calling process writes the SVGs, the journal and the report,
so a batch interrupted on one machine resumes on the cluster and back.

A worker that dies takes its logo with it: Dask reruns the task on another worker, and
after ``distributed.scheduler.allowed-failures`` deaths the logo is recorded ``failed``
(converted again by the next run). Before any work the workers are checked like the
label stage's (:mod:`svg_quality.cluster`) plus the model runtime's library, and each
loads the model once; any failure is one error naming the worker and the fix.
"""

from __future__ import annotations

import json
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin, get_worker

from svg_quality.cluster import LABEL_DISTS, check_workers, connect, stream
from svg_quality.convertlogo import Job, Output, Settings, convert_one
from svg_quality.io import sha256_hex
from svg_quality.serving.predictor import Predictor

PLUGIN_PREFIX = "svg-quality-convert"


def keep_freed_memory() -> None:
    """Let this process's glibc keep freed memory for reuse, as a plain process does.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes
    glibc's mmap threshold at 128 kB: every array above that (a 1024 px logo's are
    megabytes) is then mapped, zeroed and unmapped on each use. That made a conversion
    1.3-1.4x slower on a worker than in a plain process (the same 5 logos at 1024 px);
    raising both thresholds (32 MB, glibc's largest mmap threshold, and 128 MB) gives
    the plain process's times back. Elsewhere than glibc nothing changes.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 128 << 20)


class ModelPlugin(WorkerPlugin):
    """Dask worker plugin: the export's files on the worker, and its loaded predictors.

    ``files`` maps each file name of the export (metadata.json's ``files``) to its bytes;
    they are written once per worker under its local directory, where
    :meth:`Predictor.load` checks them against metadata.json's digests as on any machine.
    """

    def __init__(self, files: dict[str, bytes], runtime: str) -> None:
        self.files = files
        self.runtime = runtime
        digest = sha256_hex(files["metadata.json"])[:12]
        self.name = f"{PLUGIN_PREFIX}-{digest}-{runtime}"

    def setup(self, worker: Any) -> None:
        keep_freed_memory()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=worker.local_directory))
        for name, data in self.files.items():
            (self.dir / name).write_bytes(data)
        self.files = {}  # on disk now; the scheduler keeps the copy for workers yet to join
        self._idle: queue.SimpleQueue[Predictor] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def acquire(self) -> Predictor:
        """A predictor no other thread of this worker is using (loaded on first need)."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            with self._lock:  # one load at a time: the export's files are read and checked
                predictor = Predictor.load(self.dir, runtime=self.runtime)
                predictor.backend.warm()
            return predictor

    def release(self, predictor: Predictor) -> None:
        self._idle.put(predictor)

    def teardown(self, worker: Any) -> None:
        shutil.rmtree(getattr(self, "dir", ""), ignore_errors=True)


def export_files(model: str | Path) -> dict[str, bytes]:
    """The export folder's files that metadata.json names (the ones a Predictor reads)."""
    d = Path(model)
    meta = json.loads((d / "metadata.json").read_text())
    return {name: (d / name).read_bytes() for name in sorted(set(meta["files"].values()))}


def convert_task(plugin: str, job: Job, data: bytes, settings: Settings) -> tuple[dict, Output]:
    """Dask task body: one logo (its bytes) converted as a local run converts it."""
    models = get_worker().plugins[plugin]
    predictor = models.acquire()
    try:
        with tempfile.TemporaryDirectory(prefix="svg-quality-logo-") as tmp:
            local = Path(tmp) / job.source.name  # the same name: decoders may look at it
            local.write_bytes(data)
            rec, out = convert_one(Job(local, job.rel), settings, predictor)
    finally:
        models.release(predictor)
    rec["source"] = str(job.source)  # the record and its error name the caller's file
    if "error" in rec:
        rec["error"] = rec["error"].replace(str(local), str(job.source))
    return rec, out


def _load_model(plugin: str, dask_worker: Any = None) -> str:
    """Run on every worker before the batch: load the model once (it stays loaded)."""
    models = dask_worker.plugins[plugin]
    models.release(models.acquire())
    return str(models.dir)


def run_dask(
    jobs: Sequence[Job],
    settings: Settings,
    address: str,
    finish: Callable[[dict[str, Any], Output], None],
) -> None:
    """Convert ``jobs`` on the Dask cluster at ``address``, calling ``finish(record,
    output)`` in this process as each logo is done (a local run's records and outputs)."""
    where = f"--cluster {address}"
    runtime_dist = "onnxruntime" if settings.runtime == "onnx" else "torch"
    with connect(address, where, "leave out --cluster to convert on this machine") as client:
        slots = check_workers(client, address, where, (*LABEL_DISTS, "scour", runtime_dist))
        plugin = ModelPlugin(export_files(settings.model), settings.runtime)
        client.register_plugin(plugin, name=plugin.name)
        try:
            try:
                client.run(_load_model, plugin.name)
            except Exception as exc:
                raise RuntimeError(
                    f"{where}: a worker cannot load the model {settings.model} "
                    f"({type(exc).__name__}: {exc}); check the worker's {runtime_dist}"
                ) from None

            def readable() -> Any:
                for job in jobs:
                    try:
                        yield job, job.source.read_bytes()
                    except OSError as exc:  # reported like a file that is not an image
                        error = f"{job.source}: cannot read it ({exc.strerror or exc})"
                        rec = {"source": str(job.source), "output": job.rel, "status": "bad"}
                        finish({**rec, "error": error}, Output())

            def submit(item: tuple[Job, bytes]) -> Any:
                job, data = item
                return client.submit(convert_task, plugin.name, job, data, settings, pure=False)

            def done(item: tuple[Job, bytes], fut: Any) -> None:
                job = item[0]
                if fut.status == "finished":
                    finish(*fut.result())
                    return
                # Dask reruns a task whose worker died, and gives up after
                # `allowed-failures` deaths (KilledWorker): that logo failed this time.
                exc = fut.exception()
                rec = {"source": str(job.source), "output": job.rel, "status": "failed"}
                rec["error"] = f"on the cluster: {type(exc).__name__}: {exc}"[:500]
                finish(rec, Output())

            stream(client, readable(), submit, done, depth=2 * slots)
        finally:
            client.unregister_worker_plugin(plugin.name)  # the loaded models go with it
