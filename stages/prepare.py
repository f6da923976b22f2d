"""Stage `prepare`: logos from `data.sources` (synthetic, artwork, folders) -> normalized PNGs (a share also at the larger
long sides of `data.sizes`), logos.csv, reports."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from svg_quality.config import load_params
from svg_quality.prepare import collect, split_warnings, write
from svg_quality.stagerun import run_stage

log = logging.getLogger("prepare")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--logos-dir", type=Path, required=True)
    ap.add_argument("--logos-csv", type=Path, required=True)
    ap.add_argument("--reports", type=Path, required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    params = load_params(args.params)
    prepared = collect(params.data, params.split)
    summary = write(
        prepared, args.logos_dir, args.logos_csv, args.reports, ", ".join(params.data.sources)
    )
    for warning in split_warnings(prepared.logos, params.split):
        log.warning(warning)
    if summary["rejected"]:
        log.warning(
            "%d file(s) rejected: %s (details in %s)",
            summary["rejected"],
            json.dumps(summary["rejects_by_reason"]),
            args.reports / "rejects.csv",
        )
    log.info("%d logos: %s", summary["logos"], json.dumps(summary["by_type_split"]))
    if summary["sizes_chosen"]:
        log.info(
            "logos per long side: %s (%d chosen for data.sizes; not written: %s)",
            json.dumps(summary["by_size"]),
            summary["sizes_chosen"],
            json.dumps(summary["sizes_skipped"]) if summary["sizes_skipped"] else "none",
        )


if __name__ == "__main__":
    sys.exit(run_stage("prepare", main))
