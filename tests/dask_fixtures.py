"""A real Dask scheduler and workers on 127.0.0.1, as processes (the tests' cluster)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaskCluster:
    """`dask scheduler` and `dask worker --nthreads 1` processes on 127.0.0.1."""

    def __init__(self, tmp: Path, workers: int, env: dict[str, str] | None = None) -> None:
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.tmp = tmp
        self.env = env
        port = self.address.rsplit(":", 1)[1]
        cmd = ["dask", "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"]
        self.scheduler = self._spawn(cmd, "scheduler")
        self.workers = [self.add_worker(f"w{i}") for i in range(workers)]

    def _spawn(self, cmd: list[str], name: str) -> subprocess.Popen:
        log = (self.tmp / f"{name}.log").open("w")
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=self.env
        )

    def add_worker(self, name: str) -> subprocess.Popen:
        cmd = ["dask", "worker", self.address, "--nthreads", "1", "--no-dashboard"]
        return self._spawn([*cmd, "--name", name], name)

    def kill(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the nanny and its worker process
        proc.wait()

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            self.kill(proc)
