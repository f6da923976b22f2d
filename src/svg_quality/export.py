"""Export the trained predictor to deployable formats, verify them, and time them.

    models/model.pt (QualityMLP + meta) + the featurize backbone (same weights, checked)
      -> quality_predictor.pth        state dict + metadata, torch.load(weights_only=True)
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

Every MLP format takes the rows the model was trained with (``model.inputs``, assembled
by :class:`svg_quality.model.InputSpec`); the end-to-end and candidates models take raw
parameters and raw logo statistics and normalize them inside the graph with the ranges
and train-split mean/std recorded in the metadata.
"""

from __future__ import annotations

import contextlib
import json
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from svg_quality.io import atomic_path
from svg_quality.model import InputSpec, QualityMLP, count_parameters
from svg_quality.paramspace import PARAM_NAMES, SPECS, VTRACER_DEFAULTS

EXPORT_FORMAT = 1  # bump when the export directory's layout or metadata changes
FILES = {
    "state_dict": "quality_predictor.pth",
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
MLP_TOLERANCE = 1e-5  # max |difference| allowed for formats of the MLP alone
E2E_TOLERANCE = 1e-4  # ResNet-50 in another runtime sums 25 M products in another order
GUARD_MARGIN = 0.01  # predicted SSIM gain over the defaults worth switching for (report only)


# --------------------------------------------------------------------------- export modules


class MLPForExport(nn.Module):
    """The MLP with the exported output shape: rows ``[B, in_dim]`` -> ssim ``[B, 1]``."""

    def __init__(self, mlp: QualityMLP) -> None:
        super().__init__()
        self.mlp = mlp

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features).unsqueeze(-1)  # [B] -> [B, 1]


class _Normalizer(nn.Module):
    """Raw parameters and statistics -> the model's normalized inputs, as graph constants."""

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        lo = [float(spec.ranges[n][0]) for n in PARAM_NAMES]
        hi = [float(spec.ranges[n][1]) for n in PARAM_NAMES]
        self.register_buffer("lo", torch.tensor(lo, dtype=torch.float32))
        self.register_buffer("span", torch.tensor(hi, dtype=torch.float32) - self.lo)
        k = len(spec.stat_names) if spec.uses_stats else 0
        mean = spec.stats_mean if spec.uses_stats else ()
        std = spec.stats_std if spec.uses_stats else ()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(k))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(k))

    def params(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.lo) / self.span  # [B, 8] -> [0, 1] over the training ranges

    def stats(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.mean) / self.std  # [B, k], standardized on the train split


class EndToEnd(nn.Module):
    """Image + raw parameters (+ raw statistics) -> (ssim ``[B, 1]``, image_features).

    Subclasses fix ``forward``'s signature to the model's inputs (torch.export needs one).
    """

    def __init__(self, backbone: nn.Module | None, mlp: QualityMLP, spec: InputSpec) -> None:
        super().__init__()
        if spec.uses_resnet and backbone is None:
            raise ValueError(f"inputs {spec.inputs!r} need the ResNet-50 backbone")
        self.backbone = backbone if spec.uses_resnet else None
        self.mlp = mlp
        self.norm = _Normalizer(spec)
        self.uses_resnet = spec.uses_resnet
        self.uses_stats = spec.uses_stats

    def compute(
        self, image: torch.Tensor | None, params: torch.Tensor, stats: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        parts, feats = [], None
        if self.backbone is not None and image is not None:
            feats = self.backbone(image)  # [B, 3, 224, 224] -> [B, 2048]
            parts.append(feats)
        if self.uses_stats and stats is not None:
            parts.append(self.norm.stats(stats))
        parts.append(self.norm.params(params))
        ssim = self.mlp(torch.cat(parts, dim=1)).unsqueeze(-1)  # [B, 1]
        return ssim, feats


class _E2EResnet(EndToEnd):
    def forward(self, image: torch.Tensor, params: torch.Tensor):
        return self.compute(image, params, None)


class _E2EResnetStats(EndToEnd):
    def forward(self, image: torch.Tensor, params: torch.Tensor, stats: torch.Tensor):
        return self.compute(image, params, stats)


class _E2EStats(EndToEnd):
    def forward(self, params: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return self.compute(None, params, stats)[0]


def end_to_end(backbone: nn.Module | None, mlp: QualityMLP, spec: InputSpec) -> EndToEnd:
    cls = {"resnet": _E2EResnet, "resnet+stats": _E2EResnetStats, "stats": _E2EStats}
    return _served(cls, spec)(backbone, mlp, spec).eval()


class CandidateScorer(nn.Module):
    """One logo's image part ``[1, ...]`` and ``N`` raw parameter sets -> ssim ``[N, 1]``.

    The first Linear's weight splits into the columns of the per-logo part and of the
    parameters; ``W x + b = W_img x_img + W_par x_par + b``, so the image half is
    computed once and broadcast over the candidates.
    """

    def __init__(self, mlp: QualityMLP, spec: InputSpec) -> None:
        super().__init__()
        layers = list(mlp.net)
        first = next(i for i, m in enumerate(layers) if isinstance(m, nn.Linear))
        linear: nn.Linear = layers[first]
        p0 = spec.layout()[-1]["start"]  # parameters are the last segment
        self.register_buffer("w_img", linear.weight[:, :p0].detach().clone())  # [h, S]
        self.register_buffer("w_par", linear.weight[:, p0:].detach().clone())  # [h, 8]
        self.register_buffer("bias", linear.bias.detach().clone())  # [h]
        self.rest = nn.Sequential(*layers[first + 1 :])
        self.norm = _Normalizer(spec)
        self.uses_resnet = spec.uses_resnet
        self.uses_stats = spec.uses_stats

    def compute(
        self, feats: torch.Tensor | None, params: torch.Tensor, stats: torch.Tensor | None
    ) -> torch.Tensor:
        parts = []
        if self.uses_resnet and feats is not None:
            parts.append(feats)
        if self.uses_stats and stats is not None:
            parts.append(self.norm.stats(stats))
        shared = torch.cat(parts, dim=1) @ self.w_img.T  # [1, h], once per logo
        h = self.norm.params(params) @ self.w_par.T + shared + self.bias  # [N, h]
        return self.rest(h).squeeze(-1).unsqueeze(-1)  # [N, 1]


class _ScoreResnet(CandidateScorer):
    def forward(self, image_features: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return self.compute(image_features, params, None)


class _ScoreResnetStats(CandidateScorer):
    def forward(
        self, image_features: torch.Tensor, params: torch.Tensor, stats: torch.Tensor
    ) -> torch.Tensor:
        return self.compute(image_features, params, stats)


class _ScoreStats(CandidateScorer):
    def forward(self, params: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return self.compute(None, params, stats)


def candidate_scorer(mlp: QualityMLP, spec: InputSpec) -> CandidateScorer:
    cls = {"resnet": _ScoreResnet, "resnet+stats": _ScoreResnetStats, "stats": _ScoreStats}
    return _served(cls, spec)(mlp, spec).eval()


def _served(classes: dict[str, Any], spec: InputSpec) -> Any:
    if spec.inputs not in classes:
        raise ValueError(
            f"model inputs {spec.inputs!r} cannot be exported yet (the graphs serve "
            f"{', '.join(classes)}); the vtracer and probe groups train and validate, "
            "their serving lands with issue 13; export a model with model.inputs=stats"
        )
    return classes[spec.inputs]


# --------------------------------------------------------------------------- signatures


def io_signature(spec: InputSpec, feature_dim: int, input_size: int) -> dict[str, Any]:
    """Names, shapes and meaning of every format's inputs and outputs (for the metadata)."""
    k = len(spec.stat_names) if spec.uses_stats else 0
    ssim = {
        "name": "ssim",
        "shape": ["batch", 1],
        "dtype": "float32",
        "description": "predicted SSIM in [0, 1]",
    }
    params = {
        "name": "params",
        "shape": ["batch", len(PARAM_NAMES)],
        "dtype": "float32",
        "description": f"raw VTracer parameters in the order {list(PARAM_NAMES)}",
    }
    stats = {
        "name": "stats",
        "shape": ["batch", k],
        "dtype": "float32",
        "description": "raw logo statistics (svg_quality.logostats.compute_stats) in the "
        "order input.stat_names; standardized inside the graph",
    }
    image = {
        "name": "image",
        "shape": ["batch", 3, input_size, input_size],
        "dtype": "float32",
        "description": "the logo letterboxed on white and ImageNet-normalized (see preprocessing)",
    }
    feats = {
        "name": "image_features",
        "shape": ["batch", feature_dim],
        "dtype": "float32",
        "description": "ResNet-50 pooled features of the image",
    }
    rows = {
        "name": "features",
        "shape": ["batch", spec.width],
        "dtype": "float32",
        "description": "model input rows laid out as input.layout: ResNet features, "
        "standardized statistics, min-max normalized parameters",
    }
    e2e_in = ([image] if spec.uses_resnet else []) + [params] + ([stats] if spec.uses_stats else [])
    e2e_out = [ssim] + ([feats] if spec.uses_resnet else [])
    one = {"shape": [1, feature_dim]}
    cand_in = (
        ([{**feats, **one}] if spec.uses_resnet else [])
        + [params]
        + ([{**stats, "shape": [1, k]}] if spec.uses_stats else [])
    )
    return {
        "mlp": {"inputs": [rows], "outputs": [ssim]},
        "e2e": {"inputs": e2e_in, "outputs": e2e_out},
        "candidates": {"inputs": cand_in, "outputs": [ssim]},
    }


# --------------------------------------------------------------------------- backbone


def rebuild_backbone(weights: Mapping[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The exact ResNet-50 trunk featurize used, from its recorded ``weights`` record
    (``data/features/meta.json``); fails when the rebuilt tensors' digest differs."""
    from svg_quality.backbone import load_backbone

    used = weights.get("used")
    if used == "random":
        model, info = load_backbone("random", seed=int(weights["seed"]))
    elif used == "imagenet":
        source = str(weights.get("source", ""))
        path = source[len("file:") :] if source.startswith("file:") else None
        model, info = load_backbone("imagenet", weights_path=path)
    else:
        raise ValueError(f"features meta: backbone weights {used!r} unknown; rerun featurize")
    if info.digest != weights.get("digest"):
        raise ValueError(
            f"the ResNet-50 weights rebuilt from {info.source} (digest {info.digest[:12]}) are not "
            f"the ones featurize used ({weights.get('source')}, digest "
            f"{str(weights.get('digest'))[:12]}); rerun `dvc repro featurize` on this machine"
        )
    return model.eval(), info.to_dict()


# --------------------------------------------------------------------------- metadata


def library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torchvision

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    with contextlib.suppress(ImportError):
        import onnxscript

        versions["onnxscript"] = onnxscript.__version__
    return versions


def build_metadata(
    mlp: QualityMLP,
    model_meta: Mapping[str, Any],
    spec: InputSpec,
    *,
    vtracer: Mapping[str, Any],
    image_size: int,
    opset: int,
    metrics: Mapping[str, Any],
    git_commit: str | None,
    source: Mapping[str, Any],
) -> dict[str, Any]:
    """Everything a consumer needs, without params.yaml or this repository's code."""
    features = dict(model_meta.get("features") or {})
    preprocessing = features.get("preprocessing")
    if spec.uses_resnet and not preprocessing:
        raise ValueError("the model's meta records no backbone preprocessing; retrain")
    linear = [m for m in mlp.net if isinstance(m, nn.Linear)]
    meta = {
        "format": "svg-quality-export",
        "format_version": EXPORT_FORMAT,
        "architecture": {
            "class": "svg_quality.model.QualityMLP",
            "model": dict(model_meta["model"]),
            "in_features": spec.width,
            "layers": [f"Linear({m.in_features}, {m.out_features})" for m in linear],
            "hidden_block": "Linear, BatchNorm1d, ReLU, Dropout",
            "output_activation": "Sigmoid",
            "n_parameters": count_parameters(mlp),
        },
        "input": spec.to_meta(),
        "param_names": list(PARAM_NAMES),
        "param_kinds": {n: SPECS[n].kind.__name__ for n in PARAM_NAMES},
        "param_ranges": {n: [float(v) for v in spec.ranges[n]] for n in PARAM_NAMES},
        "vtracer_defaults": dict(VTRACER_DEFAULTS),
        "vtracer": dict(vtracer),
        "output": {"name": "ssim", "range": [0.0, 1.0]},
        "logo": {
            "image_size": int(image_size),
            "normalization": "alpha composited on white, RGB, longest side image_size "
            "(Lanczos); svg_quality.images.normalize",
        },
        "backbone": {
            "name": features.get("backbone"),
            "feature_dim": features.get("feature_dim"),
            "input_size": features.get("input_size"),
            "weights": features.get("weights"),
            "used": spec.uses_resnet,
        },
        "preprocessing": preprocessing,
        "stats": {
            "names": list(spec.stat_names),
            "version": features.get("stats_version"),
            "function": "svg_quality.logostats.compute_stats",
            "used": spec.uses_stats,
        },
        "files": {k: v for k, v in FILES.items() if k not in ("report", "card", "suggestions")},
        "signatures": io_signature(
            spec,
            int(features.get("feature_dim") or spec.resnet_dim),
            int(features.get("input_size") or 224),
        ),
        "onnx_opset": opset,
        "metrics": dict(metrics),
        "libraries": library_versions(),
        "git_commit": git_commit,
        "source_model": dict(source),
        "training": {
            "best_epoch": model_meta.get("best_epoch"),
            "train": model_meta.get("train"),
            "data": model_meta.get("data"),
        },
    }
    # JSON round trip: plain types only, so torch.load(weights_only=True) accepts it.
    return json.loads(json.dumps(meta, default=str))


# --------------------------------------------------------------------------- writers


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    # torch >= 2.9 marks torch.jit as deprecated; TorchScript is still a format we ship
    # (C++ / mobile runtimes load it), so its deprecation notice is expected here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=Warning)
        yield


def write_state_dict(path: Path, mlp: QualityMLP, metadata: Mapping[str, Any]) -> None:
    state = {k: v.detach().cpu().clone() for k, v in mlp.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "metadata": dict(metadata)}, tmp)


def load_state_dict_file(path: str | Path) -> tuple[QualityMLP, dict[str, Any]]:
    """``quality_predictor.pth`` -> (MLP in eval mode, metadata); weights_only load."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or {"state_dict", "metadata"} - set(blob):
        raise ValueError(f"{path}: not an svg-quality export (needs state_dict and metadata)")
    meta = blob["metadata"]
    arch = meta["architecture"]["model"]
    mlp = QualityMLP(
        int(meta["architecture"]["in_features"]),
        tuple(arch["hidden"]),
        tuple(arch["dropout"]),
        float(arch["input_dropout"]),
    )
    mlp.load_state_dict(blob["state_dict"])
    return mlp.eval(), meta


def write_torchscript(path: Path, mlp: QualityMLP, example: torch.Tensor, how: str) -> None:
    module = MLPForExport(mlp).eval()
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
    dynamic = {n: ({0: batch} if n in batch_inputs else None) for n in input_names}
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


def ort_session(path: str | Path, threads: int = 0) -> Any:
    """An ONNX Runtime CPU session with full graph optimization (``threads`` 0: all cores)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.log_severity_level = 3  # warnings about unused initializers are not ours to fix
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


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
    opset: int,
    example_rows: np.ndarray,
    formats: Sequence[str] = (
        "state_dict",
        "torchscript",
        "onnx_mlp",
        "onnx_e2e",
        "onnx_candidates",
    ),
) -> Written:
    """Write the requested formats into ``out_dir``; returns paths and export seconds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mlp = mlp.eval().cpu()
    paths, seconds = {}, {}
    x = torch.from_numpy(np.ascontiguousarray(example_rows[:4], dtype=np.float32))  # [4, width]
    k = len(spec.stat_names) if spec.uses_stats else 0

    def timed(name: str, fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        fn()
        seconds[name] = round(time.perf_counter() - t0, 3)
        paths[name] = out_dir / FILES[name]

    if "state_dict" in formats:
        timed("state_dict", lambda: write_state_dict(out_dir / FILES["state_dict"], mlp, metadata))
    if "torchscript" in formats:
        for name, how in (("torchscript_traced", "trace"), ("torchscript_scripted", "script")):
            timed(name, lambda n=name, h=how: write_torchscript(out_dir / FILES[n], mlp, x, h))
    if "onnx_mlp" in formats:
        timed(
            "onnx_mlp",
            lambda: write_onnx(
                out_dir / FILES["onnx_mlp"],
                MLPForExport(mlp),
                (x,),
                ["features"],
                ["ssim"],
                ["features"],
                opset,
                metadata,
            ),
        )
    params = torch.tensor([[VTRACER_DEFAULTS[n] for n in PARAM_NAMES]] * 2, dtype=torch.float32)
    stats = torch.zeros(2, k)
    if "onnx_e2e" in formats:
        e2e = end_to_end(backbone, mlp, spec)
        image = torch.zeros(2, 3, 224, 224)
        names = (["image"] if spec.uses_resnet else []) + ["params"] + (["stats"] if k else [])
        args = tuple({"image": image, "params": params, "stats": stats}[n] for n in names)
        outs = ["ssim"] + (["image_features"] if spec.uses_resnet else [])
        timed(
            "onnx_e2e",
            lambda: write_onnx(
                out_dir / FILES["onnx_e2e"],
                e2e,
                args,
                names,
                outs,
                names,
                opset,
                metadata,
            ),
        )
    if "onnx_candidates" in formats:
        scorer = candidate_scorer(mlp, spec)
        feats = torch.zeros(1, spec.resnet_dim)
        names = (["image_features"] if spec.uses_resnet else []) + ["params"]
        names += ["stats"] if k else []
        values = {"image_features": feats, "params": params, "stats": stats[:1]}
        timed(
            "onnx_candidates",
            lambda: write_onnx(
                out_dir / FILES["onnx_candidates"],
                scorer,
                tuple(values[n] for n in names),
                names,
                ["ssim"],
                ["params"],
                opset,
                metadata,
            ),
        )
    return Written(paths, seconds)


# --------------------------------------------------------------------------- parity


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"outputs differ in shape: {a.shape} vs {b.shape}")
    return float(np.abs(a - b).max()) if a.size else 0.0


def torch_rows_fn(module: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """numpy rows -> numpy ``[B]`` through a torch module (eager or TorchScript)."""

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).reshape(-1).numpy()

    return run


def ort_fn(session: Any, names: Sequence[str]) -> Callable[..., np.ndarray]:
    """numpy inputs (in ``names`` order) -> the first output ``[B]`` of an ORT session."""

    def run(*arrays: np.ndarray) -> np.ndarray:
        return session.run(["ssim"], dict(zip(names, arrays, strict=True)))[0].reshape(-1)

    return run


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


# --------------------------------------------------------------------------- latency


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


def file_sizes(paths: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
    return {
        k: {"file": p.name, "bytes": p.stat().st_size, "mb": round(p.stat().st_size / 2**20, 2)}
        for k, p in paths.items()
    }


def check_parity(cases: Sequence[ParityCase]) -> None:
    """Raise naming every format whose outputs differ from PyTorch beyond its tolerance."""
    bad = [c for c in cases if not c.passed]
    if bad:
        detail = "; ".join(
            f"{c.name} ({c.runtime}): {c.max_abs_diff:.2e} > {c.tolerance:.0e}" for c in bad
        )
        raise RuntimeError(f"exported formats disagree with the PyTorch model: {detail}")


# --------------------------------------------------------------------------- the export run


@dataclass(frozen=True)
class TestSet:
    """Real rows to verify on: model rows, their raw parts, and the logos they come from."""

    split: str
    x: np.ndarray  # [n, width] model rows
    y: np.ndarray  # [n] labelled SSIM
    raw_params: np.ndarray  # [n, 8]
    feature_rows: np.ndarray  # [n] rows of features.npy / stats.npy
    image_ids: np.ndarray  # [n]
    logo_types: np.ndarray  # [n]
    features: np.ndarray  # features.npy
    stats: np.ndarray  # stats.npy


def load_test_set(data: Any, spec: InputSpec) -> TestSet:
    """The test split's ok rows (val, then train, when a tiny dataset has no test rows)."""
    from svg_quality.dataset import build_arrays

    for split in ("test", "val", "train"):
        mask = data.mask(split)
        if mask.any():
            break
    else:
        raise ValueError("the labels have no ok rows in any split; nothing to verify on")
    rows = data.rows.loc[mask]
    arrays = build_arrays(data, spec, mask)
    return TestSet(
        split=split,
        x=arrays.x,
        y=arrays.y,
        raw_params=rows[list(PARAM_NAMES)].to_numpy(dtype=np.float32),
        feature_rows=rows["feature_row"].to_numpy(),
        image_ids=arrays.image_id,
        logo_types=arrays.logo_type,
        features=data.features,
        stats=data.stats,
    )


def _tile(x: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:n])


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
    from svg_quality.predictor import sobol_candidates

    mlp = mlp.eval()
    x = np.ascontiguousarray(test.x)
    b = min(parity_batch, len(x))
    ref = torch_rows_fn(MLPForExport(mlp))
    cases = []
    reloaded, _ = load_state_dict_file(out_dir / FILES["state_dict"])
    mlp_formats = {
        ("state_dict", "torch"): torch_rows_fn(MLPForExport(reloaded)),
        ("torchscript_traced", "torchscript"): torch_rows_fn(
            load_torchscript(out_dir / FILES["torchscript_traced"])
        ),
        ("torchscript_scripted", "torchscript"): torch_rows_fn(
            load_torchscript(out_dir / FILES["torchscript_scripted"])
        ),
        ("onnx_mlp", "onnxruntime"): ort_fn(ort_session(out_dir / FILES["onnx_mlp"]), ["features"]),
    }
    for (name, runtime), fn in mlp_formats.items():
        cases.append(
            compare(
                name, runtime, MLP_TOLERANCE, lambda n: ref(x[:n]), lambda n, f=fn: f(x[:n]), (1, b)
            )
        )

    # Candidates model: one real test logo, its own rows first, then Sobol parameter sets.
    r0 = int(test.feature_rows[0])
    own = test.raw_params[test.feature_rows == r0]
    cand = np.concatenate([own, sobol_candidates(spec.ranges, max(1, b - len(own)))])[:b]
    feats = test.features[r0 : r0 + 1] if spec.uses_resnet else None
    stats = test.stats[r0 : r0 + 1] if spec.uses_stats else None

    def cand_ref(n: int) -> np.ndarray:
        rows = spec.assemble(
            None if feats is None else np.repeat(feats, n, 0),
            None if stats is None else np.repeat(stats, n, 0),
            cand[:n],
        )
        return ref(rows)

    session = ort_session(out_dir / FILES["onnx_candidates"])
    names = [i.name for i in session.get_inputs()]
    feed = {"image_features": feats, "stats": stats}
    cand_ort = ort_fn(session, names)
    cases.append(
        compare(
            "onnx_candidates",
            "onnxruntime",
            MLP_TOLERANCE,
            cand_ref,
            lambda n: cand_ort(*[cand[:n] if k == "params" else feed[k] for k in names]),
            (1, b),
        )
    )

    checks: dict[str, Any] = {"parity_rows": len(x), "parity_split": test.split}
    e2e_path = out_dir / FILES["onnx_e2e"]
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
    from PIL import Image

    from svg_quality.images import load_rgb
    from svg_quality.preprocess import backbone_input

    # First label row of each of the first e2e_batch test logos.
    _, first = np.unique(test.feature_rows, return_index=True)
    first = np.sort(first)[:e2e_batch]
    params = test.raw_params[first]
    stats = test.stats[test.feature_rows[first]] if spec.uses_stats else None
    checks: dict[str, Any] = {"e2e_logos": len(first)}
    images = None
    if spec.uses_resnet:
        from svg_quality.backbone import preprocess

        rgbs = [load_rgb(logos_dir / f"{test.image_ids[i]}.png") for i in first]
        images = torch.stack([preprocess(Image.fromarray(r)) for r in rgbs])  # [E, 3, 224, 224]
        numpy_images = np.stack([backbone_input(r, preprocessing or {}) for r in rgbs])
        checks["preprocess_numpy_vs_torch_max_abs"] = max_abs(numpy_images, images.numpy())
        with torch.inference_mode():
            feats = backbone.eval()(images).numpy()  # [E, 2048]
        stored = test.features[test.feature_rows[first]]
        # How close fp32 features on this machine are to featurize's (same weights, but
        # featurize may run under bf16 autocast on a GPU or a bf16 CPU): informative, not
        # a gate; the prediction difference it makes is what a served model adds.
        checks["features_vs_featurize_max_abs"] = max_abs(feats, stored)
        checks["features_vs_featurize_max_rel"] = max_abs(feats, stored) / max(
            float(np.abs(stored).max()), 1e-12
        )
        with torch.inference_mode():
            a, b = (
                mlp(torch.from_numpy(spec.assemble(f, stats, params))).numpy()
                for f in (feats, stored)
            )
        checks["prediction_fp32_vs_featurize_features_max_abs"] = max_abs(a, b)

    def two_step(n: int) -> np.ndarray:
        rows = spec.assemble(
            feats[:n] if images is not None else None,
            None if stats is None else stats[:n],
            params[:n],
        )
        with torch.inference_mode():
            return mlp(torch.from_numpy(rows)).numpy()

    session = ort_session(path)
    names = [i.name for i in session.get_inputs()]
    run = ort_fn(session, names)
    values = {"image": None if images is None else images.numpy(), "params": params, "stats": stats}
    case = compare(
        "onnx_e2e",
        "onnxruntime",
        E2E_TOLERANCE,
        two_step,
        lambda n: run(*[values[k][:n] for k in names]),
        sorted({1, len(first)}),
    )
    return case, checks


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
    from svg_quality.predictor import sobol_candidates

    out: dict[str, Any] = {"mlp": {}, "candidates": {}, "e2e": {}}
    rows = {n: _tile(test.x, n) for n in (1, 256)}
    # ONNX Runtime first: torch's OpenMP workers spin for a while after each call and
    # would steal its cores.
    fns = {
        "onnxruntime": ort_fn(ort_session(out_dir / FILES["onnx_mlp"]), ["features"]),
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
    r0 = int(test.feature_rows[0])
    raw = sobol_candidates(spec.ranges, candidates)
    feats = torch.from_numpy(test.features[r0 : r0 + 1].copy()) if spec.uses_resnet else None
    stats = torch.from_numpy(test.stats[r0 : r0 + 1].copy()) if spec.uses_stats else None
    scorer = candidate_scorer(mlp, spec)
    targs = tuple(a for a in (feats, torch.from_numpy(raw), stats) if a is not None)

    def torch_scorer() -> Any:
        with torch.inference_mode():
            return scorer(*targs)

    session = ort_session(out_dir / FILES["onnx_candidates"])
    feed = {
        "image_features": None if feats is None else feats.numpy(),
        "params": raw,
        "stats": None if stats is None else stats.numpy(),
    }
    feed = {i.name: feed[i.name] for i in session.get_inputs()}
    n_rep = max(5, repeats // 10)
    key = str(len(raw))
    out["candidates"]["onnxruntime"] = {key: latency(lambda: session.run(["ssim"], feed), n_rep)}
    out["candidates"]["torch_eager"] = {key: latency(torch_scorer, n_rep)}

    e2e_path = out_dir / FILES["onnx_e2e"]
    if e2e_path.is_file():
        module = end_to_end(backbone, mlp, spec)
        session = ort_session(e2e_path)
        names = [i.name for i in session.get_inputs()]
        for n in sorted({1, e2e_batch}):
            vals = {
                "image": np.zeros((n, 3, 224, 224), np.float32),
                "params": _tile(test.raw_params, n),
                "stats": _tile(test.stats[test.feature_rows], n),
            }
            targs_e = tuple(torch.from_numpy(vals[k]) for k in names)
            # Batch 1 runs first and warms both runtimes up for the larger batch.
            reps, warm = (e2e_repeats, 1) if n == 1 else (max(1, e2e_repeats // 3), 0)

            def torch_e2e(a: tuple = targs_e) -> Any:
                with torch.inference_mode():
                    return module(*a)

            feed_e = {k: vals[k] for k in names}
            out["e2e"].setdefault("onnxruntime", {})[str(n)] = latency(
                lambda f=feed_e: session.run(["ssim"], f), reps, warm
            )
            out["e2e"].setdefault("torch_eager", {})[str(n)] = latency(torch_e2e, reps, warm)
    out["threads"] = {"torch": torch.get_num_threads()}
    return out


def validate_suggestions(
    predictor: Any,
    logos: Sequence[tuple[str, str, Path]],
    vtracer_cfg: Any,
    *,
    candidates: int,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Actual SSIM (real VTracer conversions) of the top suggestion vs VTracer's defaults,
    for each ``(image_id, logo_type, path)``."""
    from tqdm import tqdm

    from svg_quality.images import load_rgb
    from svg_quality.ssim import SSIMReference
    from svg_quality.vectorize import ConversionFailed, RenderFailed, score

    rows = []
    for image_id, logo_type, path in tqdm(logos, desc="suggest", unit="logo", disable=not progress):
        rgb = load_rgb(path)
        png = Path(path).read_bytes()
        res = predictor.suggest(path, top_k=1, candidates=candidates)
        best = res.top[0]
        row: dict[str, Any] = {
            "image_id": image_id,
            "logo_type": logo_type,
            "predicted_default": res.default.ssim,
            "predicted_best": best.ssim,
            "best_is_default": best.is_default,
            "score_ms": res.score_ms,
            **{f"best_{k}": v for k, v in best.params.items()},
        }
        ref = SSIMReference(rgb)
        try:
            d = score(rgb, res.default.params, vtracer_cfg, png_bytes=png, reference=ref)
            s = (
                d
                if best.is_default
                else score(rgb, best.params, vtracer_cfg, png_bytes=png, reference=ref)
            )
        except (ConversionFailed, RenderFailed) as exc:
            row.update(status="failed", error=str(exc))
            rows.append(row)
            continue
        row.update(
            status="ok",
            error="",
            actual_default=d.ssim,
            actual_best=s.ssim,
            uplift=s.ssim - d.ssim,
            svg_bytes_default=d.svg_bytes,
            svg_bytes_best=s.svg_bytes,
        )
        rows.append(row)
    ok = [r for r in rows if r["status"] == "ok"]
    up = np.array([r["uplift"] for r in ok])
    summary: dict[str, Any] = {
        "logos": len(rows),
        "failed": len(rows) - len(ok),
        "candidates": candidates + 1,
    }
    if ok:
        summary.update(
            mean_ssim_default=float(np.mean([r["actual_default"] for r in ok])),
            mean_ssim_suggested=float(np.mean([r["actual_best"] for r in ok])),
            mean_uplift=float(up.mean()),
            median_uplift=float(np.median(up)),
            share_improved=float((up > 0).mean()),
            share_worse=float((up < 0).mean()),
            share_default_kept=float(np.mean([r["best_is_default"] for r in ok])),
            # Switching only when the model predicts a clear gain (>= GUARD_MARGIN) keeps
            # VTracer's defaults where the predicted differences are within the model's error.
            guard_margin=GUARD_MARGIN,
            guarded_mean_uplift=float(
                np.mean(
                    [
                        r["uplift"]
                        if r["predicted_best"] - r["predicted_default"] >= GUARD_MARGIN
                        else 0.0
                        for r in ok
                    ]
                )
            ),
            guarded_share_switched=float(
                np.mean([r["predicted_best"] - r["predicted_default"] >= GUARD_MARGIN for r in ok])
            ),
            mean_predicted_uplift=float(
                np.mean([r["predicted_best"] - r["predicted_default"] for r in ok])
            ),
            mean_svg_bytes_default=float(np.mean([r["svg_bytes_default"] for r in ok])),
            mean_svg_bytes_suggested=float(np.mean([r["svg_bytes_best"] for r in ok])),
            score_ms_p50=float(np.median([r["score_ms"] for r in ok])),
            by_type={
                t: {
                    "logos": int(sum(r["logo_type"] == t for r in ok)),
                    "mean_uplift": float(np.mean([r["uplift"] for r in ok if r["logo_type"] == t])),
                    "share_improved": float(
                        np.mean([r["uplift"] > 0 for r in ok if r["logo_type"] == t])
                    ),
                }
                for t in sorted({r["logo_type"] for r in ok})
            },
        )
    return summary, rows


def write_model_card(path: Path, metadata: Mapping[str, Any], report: Mapping[str, Any]) -> None:
    """A human summary of the export: what the model is, how to feed it, how it checked out."""
    arch, inp, bb = metadata["architecture"], metadata["input"], metadata["backbone"]
    weights = bb.get("weights") or {}
    lines = [
        "# svg-quality predictor: model card",
        "",
        "Predicts the SSIM between a raster logo and VTracer's vectorization of it (rendered",
        "with resvg, compared on luma) for a set of the 8 VTracer parameters, so a converter",
        "can pick parameters without the convert-render-compare loop.",
        "",
        "## Model",
        "",
        f"- Inputs: `{inp['inputs']}`, {inp['width']} columns: "
        + ", ".join(f"{s['name']} [{s['start']}:{s['start'] + s['width']}]" for s in inp["layout"]),
        f"- MLP: {' -> '.join(arch['layers'])}; hidden blocks {arch['hidden_block']}; "
        f"{arch['output_activation']} output; {arch['n_parameters']:,} parameters",
        f"- Backbone: {bb.get('name')} (weights `{weights.get('used')}`, source "
        f"`{weights.get('source')}`, digest `{str(weights.get('digest'))[:16]}`)"
        if bb.get("used")
        else "- Backbone: not used (statistics-only model)",
        f"- Logo normalization: longest side {metadata['logo']['image_size']} px on white; "
        f"backbone preprocessing: {json.dumps(metadata.get('preprocessing'))}",
        "- Parameter ranges (inputs are min-max normalized by these; values outside are "
        "refused): " + ", ".join(f"{k} {v}" for k, v in metadata["param_ranges"].items()),
        f"- Git commit: `{metadata.get('git_commit')}`",
        "",
    ]
    if bb.get("used") and weights.get("used") == "random":
        lines += [
            "> **Warning:** the backbone has RANDOM weights (ImageNet weights were not",
            "> available when featurize ran); predictions are far weaker than with",
            "> ImageNet features.",
            "",
        ]
    tm = metadata.get("metrics", {}).get("test", {})
    if tm:
        lines += [
            f"## Accuracy ({report['checks']['parity_split']} split, {tm.get('n')} rows)",
            "",
            "| rmse | mae | pearson |",
            "|---|---|---|",
            f"| {tm['rmse']:.4f} | {tm['mae']:.4f} | {tm['pearson']:.3f} |",
            "",
        ]
    lines += [
        "## Formats",
        "",
        "| format | file | MB | max abs diff vs PyTorch | tolerance |",
        "|---|---|---|---|---|",
    ]
    parity = report["parity"]
    for name, size in report["files"].items():
        p = parity.get(name)
        diff = f"{p['max_abs_diff']:.2e}" if p else "-"
        tol = f"{p['tolerance']:.0e}" if p else "-"
        lines.append(f"| {name} | `{size['file']}` | {size['mb']} | {diff} | {tol} |")
    lines += [
        "",
        "## Latency (CPU, ms, p50 / p95)",
        "",
        "| model | runtime | batch | p50 | p95 |",
        "|---|---|---|---|---|",
    ]
    for model, by_runtime in report["latency"].items():
        if model == "threads":
            continue
        for runtime, by_batch in by_runtime.items():
            for batch, t in by_batch.items():
                lines.append(
                    f"| {model} | {runtime} | {batch} | {t['p50_ms']:.3f} | {t['p95_ms']:.3f} |"
                )
    sv = report.get("suggest_validation") or {}
    if sv.get("mean_uplift") is not None:
        lines += [
            "",
            "## Suggestion check (real VTracer conversions)",
            "",
            f"Over {sv['logos']} {report['checks']['parity_split']} logos, the top of "
            f"{sv['candidates']} candidates vs VTracer's defaults: mean SSIM "
            f"{sv['mean_ssim_suggested']:.4f} vs {sv['mean_ssim_default']:.4f} (uplift "
            f"{sv['mean_uplift']:+.4f}, median {sv['median_uplift']:+.4f}); improved "
            f"{sv['share_improved']:.0%}, worse {sv['share_worse']:.0%} of logos; mean SVG "
            f"{sv['mean_svg_bytes_suggested']:.0f} vs {sv['mean_svg_bytes_default']:.0f} bytes.",
            "",
            f"Switching from the defaults only when the predicted gain is at least "
            f"{sv['guard_margin']}: uplift {sv['guarded_mean_uplift']:+.4f}, switching on "
            f"{sv['guarded_share_switched']:.0%} of logos.",
        ]
    ch = report["checks"]
    if "features_vs_featurize_max_rel" in ch:
        lines += [
            "",
            "## Serving vs training features",
            "",
            f"Torch-free preprocessing equals backbone's to {ch['preprocess_numpy_vs_torch_max_abs']:.1e}. "
            f"fp32 ResNet-50 features differ from featurize's stored ones by at most "
            f"{ch['features_vs_featurize_max_rel']:.2%} of their range (featurize may use bf16), "
            f"which moves predictions by at most {ch['prediction_fp32_vs_featurize_features_max_abs']:.4f}.",
        ]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from svg_quality.predictor import Predictor",
        'p = Predictor.load("models/export")            # ONNX Runtime, no torch needed',
        'p.predict("logo.png", {"filter_speckle": 8})  # predicted SSIM',
        'p.suggest("logo.png", top_k=5).top           # best parameter sets',
        "```",
        "",
        "ONNX Runtime alone: feed `quality_e2e.onnx` the preprocessed image, the raw",
        "parameters (and raw statistics), as `metadata.json` -> `signatures` describes.",
        "",
        "## Limits",
        "",
        "- Trained on the logos of this pipeline's data; other kinds of images are out of",
        "  distribution. Parameters outside the training ranges are refused.",
        "- SSIM on luma ignores hue errors and SVG size; check the suggestion with",
        "  `svg-quality suggest --verify`.",
    ]
    from svg_quality.io import write_text

    write_text(path, "\n".join(lines) + "\n")


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
) -> dict[str, Any]:
    """Write, verify and time every format into ``out_dir`` (swapped in atomically);
    returns the report (also written as export_report.json)."""
    import csv
    import io

    import pandas as pd

    from svg_quality.dataset import load_labeled
    from svg_quality.io import atomic_dir, file_digest, write_json, write_text
    from svg_quality.metrics import regression_metrics
    from svg_quality.model import load_model
    from svg_quality.predictor import Predictor

    start = clock = time.perf_counter()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = round(now - clock, 2)
        clock = now

    mlp, model_meta = load_model(model_path)
    spec = InputSpec.from_meta(model_meta["input"])
    data = load_labeled(labels, features_dir, logos_csv)
    feat_meta = model_meta.get("features") or {}
    if feat_meta.get("fingerprint") not in (None, data.feature_meta.get("fingerprint")):
        raise ValueError(
            f"{model_path} was trained on other features than {features_dir} holds "
            f"(fingerprint {feat_meta.get('fingerprint')} vs "
            f"{data.feature_meta.get('fingerprint')}); run `dvc repro train`"
        )
    backbone = None
    if spec.uses_resnet:
        backbone, _ = rebuild_backbone(feat_meta.get("weights") or {})
    test = load_test_set(data, spec)
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
    )

    phase("load")
    with atomic_dir(out_dir) as tmp:
        written = write_formats(
            tmp, mlp, backbone, spec, metadata, opset=cfg.opset, example_rows=test.x
        )
        write_json(tmp / FILES["metadata"], metadata)
        phase("write_formats")
        cases, checks = verify_formats(
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
        check_parity(cases)
        phase("parity")
        lat = measure_latencies(
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
        phase("latency")
        logos_df = pd.read_csv(logos_csv, dtype={"image_id": str})
        chosen = logos_df[logos_df["split"] == test.split]
        if cfg.suggest_logos:
            chosen = chosen.head(cfg.suggest_logos)
        logos = [
            (r.image_id, r.logo_type, logos_dir / f"{r.image_id}.png") for r in chosen.itertuples()
        ]
        predictor = Predictor.load(tmp, runtime="onnx")
        summary, rows = validate_suggestions(
            predictor, logos, vtracer_cfg, candidates=cfg.suggest_candidates, progress=progress
        )
        phase("suggest_validation")
        phases["total"] = round(time.perf_counter() - start, 2)
        if rows:
            buf = io.StringIO()
            fields = list(dict.fromkeys(k for r in rows for k in r))
            w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
            write_text(tmp / FILES["suggestions"], buf.getvalue())
        report = {
            "files": file_sizes({k: p for k, p in written.paths.items()}),
            "export_seconds": written.seconds,
            "phase_seconds": phases,
            "parity": {c.name: c.to_dict() for c in cases},
            "checks": checks,
            "latency": lat,
            "suggest_validation": summary,
            "metrics": metrics,
            "targets": {
                "onnx_mlp_batch1_p50_ms": 0.1,
                "suggest_score_ms": 150.0,
            },
        }
        write_json(tmp / FILES["report"], report)
        write_model_card(tmp / FILES["card"], metadata, report)
    return report


def flat_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The report's numbers as flat MLflow keys (``parity/onnx_e2e/max_abs_diff`` ...)."""
    out: dict[str, float] = {}
    for name, p in report["parity"].items():
        out[f"parity/{name}/max_abs_diff"] = p["max_abs_diff"]
    for name, s in report["files"].items():
        out[f"size_mb/{name}"] = s["mb"]
    for model, by_runtime in report["latency"].items():
        if model == "threads":
            continue
        for runtime, by_batch in by_runtime.items():
            for batch, t in by_batch.items():
                out[f"latency/{model}/{runtime}/b{batch}/p50_ms"] = t["p50_ms"]
                out[f"latency/{model}/{runtime}/b{batch}/p95_ms"] = t["p95_ms"]
    for k, v in (report.get("suggest_validation") or {}).items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[f"suggest/{k}"] = float(v)
    for k, v in report["checks"].items():
        if isinstance(v, float):
            out[f"check/{k}"] = v
    return out


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
        onnx_execution_providers=_providers(),
        metadata={"svg_quality_input_layout": meta["input"]["layout"]},
    )


def _providers() -> list[str]:
    """CUDA first where this onnxruntime build has it, else the CPU alone."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
