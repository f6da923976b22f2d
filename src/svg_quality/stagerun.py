"""Run a stage script's ``main`` so that a failure says what DVC removed and how to get it back.

DVC deletes a stage's outputs (all but ``persist: true`` ones) *before* it runs the
stage's command. A stage that then fails, on a typo in params.yaml or a missing input,
leaves the workspace without them, and DVC says nothing about it. Every script in
``stages/`` ends with ``sys.exit(run_stage("<name>", main))``; on failure this prints
the error in one line (a traceback only for what looks like a bug), then which of the
stage's outputs are missing now and the command that restores them:

    train: failed: params.yaml: train.lr = nan is invalid; allowed: a finite number
    train: DVC removed this stage's outputs before running it; now missing: models/model.pt,
      models/run.json (restore: dvc checkout train); reports/train/metrics.json (not in
      DVC's cache: git checkout -- reports/train/metrics.json restores the committed copy)

Run outside DVC (no ``dvc.yaml`` in the working directory), only the error is printed.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Errors a user causes (bad params, a missing or bad input file): one line is enough.
# Anything else may be a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError)


def stage_outs(stage: str, dvc_yaml: Path = Path("dvc.yaml")) -> list[tuple[str, bool]]:
    """``(path, cached)`` for each output DVC removes before running ``stage``: its
    ``outs``, ``metrics`` and ``plots`` entries, minus ``persist: true`` ones."""
    import yaml

    block = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}).get(stage)
    if not block:
        return []
    outs = []
    for kind in ("outs", "metrics", "plots"):
        for entry in block.get(kind) or []:
            path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
            opts = opts or {}
            if not opts.get("persist", False):
                outs.append((str(path), opts.get("cache", kind == "outs") is not False))
    return outs


def removed_note(stage: str, dvc_yaml: Path = Path("dvc.yaml")) -> str | None:
    """What is missing of ``stage``'s outputs and how to restore it; None if nothing is."""
    if not dvc_yaml.is_file():
        return None
    try:
        outs = stage_outs(stage, dvc_yaml)
    except Exception:  # a broken dvc.yaml: DVC itself will say so; keep the real error
        return None
    root = dvc_yaml.parent
    cached = [p for p, c in outs if c and not (root / p).exists()]
    uncached = [p for p, c in outs if not c and not (root / p).exists()]
    if not cached and not uncached:
        return None
    parts = []
    if cached:
        parts.append(f"{', '.join(cached)} (restore: dvc checkout {stage})")
    if uncached:
        paths = " ".join(uncached)
        parts.append(
            f"{', '.join(uncached)} (not in DVC's cache: git checkout -- {paths} restores "
            "the committed copy)"
        )
    return (
        f"{stage}: DVC removed this stage's outputs before running it; now missing: "
        + "; ".join(parts)
    )


def run_stage(stage: str, main: Callable[[], Any]) -> int:
    """Call ``main()``; return its exit code, or 1 (130 on Ctrl-C) after reporting a
    failure with :func:`removed_note`."""
    try:
        return int(main() or 0)
    except KeyboardInterrupt:
        print(f"{stage}: interrupted", file=sys.stderr)
        code = 130
    except Exception as exc:
        if not isinstance(exc, USER_ERRORS):
            traceback.print_exc()
        print(f"{stage}: failed: {exc}", file=sys.stderr)
        code = 1
    note = removed_note(stage)
    if note:
        print(note, file=sys.stderr)
    return code
