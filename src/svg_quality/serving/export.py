"""The export run: models/model.pt -> every format in models/export/, verified and timed.

    models/model.pt (QualityMLP + meta) + the featurize backbone (same weights, checked)
      -> quality_predictor.pth        the model file (state dict + meta, with the export's metadata)
      -> quality_mlp_traced.pt        TorchScript (trace)   rows [B, in_dim] -> ssim [B, 1]
      -> quality_mlp_scripted.pt      TorchScript (script)  same
      -> quality_mlp.onnx             ONNX                  features [B, in_dim] -> ssim [B, 1]
      -> quality_e2e.onnx             ONNX, ResNet-50 + input normalization + MLP:
                                      image [B, 3, 224, 224], params [B, 8] raw (, stats [B, k] raw)
                                      -> ssim [B, 1], image_features [B, 2048]
      -> quality_candidates.onnx      ONNX, many parameter sets for one logo:
                                      image_features [1, 2048] (, stats [1, k]), params [N, 8] raw
                                      -> ssim [N, 1]
      -> metadata.json                input layout, ranges, preprocessing, provenance

Why a candidates model: scoring 2,048 parameter sets of one logo with the plain MLP
repeats the same 2048-wide image part of the first layer 2,048 times (most of the
FLOPs). The candidates model splits the first Linear into its image columns (computed
once, [1, h]) and its parameter columns ([N, h]) and adds them: the same function,
about four times fewer FLOPs, which is what keeps ``suggest`` well under 150 ms on a CPU.

The graphs' inputs and outputs are :meth:`svg_quality.inputspec.InputSpec.graph_inputs`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svg_quality.inputspec import SIZE_HEAD, SSIM_HEAD, InputSpec
from svg_quality.paramspace import PARAM_NAMES
from svg_quality.serving.runtime import FILES, ort_session, providers

TARGETS = {"onnx_mlp_batch1_p50_ms": 0.1, "suggest_score_ms": 150.0}


def run_export(
    *,
    model_path: Path,
    features_dir: Path,
    labels: Path,
    logos_csv: Path,
    logos_dir: Path,
    out_dir: Path,
    cfg: Any,
    vtracer_cfg: Any,
    image_size: int,
    git_commit: str | None,
    progress: bool = True,
    min_size: int | None = None,
    size_model_path: Path | None = None,
) -> dict[str, Any]:
    """Write, verify and time every format into ``out_dir`` (swapped in atomically);
    returns the report (also written as export_report.json). ``min_size`` is prepare's
    ``data.min_size``, recorded so the predictor refuses smaller logos too. With
    ``size_model_path`` (the train stage's size head) every graph also predicts
    log10(SVG bytes).

    Once the formats pass parity, metadata.json records the served graphs' self-test and
    the SHA-256 of every model file (:func:`seal`), so the suggestion check loads the
    export as any consumer does; it is rewritten last with the SHA-256 of every other file
    too. The predictor checks both before it serves a file."""
    from svg_quality.dataset import load_labeled
    from svg_quality.io import atomic_dir, file_digest, write_json
    from svg_quality.model import load_model
    from svg_quality.serving import card, latency, parity, suggestcheck, writers
    from svg_quality.serving.predictor import Predictor
    from svg_quality.serving.testset import load_test_set

    clock = _Phases()
    mlp, model_meta = load_model(model_path)
    spec = InputSpec.from_meta(model_meta["input"])
    data = load_labeled(labels, features_dir, logos_csv, probe=spec.uses_probe)
    backbone = _backbone(model_path, model_meta, data.feature_meta, spec, features_dir)
    test = load_test_set(data, spec)
    size, size_meta, size_info = None, None, None
    if size_model_path is not None:
        size, size_meta, size_info = _size_head(size_model_path, model_meta, data, test)
        spec = dataclasses.replace(spec, heads=(SSIM_HEAD, SIZE_HEAD))
    metadata, metrics = _metadata(
        mlp,
        model_meta,
        spec,
        test,
        model_path,
        cfg,
        vtracer_cfg,
        image_size,
        git_commit,
        size_info,
    )
    if min_size is not None:
        metadata["logo"]["min_size"] = int(min_size)
    clock("load")
    with atomic_dir(out_dir) as tmp:
        written = writers.write_formats(
            tmp,
            mlp,
            backbone,
            spec,
            metadata,
            model_meta=model_meta,
            opset=cfg.opset,
            example_rows=test.x,
            size=size,
            size_meta=size_meta,
        )
        write_json(tmp / FILES["metadata"], metadata)
        clock("write_formats")
        cases, checks = parity.verify_formats(
            tmp,
            mlp,
            backbone,
            spec,
            test,
            logos_dir,
            metadata.get("preprocessing"),
            parity_batch=cfg.parity_batch,
            e2e_batch=cfg.e2e_batch,
        )
        if size is not None:
            cases += parity.verify_size_formats(
                tmp, size, spec, test, parity_batch=cfg.parity_batch
            )
        parity.check_parity(cases)
        seal(tmp, metadata)
        clock("parity")
        lat = latency.measure_latencies(
            tmp,
            mlp,
            backbone,
            spec,
            test,
            repeats=cfg.latency_repeats,
            candidates=cfg.suggest_candidates,
            e2e_batch=cfg.e2e_batch,
            e2e_repeats=cfg.e2e_repeats,
        )
        clock("latency")
        summary, rows = suggestcheck.validate_suggestions(
            Predictor.load(tmp, runtime="onnx"),
            _suggest_logos(logos_csv, logos_dir, test.split, cfg.suggest_logos),
            vtracer_cfg,
            candidates=cfg.suggest_candidates,
            progress=progress,
        )
        clock("suggest_validation")
        if rows:
            _write_csv(tmp / FILES["suggestions"], rows)
        report = {
            "files": file_sizes(written.paths),
            "export_seconds": written.seconds,
            "phase_seconds": clock.total(),
            "parity": {c.name: c.to_dict() for c in cases},
            "checks": checks,
            "latency": lat,
            "suggest_validation": summary,
            "metrics": metrics,
            "targets": dict(TARGETS),
        }
        write_json(tmp / FILES["report"], report)
        card.write_model_card(tmp / FILES["card"], metadata, report)
        metadata["sha256"] = {
            f.name: file_digest(f) for f in sorted(tmp.iterdir()) if f.name != FILES["metadata"]
        }
        write_json(tmp / FILES["metadata"], metadata)
    return report


def seal(out_dir: Path, metadata: dict[str, Any]) -> None:
    """Record in ``metadata`` the served ONNX graphs' outputs on the fixed self-test input
    and the SHA-256 of every file it lists, then write it as ``out_dir/metadata.json``:
    what the predictor checks before it serves a graph."""
    from svg_quality.io import file_digest, write_json
    from svg_quality.serving.metadata import self_test_record
    from svg_quality.serving.runtime import GRAPH_FILES

    def run(graph: str, feed: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        return ort_session(out_dir / metadata["files"][GRAPH_FILES[graph]]).run(names, feed)

    metadata["self_test"] = self_test_record(metadata, run)
    metadata["sha256"] = {
        name: file_digest(out_dir / name)
        for name in sorted(metadata["files"].values())
        if name != FILES["metadata"]
    }
    write_json(out_dir / FILES["metadata"], metadata)


def _size_head(
    path: Path, model_meta: Mapping[str, Any], data: Any, test: Any
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The size head (graph module), its model file's meta and its metadata record, with
    its metrics on the verification split; fails unless it reads the SSIM head's rows."""
    from svg_quality.io import file_digest
    from svg_quality.model import load_model
    from svg_quality.serving.graphs import size_output
    from svg_quality.sizehead import OUTPUT, size_metrics, svg_bytes_of

    mlp, meta = load_model(path)
    if meta.get("output") != OUTPUT:
        raise ValueError(f"{path}: not a size model (output {meta.get('output')!r}); retrain")
    if meta["input"] != model_meta["input"]:
        raise ValueError(
            f"{path} was trained on other inputs than the SSIM model; run `dvc repro train`"
        )
    size = size_output(mlp, meta)
    with torch.inference_mode():
        pred = size(torch.from_numpy(test.x)).reshape(-1).numpy()
    actual = svg_bytes_of(data, data.mask(test.split))
    info = {
        "output": OUTPUT,
        "scale": dict(meta["size_scale"]),
        "model": dict(meta["model"]),
        "best_epoch": meta.get("best_epoch"),
        "metrics": {**size_metrics(actual, pred), "split": test.split},
        "source_model": {"path": str(path), "sha256": file_digest(path)},
    }
    return size, meta, info


class _Phases:
    """Seconds per phase of the run, and the total."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.last, 2)
        self.last = now

    def total(self) -> dict[str, float]:
        return {**self.seconds, "total": round(time.perf_counter() - self.start, 2)}


def _backbone(
    model_path: Path,
    model_meta: Mapping[str, Any],
    feature_meta: Mapping[str, Any],
    spec: InputSpec,
    features_dir: Path,
) -> torch.nn.Module | None:
    """The featurize backbone (None when the inputs use none), after checking the model
    was trained on the features in ``features_dir``."""
    from svg_quality.serving.graphs import rebuild_backbone

    used = model_meta.get("features") or {}
    if used.get("fingerprint") not in (None, feature_meta.get("fingerprint")):
        raise ValueError(
            f"{model_path} was trained on other features than {features_dir} holds "
            f"(fingerprint {used.get('fingerprint')} vs "
            f"{feature_meta.get('fingerprint')}); run `dvc repro train`"
        )
    if not spec.uses_resnet:
        return None
    return rebuild_backbone(used.get("weights") or {})[0]


def _metadata(
    mlp: Any,
    model_meta: Mapping[str, Any],
    spec: InputSpec,
    test: Any,
    model_path: Path,
    cfg: Any,
    vtracer_cfg: Any,
    image_size: int,
    git_commit: str | None,
    size_info: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """metadata.json, with the PyTorch model's metrics on the verification split."""
    from svg_quality.io import file_digest
    from svg_quality.metrics import regression_metrics
    from svg_quality.serving.metadata import build_metadata

    with torch.inference_mode():
        pred = mlp(torch.from_numpy(test.x)).numpy()
    metrics = {"test": regression_metrics(test.y, pred), "split": test.split}
    vt = {
        "colormode": vtracer_cfg.colormode,
        "hierarchical": vtracer_cfg.hierarchical,
        "mode": vtracer_cfg.mode,
    }
    metadata = build_metadata(
        mlp,
        model_meta,
        spec,
        vtracer=vt,
        image_size=image_size,
        opset=cfg.opset,
        metrics=metrics,
        git_commit=git_commit,
        source={"path": str(model_path), "sha256": file_digest(model_path)},
        size_head=size_info,
    )
    return metadata, metrics


def _suggest_logos(
    logos_csv: Path, logos_dir: Path, split: str, limit: int
) -> list[tuple[str, str, Path]]:
    import pandas as pd

    logos = pd.read_csv(logos_csv, dtype={"image_id": str})
    chosen = logos[logos["split"] == split]
    if limit:
        chosen = chosen.head(limit)
    return [(r.image_id, r.logo_type, logos_dir / f"{r.image_id}.png") for r in chosen.itertuples()]


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    import csv
    import io

    from svg_quality.io import write_text

    buf = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def file_sizes(paths: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
    return {
        k: {"file": p.name, "bytes": p.stat().st_size, "mb": round(p.stat().st_size / 2**20, 2)}
        for k, p in paths.items()
    }


def flat_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The report's numbers as flat MLflow keys (``parity/onnx_e2e/max_abs_diff`` ...):
    the report's tree, pruned to what is a metric, through the one flattener
    (:func:`svg_quality.tracking.flatten_metrics`)."""
    from svg_quality.tracking import flatten_metrics

    latency = {k: v for k, v in report["latency"].items() if k != "threads"}
    tree = {
        "parity": {n: {"max_abs_diff": p["max_abs_diff"]} for n, p in report["parity"].items()},
        "size_mb": {n: s["mb"] for n, s in report["files"].items()},
        "latency": {
            model: {
                runtime: {f"b{b}": {k: t[k] for k in ("p50_ms", "p95_ms")} for b, t in by.items()}
                for runtime, by in by_runtime.items()
            }
            for model, by_runtime in latency.items()
        },
        "suggest": {
            k: v for k, v in (report.get("suggest_validation") or {}).items() if k != "by_type"
        },
        "check": {k: v for k, v in report["checks"].items() if isinstance(v, float)},
    }
    return flatten_metrics(tree)


def log_to_mlflow(out_dir: Path, report: Mapping[str, Any], registry_name: str | None) -> None:
    """Into the active run: flat metrics, the export files, and the ONNX MLP as an MLflow
    ONNX model (signature + input example), registered as ``registry_name`` if given."""
    import mlflow
    import mlflow.onnx
    import onnx
    from mlflow.models import infer_signature

    from svg_quality.tracking import log_flat_metrics

    log_flat_metrics(flat_metrics(report), prefix="export/")
    for name in FILES.values():
        if (out_dir / name).is_file():
            mlflow.log_artifact(str(out_dir / name), "export")
    meta = json.loads((out_dir / FILES["metadata"]).read_text())
    width = int(meta["input"]["width"])
    session = ort_session(out_dir / FILES["onnx_mlp"])
    example = np.zeros((2, width), dtype=np.float32)
    example[:, -len(PARAM_NAMES) :] = 0.5
    signature = infer_signature(example, session.run(["ssim"], {"features": example})[0])
    mlflow.onnx.log_model(
        onnx.load(str(out_dir / FILES["onnx_mlp"])),
        name="quality_mlp_onnx",
        signature=signature,
        input_example=example,
        registered_model_name=registry_name or None,
        save_as_external_data=False,
        onnx_execution_providers=providers(),
        metadata={"svg_quality_input_layout": meta["input"]["layout"]},
    )
