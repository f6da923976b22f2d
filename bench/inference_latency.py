"""Inference latency of the exported predictor, per format and runtime, in one run.

    python bench/inference_latency.py                       # random-init default model
    python bench/inference_latency.py --export models/export
    python bench/inference_latency.py --smoke               # seconds: a few repeats of each
    python bench/inference_latency.py --export models/export --json bench/results/inference_latency.json

Without ``--export``, a randomly initialised model of params.yaml's architecture (its
``model.inputs`` resolved as on the default data, whose trunk is random-init offline:
stats+vtracer+probe, 2 members, periodic embedding) is exported with every served graph
and sealed as the export stage seals it (self-test record, SHA-256 of each file), so the
predictor loads it as it loads a real export.

1. MLP at batch 1: eager PyTorch, TorchScript (traced, scripted), ONNX Runtime.
2. ``suggest`` after the backbone pass: VTracer's defaults + 2,048 Sobol candidates,
   scored and ranked (``Predictor.rank``) on ONNX Runtime and PyTorch, and the plain
   MLP ONNX over the full rows for comparison (no first-layer factorization).
3. The naive baseline: eager PyTorch scoring the candidates one at a time (batch 1).

Targets: ONNX Runtime MLP batch-1 p50 <= 0.1 ms; suggest <= 150 ms on CPU. Prints
``ratio X.XXx`` last = naive per-candidate loop / ONNX Runtime suggest. Needs torch,
onnxruntime, onnxscript, scipy and (for the probe of one logo, outside the timings)
vtracer; not dvc or mlflow.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchjson import Record
from svg_quality.backbone import PREPROCESSING, load_backbone
from svg_quality.config import load_params
from svg_quality.images import to_rgb_on_white
from svg_quality.model import InputSpec, build_model, load_model
from svg_quality.model import model_meta as build_model_meta
from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS, sobol_candidates
from svg_quality.serving.export import seal
from svg_quality.serving.graphs import MLPForExport
from svg_quality.serving.latency import latency
from svg_quality.serving.metadata import build_metadata
from svg_quality.serving.parity import torch_rows_fn
from svg_quality.serving.predictor import Predictor
from svg_quality.serving.runtime import FILES, ort_session
from svg_quality.serving.writers import load_torchscript, write_formats
from svg_quality.synthetic import generate
from svg_quality.verify import suggest
from train_throughput import default_layout

TARGET_MLP_MS, TARGET_SUGGEST_MS = 0.1, 150.0
OPSET = 18


def random_export(out: Path, params_file: Path) -> None:
    """Export a randomly initialised model of ``params_file``'s architecture (BatchNorm
    statistics warmed on random rows) into ``out``, every served graph, sealed."""
    params = load_params(params_file)
    spec = default_layout(params)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(256, spec.width)).astype(np.float32)  # [256, width]
    mlp = build_model(params.model, spec.width, spec.resnet_width)
    if mlp.resnet is not None:  # a fixed projection, fitted as trainer.fit does
        mlp.resnet.fit(rows[:, : spec.resnet_width])
    with torch.no_grad():  # realistic BatchNorm statistics
        mlp.train()
        for _ in range(5):
            mlp(torch.from_numpy(rows))
    mlp.eval()
    # The end-to-end graph holds the trunk only when the inputs use its features.
    backbone = load_backbone("random", seed=0)[0] if spec.uses_resnet else None
    features = {
        "backbone": "torchvision.resnet50",
        "feature_dim": spec.resnet_dim,
        "input_size": 224,
        "preprocessing": PREPROCESSING,
        "weights": {"used": "random", "seed": 0},
    }
    model_meta = build_model_meta(params.model, spec, {"features": features})
    vt = params.vtracer
    meta = build_metadata(
        mlp,
        model_meta,
        spec,
        vtracer={"colormode": vt.colormode, "hierarchical": vt.hierarchical, "mode": vt.mode},
        image_size=params.data.image_size,
        opset=OPSET,
        metrics={},
        git_commit=None,
        source={"path": "random-init"},
    )
    write_formats(
        out,
        mlp,
        backbone,
        spec,
        meta,
        model_meta=model_meta,
        opset=OPSET,
        example_rows=rows[:4],
    )
    seal(out, meta)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--export", type=Path, default=None, help="export dir (default: random model)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--candidates", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=500, help="batch-1 timings per format")
    ap.add_argument("--suggest-repeats", type=int, default=30)
    ap.add_argument("--naive-repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the record here (benchjson)")
    ap.add_argument(
        "--smoke", action="store_true", help="seconds: 64 candidates, a few repeats of each"
    )
    args = ap.parse_args()
    record = Record(Path(__file__).stem)
    if args.smoke:
        args.candidates, args.repeats, args.suggest_repeats, args.naive_repeats = 64, 5, 2, 1

    tmp = None
    if args.export is None:
        tmp = tempfile.TemporaryDirectory(prefix="svgq-bench-")
        export_dir = Path(tmp.name)
        print(
            "exporting a randomly initialised model of params.yaml's architecture ...", flush=True
        )
        random_export(export_dir, args.params)
    else:
        export_dir = args.export
    mlp, meta = load_model(export_dir / FILES["state_dict"])
    spec = InputSpec.from_meta(meta["input"])
    print(
        f"model: {' -> '.join(meta['export']['architecture']['layers'])} ({spec.inputs}); "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU"
    )

    # One real (synthetic) logo's per-logo inputs: statistics, VTracer tables, probe as the
    # predictor computes them; ReLU-pooled-like random features stand in for the backbone.
    rng = np.random.default_rng(0)
    feats = np.abs(rng.normal(size=(1, spec.resnet_dim))).astype(np.float32)
    predictor = Predictor.load(export_dir)
    # generate() draws RGBA; the predictor takes RGB, as prepare's logos are (on white)
    logo = predictor.prepare(np.asarray(to_rgb_on_white(generate("complex", 0, 0, 256))))
    blocks = predictor.logo_blocks(logo, feats if spec.uses_resnet else None)
    x1 = spec.rows(
        {**blocks, "params": np.array([[VTRACER_DEFAULTS[n] for n in PARAM_NAMES]])},
        broadcast=True,
    )

    # 1. MLP at batch 1, every format and runtime. ONNX Runtime first: torch's OpenMP
    # workers keep spinning for a while after each call and would steal its cores.
    session = ort_session(export_dir / FILES["onnx_mlp"])
    fns = {
        "onnxruntime": lambda x: session.run(["ssim"], {"features": x})[0],
        "torch eager": torch_rows_fn(MLPForExport(mlp)),
        "torchscript traced": torch_rows_fn(
            load_torchscript(export_dir / FILES["torchscript_traced"])
        ),
        "torchscript scripted": torch_rows_fn(
            load_torchscript(export_dir / FILES["torchscript_scripted"])
        ),
    }
    print("\nMLP, batch 1 (ms)            p50      p95")
    mlp_ms, mlp_rows = {}, []
    for name, fn in fns.items():
        t = latency(lambda f=fn: f(x1), args.repeats, warmup=50)
        mlp_ms[name] = t["p50_ms"]
        mlp_rows.append({"runtime": name, "p50_ms": t["p50_ms"], "p95_ms": t["p95_ms"]})
        print(f"  {name:24s} {t['p50_ms']:8.4f} {t['p95_ms']:8.4f}")

    # 2. suggest after features: defaults + candidates, scored and ranked.
    from scipy.stats import qmc  # noqa: F401  (import once, outside the timings)

    suggest_title = f"suggest after features, {args.candidates + 1} parameter sets (ms)"
    print(f"\n{suggest_title}   p50      p95")
    results, suggest_rows = {}, []
    for runtime in ("onnx", "torch"):
        # torch: the candidates model (and the size head, if any) in eager PyTorch, the same
        # Predictor code around it
        pred = Predictor.load(export_dir, runtime=runtime)
        t = latency(  # the one suggest, on the prepared logo: table lookup, scoring, ranking
            lambda p=pred: suggest(p, logo, top_k=5, candidates=args.candidates),
            args.suggest_repeats,
            warmup=3,
        )
        results[runtime] = t["p50_ms"]
        label = (
            "onnxruntime (candidates model)"
            if runtime == "onnx"
            else "torch eager (candidates model)"
        )
        print(f"  {label:44s} {t['p50_ms']:8.2f} {t['p95_ms']:8.2f}")
        suggest_rows.append({"scorer": label, "p50_ms": t["p50_ms"], "p95_ms": t["p95_ms"]})
    defaults = np.array([[VTRACER_DEFAULTS[n] for n in PARAM_NAMES]], dtype=np.float32)
    raw = np.concatenate([defaults, sobol_candidates(spec.ranges, args.candidates)])
    rows = spec.rows({**blocks, "params": raw}, broadcast=True)
    t = latency(
        lambda: np.argsort(-session.run(["ssim"], {"features": rows})[0].reshape(-1)),
        max(5, args.suggest_repeats // 3),
        warmup=2,
    )
    label = "onnxruntime (plain MLP over full rows)"
    print(f"  {label:44s} {t['p50_ms']:8.2f} {t['p95_ms']:8.2f}")
    suggest_rows.append({"scorer": label, "p50_ms": t["p50_ms"], "p95_ms": t["p95_ms"]})

    # 3. Naive baseline: eager PyTorch, one candidate at a time.
    eager = MLPForExport(mlp)

    def naive() -> np.ndarray:
        out = np.empty(len(rows), np.float32)
        with torch.inference_mode():
            for i in range(len(rows)):
                out[i] = eager(torch.from_numpy(rows[i : i + 1]))[0, 0]
        return out

    t0 = time.perf_counter()
    for _ in range(args.naive_repeats):
        naive()
    naive_ms = (time.perf_counter() - t0) / args.naive_repeats * 1e3
    label = "naive: eager torch, one candidate per call"
    print(f"  {label:44s} {naive_ms:8.2f}")
    suggest_rows.append({"scorer": label, "mean_ms": naive_ms})

    ok_mlp = mlp_ms["onnxruntime"] <= TARGET_MLP_MS
    ok_sug = results["onnx"] <= TARGET_SUGGEST_MS
    print(
        f"\ntarget ONNX Runtime MLP batch-1 p50 <= {TARGET_MLP_MS} ms: "
        f"{mlp_ms['onnxruntime']:.4f} ms {'PASS' if ok_mlp else 'MISS'}"
    )
    print(
        f"target suggest <= {TARGET_SUGGEST_MS:.0f} ms after features: "
        f"{results['onnx']:.1f} ms {'PASS' if ok_sug else 'MISS'}"
    )
    label = "speedup of ONNX Runtime suggest over the naive eager per-candidate loop"
    print(f"{label}:")
    if tmp is not None:
        tmp.cleanup()
    ratio = naive_ms / results["onnx"]
    if args.json:
        targets = [
            {"target": name, "limit_ms": limit, "measured_ms": ms, "pass": ok}
            for name, limit, ms, ok in (
                ("ONNX Runtime MLP batch-1 p50", TARGET_MLP_MS, mlp_ms["onnxruntime"], ok_mlp),
                ("suggest after features", TARGET_SUGGEST_MS, results["onnx"], ok_sug),
            )
        ]
        tables = {"MLP, batch 1 (ms)": mlp_rows, suggest_title: suggest_rows, "targets": targets}
        record.write(args.json, tables, ratio, label, model=meta["export"]["architecture"])
    print(f"ratio {ratio:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
