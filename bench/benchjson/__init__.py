"""The JSON record of a benchmark run, written by each script's ``--json PATH``: what ran
(the benchmark, the exact command line), when (UTC), on which code (the short git commit,
``-dirty`` when tracked files differ from it) and machine (cores, the load average at the
start and the end, so a reader sees contention), the figures table(s) it printed and its
ratio line. ``scripts/bench_page.py`` renders docs/benchmarks.md from the records kept in
bench/results/.

A package, not a module, so ``make bench`` (which runs every ``bench/*.py``) skips it.

    record = Record(Path(__file__).stem)        # at the start: command, date, commit, load
    ...
    record.write(args.json, {"title": rows}, ratio, "what the ratio divides", logos=per_logo)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from svg_quality import tracking
from svg_quality.io import write_text
from svg_quality.metrics import finite_or_none

REPO_ROOT = Path(__file__).resolve().parents[2]


def git_commit() -> str | None:
    """The short HEAD commit (svg_quality.tracking's, as model runs record it), with
    ``-dirty`` when tracked files differ from it; None outside a git checkout."""
    head = tracking.git_commit(REPO_ROOT)
    if head is None:
        return None
    try:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        dirty = ""
    return head[:7] + ("-dirty" if dirty else "")


class Record:
    """Made when the benchmark starts (command, date, commit, machine, load), written when
    it ends (load again, the tables, the ratio)."""

    def __init__(self, bench: str) -> None:
        self.head: dict[str, Any] = {
            "bench": bench,
            "argv": list(sys.argv),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "machine": {
                "cores": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "load_start": list(os.getloadavg()),  # 1, 5 and 15 minute averages
        }

    def write(
        self,
        path: str | Path,
        tables: dict[str, list[dict[str, Any]]],
        ratio: float,
        ratio_label: str,
        **details: Any,
    ) -> None:
        """Write the record to ``path``: ``tables`` maps each printed table's title to its
        rows (one dict per row, the column names as keys), the first table the main one;
        ``details`` are the script's own extra figures (per-logo rows, ...)."""
        record = {
            **self.head,
            "load_end": list(os.getloadavg()),
            "tables": tables,
            "ratio": ratio,
            "ratio_label": ratio_label,
            **details,
        }
        write_text(path, json.dumps(finite_or_none(record), indent=1, default=str) + "\n")
