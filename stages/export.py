"""Stage `export`: models/model.pt -> models/export/ (every format, verified and timed).

Writes the state dict + metadata, TorchScript (traced, scripted), ONNX (MLP, end-to-end
with ResNet-50, candidates), metadata.json, export_report.json (sizes, parity, latency,
the suggestion check with real VTracer conversions) and MODEL_CARD.md, then logs them
into the training run named by models/run.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from svg_quality import tracking
from svg_quality.accel import configure_cpu_threads
from svg_quality.config import load_params
from svg_quality.io import write_json
from svg_quality.serving.export import flat_metrics, log_to_mlflow, run_export
from svg_quality.stagerun import run_stage

log = logging.getLogger("export")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True, help="models/run.json of the training run")
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--logos-csv", type=Path, required=True)
    ap.add_argument("--logos-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, default=None, help="flat metrics for `dvc metrics`")
    ap.add_argument("--gates", type=Path, required=True, help="validate's gates.json")
    ap.add_argument("--size-model", type=Path, default=None, help="the size head (train)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    for noisy in ("onnxscript", "onnx_ir"):  # per-pass INFO chatter of the ONNX optimizer
        logging.getLogger(noisy).setLevel(logging.WARNING)

    params = load_params(args.params)
    tracking.preflight(params.tracking, args.run)  # before models/export is written
    gates = json.loads(args.gates.read_text())  # registry only for a model that passed
    threads = configure_cpu_threads()
    report = run_export(
        model_path=args.model,
        features_dir=args.features,
        labels=args.labels,
        logos_csv=args.logos_csv,
        logos_dir=args.logos_dir,
        out_dir=args.out,
        cfg=params.export,
        vtracer_cfg=params.vtracer,
        image_size=params.data.image_size,
        git_commit=tracking.git_commit(),
        min_size=params.data.min_size,
        size_model_path=args.size_model,
    )
    if args.metrics is not None:
        write_json(args.metrics, flat_metrics(report))
    with tracking.resume_run(params.tracking, args.run):
        log_to_mlflow(args.out, report, None)  # logs the ONNX MLP; registered below if ready
        registry = tracking.register_candidate(gates, params.export.registry_name)
    write_json(args.out / "registry.json", registry)
    if registry["registered"]:
        log.info(
            "registered %s v%s as %s", registry["name"], registry["version"], registry["model_uri"]
        )
    else:
        log.warning(
            "not registered as %s: gates failed: %s",
            registry["name"],
            "; ".join(registry["reasons"]),
        )

    lat, sv = report["latency"], report["suggest_validation"]
    for name, p in report["parity"].items():
        log.info(
            "%-22s %7.2f MB  max |diff| %.2e (<= %.0e)",
            name,
            report["files"][name.removeprefix("size/")]["mb"],  # size/: the size output
            p["max_abs_diff"],
            p["tolerance"],
        )
    log.info(
        "ONNX MLP batch-1 p50 %.3f ms; suggest scoring (%s sets) p50 %.1f ms; %d threads",
        lat["mlp"]["onnxruntime"]["1"]["p50_ms"],
        next(iter(lat["candidates"]["onnxruntime"])),
        next(iter(lat["candidates"]["onnxruntime"].values()))["p50_ms"],
        threads,
    )
    if sv.get("mean_uplift") is not None:
        log.info(
            "suggestions on %d logos: SSIM %.4f vs defaults %.4f (uplift %+.4f, %.0f%% improved)",
            sv["logos"],
            sv["mean_ssim_suggested"],
            sv["mean_ssim_default"],
            sv["mean_uplift"],
            100 * sv["share_improved"],
        )


if __name__ == "__main__":
    sys.exit(run_stage("export", main))
