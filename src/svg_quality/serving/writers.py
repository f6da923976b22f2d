"""Write the exported formats: state dict, TorchScript (traced, scripted), ONNX graphs.

Every graph's input and output names, order and batch axes come from
:meth:`svg_quality.inputspec.InputSpec.graph_inputs`; the example tensors the exporter
traces with are built from those ports.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from svg_quality.inputspec import InputSpec
from svg_quality.io import atomic_path
from svg_quality.model import QualityMLP, save_model
from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS
from svg_quality.serving.graphs import MLPForExport, SizeOutput, candidate_scorer, end_to_end
from svg_quality.serving.runtime import FILES

FORMATS = ("state_dict", "torchscript", "onnx_mlp", "onnx_e2e", "onnx_candidates")


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    # torch >= 2.9 marks torch.jit as deprecated; TorchScript is still a format we ship
    # (C++ / mobile runtimes load it), so its deprecation notice is expected here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=Warning)
        yield


def write_state_dict(path: Path, mlp: QualityMLP, meta: Mapping[str, Any]) -> None:
    """The model-file format of ``models/model.pt`` (``{"state_dict", "meta"}``), so
    :func:`svg_quality.model.load_model` reads both."""
    save_model(path, mlp, meta)


def write_torchscript(
    path: Path, mlp: QualityMLP, example: torch.Tensor, how: str, size: SizeOutput | None = None
) -> None:
    module = MLPForExport(mlp, size).eval()
    with _quiet_jit(), torch.inference_mode(False), torch.no_grad():
        if how == "trace":
            ts = torch.jit.trace(module, example, check_trace=True)
        elif how == "script":
            ts = torch.jit.script(module)
        else:
            raise ValueError(f"TorchScript mode {how!r} is invalid; allowed: trace, script")
        with atomic_path(path) as tmp:
            ts.save(str(tmp))


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    with _quiet_jit():
        return torch.jit.load(str(path), map_location="cpu").eval()


def write_onnx(
    path: Path,
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    batch_inputs: Sequence[str],
    opset: int,
    metadata: Mapping[str, Any],
) -> None:
    """Export with the dynamo exporter: dynamic batch on ``batch_inputs``, weights embedded
    in the one file (no external-data sidecar), the metadata in ``metadata_props``,
    then ``onnx.checker``."""
    import onnx

    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    axes = [({0: batch} if n in batch_inputs else None) for n in input_names]
    params = list(inspect.signature(module.forward).parameters.values())
    if params and params[0].kind is inspect.Parameter.VAR_POSITIONAL:
        dynamic: Any = {params[0].name: tuple(axes)}  # forward(*inputs)
    else:
        dynamic = dict(zip(input_names, axes, strict=True))
    with warnings.catch_warnings():
        # The exporter notes that equal dynamic axes share one name; that is intended.
        warnings.filterwarnings("ignore", message=r".*axis name.*will not be used")
        program = torch.onnx.export(
            module.eval(),
            args,
            dynamo=True,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=dynamic,
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    program.model.metadata_props["svg_quality"] = json.dumps(metadata, sort_keys=True)
    program.model.producer_name = "svg-quality"
    with atomic_path(path) as tmp:
        program.save(str(tmp), external_data=False)
        onnx.checker.check_model(str(tmp), full_check=True)
    sidecars = [p.name for p in path.parent.iterdir() if p.suffix == ".data"]
    if sidecars:
        raise RuntimeError(f"ONNX export wrote external data {sidecars}; expected one file")


def example_inputs(spec: InputSpec, graph: str, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Tensors to trace ``graph`` with, one per ``spec.graph_inputs(graph)`` port: real rows
    for the MLP, VTracer's defaults for the parameters, zeros for the rest."""
    out = []
    for port in spec.graph_inputs(graph):
        if port.name == "features":
            out.append(torch.from_numpy(np.ascontiguousarray(rows[:4], dtype=np.float32)))
            continue
        n = 2 if port.batched else int(port.shape[0])
        if port.name == "params":
            row = [VTRACER_DEFAULTS[p] for p in PARAM_NAMES]
            out.append(torch.tensor([row] * n, dtype=torch.float32))
        else:
            out.append(torch.zeros(n, *port.shape[1:]))
    return tuple(out)


@dataclass(frozen=True)
class Written:
    paths: dict[str, Path]
    seconds: dict[str, float]


def write_formats(
    out_dir: Path,
    mlp: QualityMLP,
    backbone: nn.Module | None,
    spec: InputSpec,
    metadata: Mapping[str, Any],
    *,
    model_meta: Mapping[str, Any],
    opset: int,
    example_rows: np.ndarray,
    formats: Sequence[str] = FORMATS,
    size: SizeOutput | None = None,
    size_meta: Mapping[str, Any] | None = None,
) -> Written:
    """Write the requested formats into ``out_dir``; returns paths and export seconds.

    The state dict is a model file (:func:`svg_quality.model.save_model`): ``model_meta``
    (the training model file's meta) with the export ``metadata`` under ``"export"``.
    With a size head (``size``, and its model file's ``size_meta``), its model file is
    written beside it and every TorchScript and ONNX graph has its second output."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"formats {unknown} are unknown; allowed: {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    mlp = mlp.eval().cpu()
    paths, seconds = {}, {}

    def timed(name: str, fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        fn()
        seconds[name] = round(time.perf_counter() - t0, 3)
        paths[name] = out_dir / FILES[name]

    if "state_dict" in formats:
        meta = {**model_meta, "export": dict(metadata)}
        timed("state_dict", lambda: write_state_dict(out_dir / FILES["state_dict"], mlp, meta))
        if size is not None:
            smeta = {**dict(size_meta or {}), "export": dict(metadata)}
            path = out_dir / FILES["size_state_dict"]
            timed("size_state_dict", lambda: write_state_dict(path, size.trained(), smeta))
    if "torchscript" in formats:
        (x,) = example_inputs(spec, "mlp", example_rows)
        for name, how in (("torchscript_traced", "trace"), ("torchscript_scripted", "script")):
            timed(
                name, lambda n=name, h=how: write_torchscript(out_dir / FILES[n], mlp, x, h, size)
            )
    graphs = {
        "onnx_mlp": ("mlp", lambda: MLPForExport(mlp, size)),
        "onnx_e2e": ("e2e", lambda: end_to_end(backbone, mlp, spec, size)),
        "onnx_candidates": ("candidates", lambda: candidate_scorer(mlp, spec, size)),
    }
    for name, (graph, build) in graphs.items():
        if name not in formats:
            continue
        ports = spec.graph_inputs(graph)
        timed(
            name,
            lambda n=name, g=graph, b=build, p=ports: write_onnx(
                out_dir / FILES[n],
                b(),
                example_inputs(spec, g, example_rows),
                [q.name for q in p],
                spec.output_names(g),
                [q.name for q in p if q.batched],
                opset,
                metadata,
            ),
        )
    return Written(paths, seconds)
