"""What serving needs without torch: the export's file names and one ONNX Runtime session setup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXPORT_FORMAT = 1  # bump when the export directory's layout or metadata changes
FILES = {
    "state_dict": "quality_predictor.pth",
    "size_state_dict": "size_predictor.pth",  # the size head's model file, when it has one
    "torchscript_traced": "quality_mlp_traced.pt",
    "torchscript_scripted": "quality_mlp_scripted.pt",
    "onnx_mlp": "quality_mlp.onnx",
    "onnx_e2e": "quality_e2e.onnx",
    "onnx_candidates": "quality_candidates.onnx",
    "metadata": "metadata.json",
    "report": "export_report.json",
    "card": "MODEL_CARD.md",
    "suggestions": "suggest_validation.csv",
}
GRAPH_FILES = {"mlp": "onnx_mlp", "e2e": "onnx_e2e", "candidates": "onnx_candidates"}


def ort_session(path: str | Path, threads: int = 0) -> Any:
    """An ONNX Runtime CPU session with full graph optimization (``threads`` 0: all cores)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the export; rerun `dvc repro export`")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.log_severity_level = 3  # warnings about unused initializers are not ours to fix
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def providers() -> list[str]:
    """CUDA first where this onnxruntime build has it, else the CPU alone."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
