"""Stage `validate`: model + labels + features -> reports/validate/ (metrics, CV, baselines,
gates, plots, report.md), all logged into the training run named by models/run.json."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from svg_quality import tracking
from svg_quality.accel import configure_cpu_threads
from svg_quality.config import load_params
from svg_quality.dataset import load_labeled
from svg_quality.model import load_model
from svg_quality.plots import write_plots
from svg_quality.validation import flat_metrics, validate_model, write_reports

log = logging.getLogger("validate")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True, help="models/run.json of the training run")
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--logos-csv", type=Path, required=True)
    ap.add_argument("--history", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    t0 = time.perf_counter()

    params = load_params(args.params)
    tracking.preflight(params.tracking, args.run)  # before minutes of cross-validation
    configure_cpu_threads()
    data = load_labeled(args.labels, args.features, args.logos_csv)
    model, meta = load_model(args.model)
    if not args.history.is_file():
        raise FileNotFoundError(f"{args.history}: no training history; run `dvc repro train`")
    history = pd.read_csv(args.history)
    vcfg = params.validate
    run_id = tracking.read_run_json(args.run)["run_id"]
    res = validate_model(data, model, meta, history, params.model, params.train, vcfg, run_id)

    files = write_reports(res, args.out, vcfg)
    files += write_plots(res, history, data.rows, vcfg.gates, args.out)
    verdict = "ready" if res.gates["passed"] else "not_ready"
    with tracking.resume_run(params.tracking, args.run, tags={"validate_verdict": verdict}) as run:
        # Booleans become 0/1 so the MLflow UI can chart and compare them.
        run.log_metrics(
            {k: float(v) if isinstance(v, bool) else v for k, v in flat_metrics(res).items()}
        )
        run.log_files(files, "validate", base=args.out)

    o = res.overall
    log.info(
        "test r %.3f, rmse %.4f, within 0.1 %.3f on %d rows; best baseline %s rmse %.4f; "
        "gates %s; %.0f s",
        o["pearson"],
        o["rmse"],
        o["acc_0_1"],
        o["n"],
        res.baselines["best"],
        res.baselines["best_rmse"],
        "pass" if res.gates["passed"] else "MISSED",
        time.perf_counter() - t0,
    )
    if vcfg.fail_on_gates and not res.gates["passed"]:
        missed = [k for k, g in res.gates["gates"].items() if not g["passed"]]
        log.error("readiness gates missed: %s (validate.fail_on_gates is true)", ", ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
