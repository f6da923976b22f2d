"""Stage `train`: labels + features -> models/model.pt, checkpoints, history, one MLflow run."""

from __future__ import annotations

import argparse
import csv
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from svg_quality import tracking
from svg_quality.accel import configure_cpu_threads
from svg_quality.config import flatten, load_params
from svg_quality.dataset import data_summary, load_labeled, split_arrays, weights_used
from svg_quality.io import dir_digest, file_digest, write_json, write_text
from svg_quality.model import build_model, count_parameters, model_meta, save_model
from svg_quality.trainer import LAST, fit, load_checkpoint

log = logging.getLogger("train")


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(path, buf.getvalue())


def log_data_inputs(data: Any, args: argparse.Namespace, digests: dict[str, str]) -> None:
    """Labels and features as MLflow dataset inputs, named by their content digests."""
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    with warnings.catch_warnings():  # MLflow's hint about int columns in the inferred schema
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        labels = mlflow.data.from_pandas(
            data.rows,
            source=LocalArtifactDatasetSource(str(args.labels.resolve())),
            targets="ssim",
            name="labels",
            digest=digests["labels"][:16],
        )
        mlflow.log_input(labels, context="training")
    features = MetaDataset(
        LocalArtifactDatasetSource(str(args.features.resolve())),
        name="features",
        digest=digests["features"][:16],
    )
    mlflow.log_input(features, context="features")


def tracking_run_active(run_id: str) -> bool:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False  # logged to another store, or deleted: start a new run


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--logos-csv", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--run-json", type=Path, required=True)
    ap.add_argument("--checkpoints", type=Path, required=True)
    ap.add_argument("--reports", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    import mlflow

    params = load_params(args.params)
    threads = configure_cpu_threads()
    data = load_labeled(args.labels, args.features, args.logos_csv)
    spec, arrays = split_arrays(data, params.model.requested_inputs, params.vtracer.ranges)
    digests = {
        "labels": file_digest(args.labels),
        "features": dir_digest(args.features),
        "logos": file_digest(args.logos_csv),
    }
    weights = weights_used(data.feature_meta)
    summary = data_summary(data)
    meta = model_meta(
        params.model,
        spec,
        {
            "features": data.feature_meta,
            "data": {**digests, **summary},
            "train": flatten(params.to_dict()["train"]),
        },
    )
    n_params = count_parameters(build_model(params.model, spec.width))
    log.info(
        "%s inputs (%d wide), %d parameters, %s, %d CPU threads",
        spec.inputs,
        spec.width,
        n_params,
        summary,
        threads,
    )

    # Resume continues the interrupted run's MLflow run when it is still there.
    last = args.checkpoints / LAST
    prev = load_checkpoint(last) if params.train.resume and last.is_file() else None
    uri = tracking.resolve_tracking_uri(params.tracking)
    tracking.setup(params.tracking)
    run_id = prev["meta"].get("mlflow_run_id") if prev else None
    reuse = bool(run_id and tracking_run_active(run_id))
    if reuse:
        run = mlflow.start_run(run_id=run_id)
    else:
        run = mlflow.start_run(run_name=f"train-{spec.inputs}")
    history: list[dict[str, float]] = list(prev["history"]) if prev else []
    status = "FAILED"
    try:
        mlflow.set_tags(
            {
                **tracking.run_tags(),
                "stage": "train",
                "model_inputs": spec.inputs,
                "features_weights": weights,
                **{f"{k}_digest": v for k, v in digests.items()},
            }
        )
        if not reuse:  # a continued run has them already (only train.resume differs)
            mlflow.log_params({k: str(v) for k, v in flatten(params.to_dict()).items()})
            mlflow.log_params(
                {
                    "model.n_parameters": n_params,
                    "model.width": spec.width,
                    **{f"data.{k}": v for k, v in summary.items()},
                }
            )
            log_data_inputs(data, args, digests)
            for record in history:  # epochs trained before an interruption, into the new run
                tracking.log_flat_metrics(
                    {k: v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"])
                )
        history_csv = args.reports / "history.csv"

        def on_epoch(record: dict[str, float]) -> None:
            tracking.log_flat_metrics(
                {k: v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"])
            )
            history.append(record)
            write_history(history_csv, history)  # live, so `dvc plots show` works mid-run

        result = fit(
            arrays["train"],
            arrays["val"],
            params.model,
            params.train,
            meta={**meta, "mlflow_run_id": run.info.run_id},
            checkpoint_dir=args.checkpoints,
            on_epoch=on_epoch,
        )
        write_history(history_csv, result.history)
        save_model(args.model, result.model, {**meta, "best_epoch": result.best_epoch})
        final = {
            **{k: result.best[k] for k in ("train_loss", "val_loss", "val_rmse", "val_pearson")},
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "n_parameters": n_params,
            "train_seconds": sum(h["epoch_s"] for h in result.history),
            "samples_per_s": sum(h["samples_per_s"] for h in result.history) / result.epochs_run,
            "device": result.device,
            "precision": result.precision,
            "inputs": spec.inputs,
        }
        write_json(args.reports / "metrics.json", final)
        tracking.log_flat_metrics(final, prefix="train/")
        mlflow.log_artifact(str(history_csv), "train")
        mlflow.log_artifact(str(args.reports / "metrics.json"), "train")
        tracking.write_run_json(args.run_json, run, uri)
        log.info(
            "best epoch %d: val rmse %.4f, val r %.3f (%d epochs, run %s)",
            result.best_epoch,
            final["val_rmse"],
            final["val_pearson"],
            result.epochs_run,
            run.info.run_id,
        )
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        mlflow.end_run(status=status)


if __name__ == "__main__":
    main()
