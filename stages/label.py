"""label stage: sample VTracer parameter sets per logo (at the view and at its larger sizes),
convert, render, SSIM -> labels.parquet.

    python stages/label.py --params params.yaml --logos-csv data/logos.csv \
        --logos-dir data/logos --out data/labels.parquet --reports reports/label \
        --work-dir data/.label_work

Finished samples are kept under --work-dir (not a DVC out, so `dvc repro` leaves it
alone): rerunning after an interruption continues where the last run stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from svg_quality.config import load_params
from svg_quality.io import atomic_path, write_json
from svg_quality.labeling import label_dataset, plot_ssim_by_type, summarize
from svg_quality.stagerun import run_stage


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--logos-csv", type=Path, required=True)
    ap.add_argument("--logos-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="labels parquet")
    ap.add_argument("--reports", type=Path, required=True, help="report directory")
    ap.add_argument("--work-dir", type=Path, required=True, help="resumable per-sample shards")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    if not args.logos_csv.is_file():
        raise FileNotFoundError(f"{args.logos_csv}: not found; run `dvc repro prepare` first")
    logos = pd.read_csv(args.logos_csv, dtype={"image_id": str, "sizes": str})

    t0 = time.perf_counter()
    try:
        _label(args, params, logos, t0)
    except KeyboardInterrupt:  # run_stage reports it; say what is kept and how to go on
        print(
            f"label: every sample finished so far is saved, intact, in {args.work_dir}; "
            "rerun `dvc repro label` (or `dvc repro`) to continue from them",
            file=sys.stderr,
        )
        raise


def _label(args: argparse.Namespace, params: Any, logos: pd.DataFrame, t0: float) -> None:
    labels, stats = label_dataset(
        logos,
        args.logos_dir,
        args.work_dir,
        params.vtracer,
        params.label,
        image_size=params.data.image_size,
    )
    with atomic_path(args.out) as tmp:
        labels.to_parquet(tmp, index=False)

    summary = summarize(labels, stats)
    summary["run"]["wall_s"] = round(time.perf_counter() - t0, 2)
    write_json(args.reports / "summary.json", summary)
    plot_ssim_by_type(labels, args.reports / "ssim_by_type.png")
    fails = ", ".join(f"{k} {v}" for k, v in summary["failures"].items() if v) or "none"
    by_size = ", ".join(f"{s} px {v['rows']}" for s, v in summary["by_size"].items())
    print(
        f"label: {summary['rows']} rows for {summary['images']} logos ({by_size}; "
        f"{stats.computed} computed, {stats.reused} reused), failures: {fails}, "
        f"mean SSIM {summary['ssim'].get('mean', float('nan')):.4f}"
    )


if __name__ == "__main__":
    sys.exit(run_stage("label", main))
