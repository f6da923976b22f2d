"""Stage `train`: labels + features -> models/model.pt, history, metrics, one MLflow run.

Resume checkpoints live in --work-dir (not a DVC out, so the stage stays run-cacheable).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from svg_quality import tracking
from svg_quality.accel import configure_cpu_threads
from svg_quality.checkpoints import load_resume
from svg_quality.config import flatten, load_params
from svg_quality.dataset import data_summary, load_labeled, split_arrays, weights_used
from svg_quality.inputgroups import describe_resnet
from svg_quality.io import dir_digest, file_digest, write_csv_rows, write_json
from svg_quality.model import build_model, count_parameters, model_meta, save_model
from svg_quality.sizehead import train_and_save
from svg_quality.stagerun import run_stage
from svg_quality.trainer import fit

log = logging.getLogger("train")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    for name in ("labels", "features", "logos-csv", "model", "run-json", "work-dir", "reports"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    ap.add_argument("--size-model", type=Path, default=None, help="also train the size head")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    params = load_params(args.params)
    tracking.preflight(params.tracking)  # an unreachable server fails before any work
    threads = configure_cpu_threads()
    data = load_labeled(args.labels, args.features, args.logos_csv, probe=params.model.uses_probe)
    spec, arrays = split_arrays(data, params.model.requested_inputs, params.vtracer.ranges)
    digests = {
        "labels": file_digest(args.labels),
        "features": dir_digest(args.features),
        "logos": file_digest(args.logos_csv),
    }
    summary = data_summary(data)
    train_params = flatten(params.to_dict()["train"])
    meta = model_meta(
        params.model,
        spec,
        {"features": data.feature_meta, "data": {**digests, **summary}, "train": train_params},
    )
    n_params = count_parameters(build_model(params.model, spec.width, spec.resnet_width))
    log.info(
        "%s inputs (%d wide), %d parameters, %s, %d CPU threads",
        spec.inputs,
        spec.width,
        n_params,
        summary,
        threads,
    )
    # A refused resume raises here, before the run it would continue is touched.
    resume = load_resume(args.work_dir, params.train, meta)

    history_csv, metrics_json = args.reports / "history.csv", args.reports / "metrics.json"
    with tracking.model_run(
        params.tracking,
        run_id=resume.meta.get("mlflow_run_id") if resume else None,  # continue its run
        run_name=f"train-{spec.inputs}",
        tags={
            "stage": "train",
            "model_inputs": spec.inputs,
            "features_weights": weights_used(data.feature_meta),
            "resnet_block": describe_resnet(
                params.model.requested_inputs,
                spec.inputs,
                weights_used(data.feature_meta),
                params.model.resnet_pca,
                params.model.resnet_dropout,
            ),
            **{f"{k}_digest": v for k, v in digests.items()},
        },
        params={
            **flatten(params.to_dict()),
            "model.n_parameters": n_params,
            "model.width": spec.width,
            **{f"data.{k}": v for k, v in summary.items()},
        },
        inputs=[
            tracking.DataInput(
                "labels",
                args.labels,
                digests["labels"],
                "training",
                frame=data.rows,
                targets="ssim",
            ),
            tracking.DataInput("features", args.features, digests["features"], "features"),
        ],
    ) as run:
        history = list(resume.history) if resume else []
        run.log_history(history)  # epochs before an interruption that the run lacks

        def on_epoch(record: dict[str, float]) -> None:
            run.log_history([record])
            history.append(record)
            write_csv_rows(history_csv, history)  # live, so `dvc plots show` works mid-run

        result = fit(
            arrays["train"],
            arrays["val"],
            params.model,
            params.train,
            meta={**meta, "mlflow_run_id": run.run_id},
            checkpoint_dir=args.work_dir,
            resume=resume,
            on_epoch=on_epoch,
            resnet_width=spec.resnet_width,
        )
        write_csv_rows(history_csv, result.history)
        save_model(args.model, result.model, {**meta, "best_epoch": result.best_epoch})
        final = {**result.summary(), "inputs": spec.inputs}
        if args.size_model is not None:  # the second MLP: log10(SVG bytes), same inputs
            size = train_and_save(args.size_model, data, spec, params.model, params.train, meta)
            final.update({f"size_{k}": v for k, v in size.items()})
            log.info(
                "size head: val r %.3f on log10 bytes, median |ratio-1| %.3f",
                size["val_pearson_log10"],
                size["val_median_abs_ratio_err"],
            )
        write_json(metrics_json, final)
        run.log_metrics(final, prefix="train/")
        run.log_files([history_csv, metrics_json], "train")
        run.write_run_json(args.run_json)
    log.info(
        "best epoch %d: val rmse %.4f, val r %.3f (%d epochs, run %s)",
        result.best_epoch,
        final["val_rmse"],
        final["val_pearson"],
        result.epochs_run,
        run.run_id,
    )


if __name__ == "__main__":
    sys.exit(run_stage("train", main))
