"""Stage `validate`: model (+ size model) + labels + features -> one validation result of
both heads and the extra sets -> reports/validate/ (metrics, size, CV, baselines, gates,
plots, report.md), written once, all logged into the training run named by models/run.json."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from svg_quality import tracking
from svg_quality.accel import configure_cpu_threads
from svg_quality.config import load_params
from svg_quality.dataset import load_labeled
from svg_quality.model import load_model
from svg_quality.report import flat_metrics, flat_size_metrics, write_reports
from svg_quality.stagerun import run_stage
from svg_quality.validation import validate_model

log = logging.getLogger("validate")


def validate_extra(args: argparse.Namespace, model, meta, params) -> dict[str, dict[str, Any]]:
    """Each ``validate.extra_sets`` folder labelled with VTracer and scored by the trained
    model, at the view and at the larger sizes the model was trained at where a logo's
    source reaches them: its metrics by folder name (svg_quality.evaluate), flat in
    metrics.json as ``extra/<folder name>/overall/rmse``, ...,
    ``extra/<folder name>/by_size/1024/rmse``."""
    from svg_quality.evaluate import ModelInfo, evaluate, model_scorer
    from svg_quality.inputspec import InputSpec

    vt = {k: getattr(params.vtracer, k) for k in ("colormode", "hierarchical", "mode")}
    spec = InputSpec.from_meta(meta["input"])
    sizes = tuple(spec.sizes[1:]) if spec.uses_size else ()  # the larger trained sizes too
    info = ModelInfo(params.data.image_size, params.data.min_size, vt, spec.ranges, spec.sizes)
    scorer = model_scorer(model, meta, vt)
    out: dict[str, dict[str, Any]] = {}
    for folder in params.validate.extra_sets:
        name = Path(folder).resolve().name
        res = evaluate(
            folder, scorer, info, args.extra_work / name, design=params.label, sizes=sizes
        )
        o, r = res.metrics["overall"], res.metrics["rank"]
        log.info(
            "extra set %s: %d logos (%d files rejected), r %.3f, rmse %.4f, Spearman %.3f",
            name,
            r["logos"],
            len(res.rejects),
            o["pearson"] if o["pearson"] is not None else float("nan"),
            o["rmse"],
            r["spearman_mean"] if r["spearman_mean"] is not None else float("nan"),
        )
        out[name] = res.metrics
    return out


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
    ap.add_argument("--size-model", type=Path, default=None, help="the size head's model file")
    ap.add_argument(
        "--extra-work", type=Path, default=None, help="label cache of validate.extra_sets"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    t0 = time.perf_counter()

    params = load_params(args.params)
    tracking.preflight(params.tracking, args.run)  # before minutes of cross-validation
    configure_cpu_threads()
    data = load_labeled(args.labels, args.features, args.logos_csv, probe=params.model.uses_probe)
    model, meta = load_model(args.model)
    if not args.history.is_file():
        raise FileNotFoundError(f"{args.history}: no training history; run `dvc repro train`")
    history = pd.read_csv(args.history)
    vcfg = params.validate
    if vcfg.extra_sets and args.extra_work is None:
        raise ValueError("validate.extra_sets is set but the stage got no --extra-work")
    size = None if args.size_model is None else load_model(args.size_model)
    run_id = tracking.read_run_json(args.run)["run_id"]
    res = validate_model(
        data,
        model,
        meta,
        history,
        params.model,
        params.train,
        vcfg,
        run_id,
        box=params.label.local_box,
        size=size,  # the size head: test, per type, grouped CV
        extra=validate_extra(args, model, meta, params) if vcfg.extra_sets else None,
    )
    files = write_reports(res, args.out, vcfg, history, data.rows)

    verdict = "ready" if res.gates["passed"] else "not_ready"
    with tracking.resume_run(params.tracking, args.run, tags={"validate_verdict": verdict}) as run:
        flat = flat_metrics(res)
        if res.size is not None:
            flat.update(flat_size_metrics(res.size))
        # Booleans become 0/1 so the MLflow UI can chart and compare them.
        run.log_metrics({k: float(v) if isinstance(v, bool) else v for k, v in flat.items()})
        run.log_files(files, "validate", base=args.out)

    if res.size is not None:
        t = res.size["test"]
        log.info(
            "size head: test r %.4f on log10 bytes, median |ratio-1| %.3f",
            t["pearson_log10"],
            t["median_abs_ratio_err"],
        )
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
    sys.exit(run_stage("validate", main))
