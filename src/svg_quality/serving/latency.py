"""p50/p95 latency of every format and runtime on the test rows (CPU)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from svg_quality.inputspec import InputSpec
from svg_quality.model import QualityMLP
from svg_quality.paramspace import sobol_candidates
from svg_quality.serving.graphs import MLPForExport, candidate_scorer, end_to_end
from svg_quality.serving.parity import ort_ssim, torch_rows_fn
from svg_quality.serving.runtime import FILES, GRAPH_FILES, ort_session
from svg_quality.serving.testset import TestSet
from svg_quality.serving.writers import load_torchscript


def latency(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> dict[str, float]:
    """p50/p95/mean wall time of ``fn()`` in milliseconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    ms = times * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "repeats": int(repeats),
    }


def _tile(x: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:n])


def _torch_fn(module: nn.Module, args: tuple[torch.Tensor, ...]) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return module(*args)

    return run


def _torch_args(spec: InputSpec, graph: str, feed: Mapping[str, np.ndarray]) -> tuple:
    return tuple(torch.from_numpy(feed[n].copy()) for n in spec.input_names(graph))


def measure_latencies(
    out_dir: Path,
    mlp: QualityMLP,
    backbone: nn.Module | None,
    spec: InputSpec,
    test: TestSet,
    *,
    repeats: int,
    candidates: int,
    e2e_batch: int,
    e2e_repeats: int,
) -> dict[str, Any]:
    """p50/p95 per format and runtime: the MLP at batch 1 and 256, the candidates model
    at ``candidates + 1`` parameter sets (suggest), the end-to-end model at 1 and ``e2e_batch``."""
    out: dict[str, Any] = {"mlp": {}, "candidates": {}, "e2e": {}}
    rows = {n: _tile(test.x, n) for n in (1, 256)}
    # ONNX Runtime first: torch's OpenMP workers spin for a while after each call and
    # would steal its cores.
    mlp_session = ort_session(out_dir / FILES[GRAPH_FILES["mlp"]])
    fns = {
        "onnxruntime": lambda x: ort_ssim(mlp_session, {"features": x}),
        "torch_eager": torch_rows_fn(MLPForExport(mlp.eval())),
        "torchscript_traced": torch_rows_fn(
            load_torchscript(out_dir / FILES["torchscript_traced"])
        ),
        "torchscript_scripted": torch_rows_fn(
            load_torchscript(out_dir / FILES["torchscript_scripted"])
        ),
    }
    for runtime, fn in fns.items():
        out["mlp"][runtime] = {
            str(n): latency(lambda f=fn, x=x: f(x), repeats if n == 1 else max(5, repeats // 20))
            for n, x in rows.items()
        }

    # suggest's scoring pass: VTracer defaults + `candidates` Sobol sets for one logo.
    raw = sobol_candidates(spec.ranges, candidates)
    feed = spec.complete({**test.logo_blocks(spec, test.feature_rows[:1]), "params": raw})
    session = ort_session(out_dir / FILES[GRAPH_FILES["candidates"]])
    ort_feed = {n: feed[n] for n in spec.input_names("candidates")}
    n_rep = max(5, repeats // 10)
    key = str(len(raw))
    out["candidates"]["onnxruntime"] = {
        key: latency(lambda: session.run(["ssim"], ort_feed), n_rep)
    }
    scorer = candidate_scorer(mlp, spec)
    out["candidates"]["torch_eager"] = {
        key: latency(_torch_fn(scorer, _torch_args(spec, "candidates", feed)), n_rep)
    }

    e2e_path = out_dir / FILES[GRAPH_FILES["e2e"]]
    if e2e_path.is_file():
        module = end_to_end(backbone, mlp, spec)
        session = ort_session(e2e_path)
        for n in sorted({1, e2e_batch}):
            feed_e = _e2e_feed(spec, test, n)
            # Batch 1 runs first and warms both runtimes up for the larger batch.
            reps, warm = (e2e_repeats, 1) if n == 1 else (max(1, e2e_repeats // 3), 0)
            out["e2e"].setdefault("onnxruntime", {})[str(n)] = latency(
                lambda f=feed_e: session.run(["ssim"], f), reps, warm
            )
            out["e2e"].setdefault("torch_eager", {})[str(n)] = latency(
                _torch_fn(module, _torch_args(spec, "e2e", feed_e)), reps, warm
            )
    out["threads"] = {"torch": torch.get_num_threads()}
    return out


def _e2e_feed(spec: InputSpec, test: TestSet, n: int) -> dict[str, np.ndarray]:
    """Batch ``n`` of the end-to-end model: a blank image, test parameters and blocks."""
    blocks = spec.complete({**test.logo_blocks(spec, test.feature_rows), "params": test.raw_params})
    feed = {}
    for port in spec.graph_inputs("e2e"):
        if port.name == "image":
            feed["image"] = np.zeros((n, *port.shape[1:]), np.float32)
        elif port.name == "params":
            feed["params"] = _tile(test.raw_params, n)
        else:
            feed[port.name] = _tile(blocks[port.name], n)
    return feed
