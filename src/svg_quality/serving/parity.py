"""Every exported format against the PyTorch model (eval mode) on the test rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from svg_quality.backbone import preprocess
from svg_quality.images import load_rgb
from svg_quality.inputspec import SIZE_HEAD, InputSpec
from svg_quality.model import QualityMLP, load_model
from svg_quality.paramspace import sobol_candidates
from svg_quality.preprocess import backbone_input
from svg_quality.serving.graphs import MLPForExport, SizeOutput, size_output
from svg_quality.serving.runtime import FILES, GRAPH_FILES, ort_session
from svg_quality.serving.testset import TestSet
from svg_quality.serving.writers import load_torchscript

MLP_TOLERANCE = 1e-5  # max |difference| allowed for formats of the MLP alone
E2E_TOLERANCE = 1e-4  # ResNet-50 in another runtime sums 25 M products in another order
# log10 bytes = low + sigmoid * span (span ~5): the MLP tolerance times the span; 1e-4 in
# log10 is 0.02% of the bytes
SIZE_TOLERANCE = 1e-4
SIZE_E2E_TOLERANCE = 5e-4


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"outputs differ in shape: {a.shape} vs {b.shape}")
    return float(np.abs(a - b).max()) if a.size else 0.0


def torch_rows_fn(module: nn.Module, index: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """numpy rows -> numpy ``[B]`` through a torch module (eager or TorchScript); of a
    module with several outputs, output ``index``."""

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = module(torch.from_numpy(x))
        return (out[index] if isinstance(out, tuple) else out).reshape(-1).numpy()

    return run


def ort_ssim(session: Any, feed: Mapping[str, np.ndarray], output: str = "ssim") -> np.ndarray:
    """The ``ssim`` (or another) output ``[B]`` of an ORT session fed the arrays its
    inputs name."""
    feed = {i.name: feed[i.name] for i in session.get_inputs()}
    return session.run([output], feed)[0].reshape(-1)


@dataclass(frozen=True)
class ParityCase:
    """One format against its reference, at batch 1 and a larger batch."""

    name: str
    runtime: str
    tolerance: float
    diffs: dict[int, float]  # batch -> max |difference|

    @property
    def max_abs_diff(self) -> float:
        return max(self.diffs.values())

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "tolerance": self.tolerance,
            "max_abs_diff": self.max_abs_diff,
            "by_batch": {str(b): d for b, d in self.diffs.items()},
            "passed": self.passed,
        }


def compare(
    name: str,
    runtime: str,
    tolerance: float,
    reference: Callable[[int], np.ndarray],
    candidate: Callable[[int], np.ndarray],
    batches: Sequence[int],
) -> ParityCase:
    """``reference(b)`` and ``candidate(b)`` give predictions for the first ``b`` cases."""
    return ParityCase(
        name, runtime, tolerance, {b: max_abs(reference(b), candidate(b)) for b in batches}
    )


def check_parity(cases: Sequence[ParityCase]) -> None:
    """Raise naming every format whose outputs differ from PyTorch beyond its tolerance."""
    bad = [c for c in cases if not c.passed]
    if bad:
        detail = "; ".join(
            f"{c.name} ({c.runtime}): {c.max_abs_diff:.2e} > {c.tolerance:.0e}" for c in bad
        )
        raise RuntimeError(f"exported formats disagree with the PyTorch model: {detail}")


def verify_formats(
    out_dir: Path,
    mlp: QualityMLP,
    backbone: nn.Module | None,
    spec: InputSpec,
    test: TestSet,
    logos_dir: Path,
    preprocessing: Mapping[str, Any] | None,
    *,
    parity_batch: int,
    e2e_batch: int,
) -> tuple[list[ParityCase], dict[str, Any]]:
    """Every format in ``out_dir`` against the PyTorch model (eval) on the test rows."""
    mlp = mlp.eval()
    x = np.ascontiguousarray(test.x)
    b = min(parity_batch, len(x))
    ref = torch_rows_fn(MLPForExport(mlp))
    cases = []
    reloaded, _ = load_model(out_dir / FILES["state_dict"])
    mlp_session = ort_session(out_dir / FILES["onnx_mlp"])
    mlp_formats = {
        ("state_dict", "torch"): torch_rows_fn(MLPForExport(reloaded)),
        ("torchscript_traced", "torchscript"): torch_rows_fn(
            load_torchscript(out_dir / FILES["torchscript_traced"])
        ),
        ("torchscript_scripted", "torchscript"): torch_rows_fn(
            load_torchscript(out_dir / FILES["torchscript_scripted"])
        ),
        ("onnx_mlp", "onnxruntime"): lambda rows: ort_ssim(mlp_session, {"features": rows}),
    }
    for (name, runtime), fn in mlp_formats.items():
        cases.append(
            compare(
                name, runtime, MLP_TOLERANCE, lambda n: ref(x[:n]), lambda n, f=fn: f(x[:n]), (1, b)
            )
        )

    # Candidates model: one real test logo, its own rows first, then Sobol parameter sets.
    feed = _candidate_inputs(test, spec, b)
    session = ort_session(out_dir / FILES[GRAPH_FILES["candidates"]])
    cases.append(
        compare(
            "onnx_candidates",
            "onnxruntime",
            MLP_TOLERANCE,
            lambda n: ref(spec.rows(_first(feed, n), broadcast=True)),
            lambda n: ort_ssim(session, _first(feed, n)),
            (1, b),
        )
    )

    checks: dict[str, Any] = {"parity_rows": len(x), "parity_split": test.split}
    e2e_path = out_dir / FILES[GRAPH_FILES["e2e"]]
    if e2e_path.is_file():
        case, more = _verify_e2e(
            e2e_path, mlp, backbone, spec, test, logos_dir, preprocessing, e2e_batch
        )
        cases.append(case)
        checks.update(more)
    return cases, checks


def _verify_e2e(
    path: Path,
    mlp: QualityMLP,
    backbone: nn.Module | None,
    spec: InputSpec,
    test: TestSet,
    logos_dir: Path,
    preprocessing: Mapping[str, Any] | None,
    e2e_batch: int,
) -> tuple[ParityCase, dict[str, Any]]:
    """End-to-end ONNX vs the two-step PyTorch path (backbone features -> rows -> MLP)."""
    # First label row of each of the first e2e_batch test logos.
    _, first = np.unique(test.feature_rows, return_index=True)
    first = np.sort(first)[:e2e_batch]
    blocks = spec.complete(
        {**test.logo_blocks(spec, test.feature_rows[first]), "params": test.raw_params[first]}
    )
    checks: dict[str, Any] = {"e2e_logos": len(first)}
    if spec.uses_resnet:  # the graph takes the image: features as serving computes them
        stored = blocks["image_features"]
        images, feats, more = _backbone_checks(
            backbone, [test.image_ids[i] for i in first], stored, logos_dir, preprocessing
        )
        checks.update(more)
        with torch.inference_mode():
            a, b = (
                mlp(torch.from_numpy(spec.rows({**blocks, "image_features": f}))).numpy()
                for f in (feats, stored)
            )
        checks["prediction_fp32_vs_featurize_features_max_abs"] = max_abs(a, b)
        blocks = {**blocks, "image_features": feats, "image": images}

    def two_step(n: int) -> np.ndarray:
        rows = spec.rows({k: v[:n] for k, v in blocks.items()})
        with torch.inference_mode():
            return mlp(torch.from_numpy(rows)).numpy()

    session = ort_session(path)
    case = compare(
        "onnx_e2e",
        "onnxruntime",
        E2E_TOLERANCE,
        two_step,
        lambda n: ort_ssim(session, {k: v[:n] for k, v in blocks.items()}),
        sorted({1, len(first)}),
    )
    return case, checks


def _backbone_checks(
    backbone: nn.Module,
    image_ids: Sequence[str],
    stored: np.ndarray,
    logos_dir: Path,
    preprocessing: Mapping[str, Any] | None,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Backbone inputs ``[E, 3, 224, 224]`` and fp32 features ``[E, 2048]`` of the logos, and
    how they compare with the torch-free preprocessing and featurize's stored features."""
    from PIL import Image

    rgbs = [load_rgb(logos_dir / f"{i}.png") for i in image_ids]
    images = torch.stack([preprocess(Image.fromarray(r)) for r in rgbs])  # [E, 3, 224, 224]
    numpy_images = np.stack([backbone_input(r, preprocessing or {}) for r in rgbs])
    with torch.inference_mode():
        feats = backbone.eval()(images).numpy()  # [E, 2048]
    # How close fp32 features on this machine are to featurize's (same weights, but
    # featurize may run under bf16 autocast on a GPU or a bf16 CPU): informative, not
    # a gate; the prediction difference it makes is what a served model adds.
    checks = {
        "preprocess_numpy_vs_torch_max_abs": max_abs(numpy_images, images.numpy()),
        "features_vs_featurize_max_abs": max_abs(feats, stored),
        "features_vs_featurize_max_rel": max_abs(feats, stored)
        / max(float(np.abs(stored).max()), 1e-12),
    }
    return images.numpy(), feats, checks


def verify_size_formats(
    out_dir: Path,
    size: SizeOutput,
    spec: InputSpec,
    test: TestSet,
    *,
    parity_batch: int,
) -> list[ParityCase]:
    """The size head's output (``log10_svg_bytes``) of every format against PyTorch:
    its model file, both TorchScript files (second output), the ONNX MLP, candidates
    and end-to-end graphs."""
    x = np.ascontiguousarray(test.x)
    b = min(parity_batch, len(x))
    ref = torch_rows_fn(size.eval())
    reloaded = size_output(*load_model(out_dir / FILES["size_state_dict"]))
    mlp_session = ort_session(out_dir / FILES["onnx_mlp"])
    formats = {
        ("size_state_dict", "torch"): torch_rows_fn(reloaded),
        ("torchscript_traced", "torchscript"): torch_rows_fn(
            load_torchscript(out_dir / FILES["torchscript_traced"]), 1
        ),
        ("torchscript_scripted", "torchscript"): torch_rows_fn(
            load_torchscript(out_dir / FILES["torchscript_scripted"]), 1
        ),
        ("onnx_mlp", "onnxruntime"): lambda rows: ort_ssim(
            mlp_session, {"features": rows}, SIZE_HEAD
        ),
    }
    cases = [
        compare(
            f"size/{name}",
            runtime,
            SIZE_TOLERANCE,
            lambda n: ref(x[:n]),
            lambda n, f=fn: f(x[:n]),
            (1, b),
        )
        for (name, runtime), fn in formats.items()
    ]
    feed = _candidate_inputs(test, spec, b)
    session = ort_session(out_dir / FILES[GRAPH_FILES["candidates"]])
    cases.append(
        compare(
            "size/onnx_candidates",
            "onnxruntime",
            SIZE_TOLERANCE,
            lambda n: ref(spec.rows(_first(feed, n), broadcast=True)),
            lambda n: ort_ssim(session, _first(feed, n), SIZE_HEAD),
            (1, b),
        )
    )
    e2e_path = out_dir / FILES[GRAPH_FILES["e2e"]]
    if e2e_path.is_file() and not spec.uses_resnet:  # with ResNet: the SSIM e2e case covers
        # the backbone; the size head reads the same rows (checked above on every MLP format)
        _, first = np.unique(test.feature_rows, return_index=True)
        first = np.sort(first)[:b]
        blocks = spec.complete(
            {**test.logo_blocks(spec, test.feature_rows[first]), "params": test.raw_params[first]}
        )
        e2e = ort_session(e2e_path)
        cases.append(
            compare(
                "size/onnx_e2e",
                "onnxruntime",
                SIZE_E2E_TOLERANCE,
                lambda n: ref(spec.rows({k: v[:n] for k, v in blocks.items()})),
                lambda n: ort_ssim(e2e, {k: v[:n] for k, v in blocks.items()}, SIZE_HEAD),
                sorted({1, len(first)}),
            )
        )
    return cases


def _candidate_inputs(test: TestSet, spec: InputSpec, b: int) -> dict[str, np.ndarray]:
    """The candidate graph's parity feed: one real test logo's per-logo blocks ``[1, w]``,
    ``b`` raw parameter sets (its own labelled rows first, then Sobol points) and the
    per-candidate blocks looked up for them (:meth:`InputSpec.complete`)."""
    r0 = int(test.feature_rows[0])
    own = test.raw_params[test.feature_rows == r0]
    cand = np.concatenate([own, sobol_candidates(spec.ranges, max(1, b - len(own)))])[:b]
    return spec.complete({**test.logo_blocks(spec, np.array([r0])), "params": cand})


def _first(feed: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The first ``n`` candidates of a candidates feed (per-logo ``[1, w]`` blocks stay)."""
    return {k: v[:n] for k, v in feed.items()}
