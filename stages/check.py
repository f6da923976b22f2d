"""Stage `check`: params.yaml validated before any stage that reads it runs.

DVC deletes a stage's outputs before it runs the stage, so a bad value given with
`dvc exp run -S train.lr=abc` used to cost the outputs of `train` (and its uncommitted
reports) before train itself refused the value. Every other stage depends on this
stage's one file, so DVC runs this first whenever params.yaml changes, and a bad value
stops the run here, with nothing else deleted. The file's content never changes, so a
passing check reruns nothing downstream.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from svg_quality.config import load_params
from svg_quality.io import write_text
from svg_quality.stagerun import run_stage

OK = "params.yaml: ok\n"  # constant: a rerun of this stage changes no downstream dep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    try:
        load_params(args.params)
    except ValueError as exc:
        raise ValueError(
            f"{exc}; no stage ran and nothing was deleted: fix the value (after `dvc exp run "
            "-S`, `git checkout params.yaml` restores the committed file)"
        ) from None
    write_text(args.out, OK)


if __name__ == "__main__":
    sys.exit(run_stage("check", main))
