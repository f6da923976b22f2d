"""Stage `featurize`: logos -> ResNet-50 features + logo statistics + VTracer tables (cached
in the work dir), summary report."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from svg_quality.config import load_params
from svg_quality.features import featurize, read_logo_ids
from svg_quality.io import write_json
from svg_quality.stagerun import run_stage

log = logging.getLogger("featurize")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--logos-csv", type=Path, required=True)
    ap.add_argument("--logos-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="content-keyed row cache kept across runs (not a DVC out); omit to compute all",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    warnings.simplefilter("always", RuntimeWarning)  # the random-weights fallback must show

    cfg = load_params(args.params).features
    summary = featurize(
        cfg, read_logo_ids(args.logos_csv), args.logos_dir, args.out, work_dir=args.work_dir
    )
    write_json(args.report, summary)
    log.info(
        "%d images: %d computed, %d reused, %d dropped; %s weights (%s), %s %s, %.1f images/s",
        summary["images"],
        summary["computed"],
        summary["reused"],
        summary["dropped"],
        summary["weights"],
        summary["weights_source"],
        summary["device"],
        summary["dtype"],
        summary["images_per_s"],
    )


if __name__ == "__main__":
    sys.exit(run_stage("featurize", main))
