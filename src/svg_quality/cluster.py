"""Dask plumbing shared by ``label.cluster`` and ``convert`` / ``evaluate --cluster``.

Connect to a scheduler (an unreachable one fails after :data:`CONNECT_TIMEOUT_S`), wait
for a worker and check that every worker runs the same libraries and the same
svg_quality code as this machine (else its rows or SVGs could differ), then
:func:`stream` the work with a bounded number of tasks in flight, handing each finished
task back in completion order. Every failure is one error naming the address and the fix.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from distributed import Client, as_completed

CONNECT_TIMEOUT_S = 10.0  # an unreachable scheduler fails after this long
LABEL_DISTS = ("vtracer", "resvg-py")  # what decides a label row
_MODULES = {"resvg-py": "resvg_py"}  # distribution -> module, where they differ
CODE = "svg-quality code"  # the package's source digest, checked beside the libraries

T = TypeVar("T")


def code_digest() -> str:
    """SHA-256 of this process's svg_quality source files (names and bytes)."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def worker_versions(dists: Sequence[str] = LABEL_DISTS) -> dict[str, str]:
    """Run on every Dask worker before any work: what it would compute with."""
    from importlib.metadata import version

    out = {"python": sys.executable, CODE: code_digest()}
    for dist in dists:
        try:
            __import__(_MODULES.get(dist, dist))
            out[dist] = version(dist)
        except Exception as exc:
            out[dist] = f"missing ({type(exc).__name__}: {exc})"
    return out


def connect(address: str, where: str, local: str) -> Any:
    """A Dask client, or a clear error. ``where`` names the setting in messages
    (``label.cluster = 'tcp://...'``), ``local`` says how to run without the cluster."""
    try:
        return Client(address, set_as_default=False, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConnectionError(
            f"{where}: the Dask scheduler is unreachable ({exc}); start one with `dask "
            f"scheduler` and workers with `dask worker {address} --nthreads 1`, or {local}"
        ) from None


def check_workers(
    client: Any,
    address: str,
    where: str,
    dists: Sequence[str] = LABEL_DISTS,
    timeout_s: float = 60.0,
) -> int:
    """Wait for a worker; check every worker has ``dists`` and svg_quality's code at this
    machine's versions; return the worker threads (the slots)."""
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError:
        raise RuntimeError(
            f"{where}: no Dask worker joined within {timeout_s:.0f} s; start workers with "
            f"`dask worker {address} --nthreads 1`"
        ) from None
    try:
        found = client.run(worker_versions, tuple(dists))
    except Exception as exc:  # e.g. the worker cannot import svg_quality to run the check
        raise RuntimeError(
            f"{where}: the Dask workers cannot run svg-quality's code ({type(exc).__name__}: "
            f"{exc}); install this project (pip install -e .) on every worker"
        ) from None
    want = worker_versions(dists)
    for addr, got in sorted(found.items()):
        for dist in (*dists, CODE):
            if got.get(dist) != want[dist]:
                raise RuntimeError(
                    f"{where}: worker {addr} ({got['python']}) has {dist} {got.get(dist)}, "
                    f"this machine {want[dist]}; install the same versions on every worker "
                    "(pip install -r requirements.lock, and this checkout with pip install "
                    "-e .) so results agree"
                )
    return max(1, sum(client.nthreads().values()))


def stream(
    client: Any,
    items: Iterable[T],
    submit: Callable[[T], Any],
    done: Callable[[T, Any], None],
    depth: int,
) -> None:
    """Submit ``items`` (``submit(item) -> future``) with at most ``depth`` in flight and
    call ``done(item, future)`` as each finishes, in completion order; the future is
    released after. In flight is bounded because tasks carry their inputs' bytes."""
    it = iter(items)
    by_key: dict[str, T] = {}

    def submit_next() -> Any:
        item = next(it, None)
        if item is None:
            return None
        fut = submit(item)
        by_key[fut.key] = item
        return fut

    first = [f for f in (submit_next() for _ in range(max(1, depth))) if f is not None]
    pending = as_completed(first, loop=client.loop)
    for fut in pending:
        item = by_key.pop(fut.key)
        try:
            done(item, fut)
        finally:
            fut.release()
        nxt = submit_next()
        if nxt is not None:
            pending.add(nxt)
