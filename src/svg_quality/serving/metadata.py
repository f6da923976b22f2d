"""``metadata.json``: everything a consumer needs, without params.yaml or this code.

Written by the export (:func:`build_metadata`, then the self-test record and the SHA-256
of every file); read by the predictor, which trusts nothing in it it has not checked
(:func:`check_metadata`, as strict as params.yaml) and runs each graph on a fixed input
before serving it (:func:`self_test_inputs`: the outputs must match the record). Torch-free
except :func:`build_metadata` and :func:`library_versions`, which the export alone calls.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from svg_quality.config import shown
from svg_quality.inputgroups import describe_resnet
from svg_quality.inputspec import InputSpec
from svg_quality.paramspace import PARAM_NAMES, SPECS, VTRACER_DEFAULTS
from svg_quality.serving.runtime import EXPORT_FORMAT, FILES, GRAPH_FILES

if TYPE_CHECKING:
    from svg_quality.model import QualityMLP

# The graphs the predictor serves, each run once on a fixed input when it is opened.
SERVED_GRAPHS = ("e2e", "candidates")
SELF_TEST_ATOL = 1e-3  # ONNX Runtime vs itself across machines: ~1e-6; a wrong model: ~0.1+
SELF_TEST_BATCH = 4  # rows of the fixed input (1 for a graph that takes the image)
# VTracer's settings a model was trained with (what params.yaml's vtracer section allows)
VTRACER_CHOICES = {
    "colormode": ("color", "binary"),
    "hierarchical": ("stacked", "cutout"),
    "mode": ("spline", "polygon", "none"),
}
_SHA256 = re.compile(r"[0-9a-f]{64}")


def library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch
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
    size_head: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a consumer needs, without params.yaml or this repository's code."""
    from torch import nn

    from svg_quality.model import count_parameters, plain_mlp

    features = dict(model_meta.get("features") or {})
    preprocessing = features.get("preprocessing")
    if spec.uses_resnet and not preprocessing:
        raise ValueError("the model's meta records no backbone preprocessing; retrain")
    from svg_quality.dataset import weights_used  # lazy: torch and pandas

    linear = [m for m in plain_mlp(mlp).net if isinstance(m, nn.Linear)]  # the graphs' layers
    cfg = model_meta["model"]
    resnet_block = describe_resnet(
        cfg.get("requested_inputs", cfg["inputs"]),
        spec.inputs,
        weights_used(features),
        int(cfg.get("resnet_pca", 0)),
        float(cfg.get("resnet_dropout", 0.0)),
    )
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
            "n_parameters": count_parameters(plain_mlp(mlp)),  # the graphs'
            "trained_parameters": count_parameters(mlp),  # fewer with model.resnet_pca
            "resnet_block": resnet_block,
            "embedding": describe_embedding(cfg),
            "members": describe_members(cfg),
        },
        "input": spec.to_meta(),
        "param_names": list(PARAM_NAMES),
        "param_kinds": {n: SPECS[n].kind.__name__ for n in PARAM_NAMES},
        "param_ranges": {n: [float(v) for v in spec.ranges[n]] for n in PARAM_NAMES},
        "vtracer_defaults": dict(VTRACER_DEFAULTS),
        "vtracer": dict(vtracer),
        "output": {"name": "ssim", "range": [0.0, 1.0]},
        "outputs": list(spec.heads),
        "size_head": dict(size_head) if size_head is not None else None,
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
        "files": {
            k: v
            for k, v in FILES.items()
            if k not in ("report", "card", "suggestions")
            and (k != "size_state_dict" or size_head is not None)
        },
        "signatures": spec.signatures(features.get("feature_dim"), features.get("input_size")),
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


def describe_members(cfg: Mapping[str, Any]) -> str:
    """One line on ``model.members``, for the model card."""
    k = int(cfg.get("members", 1))
    if k == 1:
        return "one MLP"
    return (
        f"{k} independent members side by side (hidden {[h // k for h in cfg['hidden']]} and "
        "an embedding each, trained on their own losses), predicting the sigmoid of their mean "
        "logit; the graphs hold them as one MLP with block-diagonal weights"
    )


def describe_embedding(cfg: Mapping[str, Any]) -> str:
    """One line on the model's input embedding (``model.embedding``), for the model card."""
    if cfg.get("embedding", "none") != "periodic":
        return "none (the columns feed the first Linear as they are)"
    return (
        f"periodic: each non-ResNet column -> {cfg['embedding_dim']} values from "
        f"{cfg['embedding_frequencies']} trained frequencies (init sigma "
        f"{cfg['embedding_sigma']}), ReLU(W [sin, cos] + b), in every graph"
    )


# --------------------------------------------------------------------------- checks at load


def _shown(value: Any) -> str:
    return shown(value)


def check_metadata(meta: Mapping[str, Any]) -> None:
    """Validate a loaded metadata.json as strictly as params.yaml: format version, file
    names (plain names inside the export folder) each with a SHA-256, parameter ranges
    inside what VTracer accepts and equal to the model's own, logo size, VTracer settings
    and the served graphs' signatures. Raises ValueError naming the key, the value (cut
    short) and what is allowed; the caller names the file and the way back."""
    version = meta.get("format_version")
    if version != EXPORT_FORMAT:
        raise ValueError(
            f"format_version = {_shown(version)} is not this code's {EXPORT_FORMAT}; use the "
            "svg-quality version that exported it"
        )
    _check_files(meta)
    _check_ranges(meta)
    _check_logo(meta.get("logo"))
    _check_vtracer(meta.get("vtracer"))
    _check_signatures(meta)
    _check_self_test_record(meta)


def plain_name(name: Any) -> bool:
    """A file name that can only mean a file directly inside the export folder."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(c in name for c in "/\\\0")
        and not re.match(r"[A-Za-z]:", name)  # a Windows drive
    )


def _check_files(meta: Mapping[str, Any]) -> None:
    files, digests = meta.get("files"), meta.get("sha256")
    if not isinstance(files, Mapping):
        raise ValueError(f"files = {_shown(files)} is invalid; allowed: a mapping of file names")
    unknown = sorted(str(k) for k in set(files) - set(FILES))
    if unknown:
        raise ValueError(f"files.{_shown(unknown[0])} is unknown; known: {', '.join(FILES)}")
    missing = [k for k in (GRAPH_FILES["candidates"], "state_dict", "metadata") if k not in files]
    if missing:
        raise ValueError(f"files.{missing[0]} is missing (the predictor loads it)")
    if not isinstance(digests, Mapping):
        raise ValueError("records no SHA-256 for any file (no sha256), so none can be checked")
    for key, name in files.items():
        if not plain_name(name):
            raise ValueError(
                f"files.{key} = {_shown(name)} is invalid; allowed: a plain file name inside "
                "the export folder (no folder, '..' or absolute path)"
            )
        if name == FILES["metadata"]:
            continue
        digest = digests.get(name)
        if not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
            raise ValueError(
                f"sha256 records no SHA-256 for {_shown(name)} (files.{key}), so it cannot be "
                "checked"
            )


def _check_ranges(meta: Mapping[str, Any]) -> None:
    ranges = meta.get("param_ranges")
    model = (meta.get("input") or {}).get("ranges")
    if not isinstance(ranges, Mapping) or sorted(ranges) != sorted(PARAM_NAMES):
        raise ValueError(
            f"param_ranges = {_shown(ranges)} is invalid; allowed: [low, high] for each of "
            f"{', '.join(PARAM_NAMES)}"
        )
    for name in PARAM_NAMES:
        key, r, spec = f"param_ranges.{name}", ranges[name], SPECS[name]
        numbers = isinstance(r, list) and len(r) == 2
        numbers = numbers and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in r
        )
        if not numbers or not r[0] < r[1]:
            raise ValueError(f"{key} = {_shown(r)} is invalid; allowed: [low, high], low < high")
        lo, hi = r
        if lo < spec.limit[0] or hi > spec.limit[1]:
            raise ValueError(
                f"{key} = {_shown(r)} is outside what VTracer accepts; allowed: within "
                f"[{spec.limit[0]:g}, {spec.limit[1]:g}]"
            )
        if spec.kind is int and (lo != int(lo) or hi != int(hi)):
            raise ValueError(f"{key} = {_shown(r)} is invalid; allowed: integers")
        if not lo <= spec.default <= hi:
            raise ValueError(f"{key} = {_shown(r)} must contain VTracer's default {spec.default}")
        if not isinstance(model, Mapping) or list(model.get(name) or []) != list(r):
            theirs = model.get(name) if isinstance(model, Mapping) else None
            raise ValueError(
                f"{key} = {_shown(r)} differs from input.ranges.{name} = {_shown(theirs)}, "
                "the range the model normalizes with"
            )


def _check_logo(logo: Any) -> None:
    if not isinstance(logo, Mapping):
        raise ValueError(f"logo = {_shown(logo)} is invalid; allowed: a mapping")
    size = logo.get("image_size")
    if isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= 4096:
        raise ValueError(f"logo.image_size = {_shown(size)} is invalid; allowed: 32 to 4096")
    low = logo.get("min_size", 1)
    if isinstance(low, bool) or not isinstance(low, int) or not 1 <= low <= size:
        raise ValueError(f"logo.min_size = {_shown(low)} is invalid; allowed: 1 to {size}")


def _check_vtracer(vtracer: Any) -> None:
    if not isinstance(vtracer, Mapping) or sorted(vtracer) != sorted(VTRACER_CHOICES):
        raise ValueError(
            f"vtracer = {_shown(vtracer)} is invalid; allowed: {', '.join(VTRACER_CHOICES)}"
        )
    for key, choices in VTRACER_CHOICES.items():
        if vtracer[key] not in choices:
            raise ValueError(
                f"vtracer.{key} = {_shown(vtracer[key])} is invalid; allowed: one of "
                + ", ".join(choices)
            )


def _check_signatures(meta: Mapping[str, Any]) -> None:
    """The served graphs' recorded inputs and outputs: what the predictor feeds (names
    from ``input``), with shapes of positive ints or ``"batch"``."""
    spec = InputSpec.from_meta(meta["input"])
    signatures = meta.get("signatures")
    for graph in SERVED_GRAPHS:
        sig = signatures.get(graph) if isinstance(signatures, Mapping) else None
        if not isinstance(sig, Mapping):
            raise ValueError(f"signatures.{graph} is missing")
        wanted = {"inputs": spec.input_names(graph), "outputs": spec.output_names(graph)}
        for side, want in wanted.items():
            ports = sig.get(side)
            if not isinstance(ports, list) or not all(isinstance(p, Mapping) for p in ports):
                raise ValueError(f"signatures.{graph}.{side} = {_shown(ports)} is invalid")
            names = [p.get("name") for p in ports]
            if names != want:
                raise ValueError(
                    f"signatures.{graph}.{side} are {_shown(names)}; the model's input "
                    f"layout (input) makes them {want}"
                )
            for p in ports:
                shape = p.get("shape")
                if not isinstance(shape, list) or not all(
                    d == "batch" or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
                    for d in shape
                ):
                    raise ValueError(
                        f"signatures.{graph}.{side}.{p['name']} shape {_shown(shape)} is "
                        "invalid; allowed: positive sizes or 'batch'"
                    )


def _check_self_test_record(meta: Mapping[str, Any]) -> None:
    record = meta.get("self_test")
    if record is None:
        return  # an export from before the record: the predictor warns
    graphs = record.get("graphs") if isinstance(record, Mapping) else None
    for graph in exported_graphs(meta):
        outs = graphs.get(graph) if isinstance(graphs, Mapping) else None
        rows = _self_test_batch(meta, graph)
        names = self_test_outputs(meta, graph)
        if not isinstance(outs, Mapping) or sorted(outs) != sorted(names):
            raise ValueError(f"self_test.graphs.{graph} = {_shown(outs)} is invalid")
        for name, values in outs.items():
            if not (
                isinstance(values, list)
                and len(values) == rows
                and all(isinstance(v, int | float) and math.isfinite(v) for v in values)
            ):
                raise ValueError(
                    f"self_test.graphs.{graph}.{name} = {_shown(values)} is invalid; allowed: "
                    f"{rows} finite numbers"
                )


# --------------------------------------------------------------------------- self-test


def exported_graphs(meta: Mapping[str, Any]) -> list[str]:
    """The served graphs the export has an ONNX file of (a benchmark's may lack e2e)."""
    return [g for g in SERVED_GRAPHS if GRAPH_FILES[g] in meta["files"]]


def _self_test_batch(meta: Mapping[str, Any], graph: str) -> int:
    names = [p["name"] for p in meta["signatures"][graph]["inputs"]]
    return 1 if "image" in names else SELF_TEST_BATCH  # one ResNet-50 pass at most


def self_test_outputs(meta: Mapping[str, Any], graph: str) -> list[str]:
    """The outputs the self-test records: the heads (``[batch, 1]``), not the features."""
    return [p["name"] for p in meta["signatures"][graph]["outputs"] if p["shape"] == ["batch", 1]]


def _sequence(n: int, offset: float) -> np.ndarray:
    """``n`` values spread over ``[0, 1)`` (the golden-ratio sequence): fixed by arithmetic
    alone, so no random generator's version can change the self-test's input."""
    return np.modf(offset + np.arange(1, n + 1, dtype=np.float64) * 0.6180339887498949)[0]


def self_test_inputs(meta: Mapping[str, Any], graph: str) -> dict[str, np.ndarray]:
    """A fixed, plausible input of ``graph`` by name, built from its recorded signature
    and the model's input statistics: VTracer's defaults and spread parameter sets inside
    the model's ranges, statistics around their training mean, features >= 0."""
    inp = meta["input"]
    moments = {
        "stats": ("stats_mean", "stats_std"),
        "vtracer": ("cond_mean", "cond_std"),
        "probe": ("probe_mean", "probe_std"),
    }
    rows = _self_test_batch(meta, graph)
    out = {}
    for i, port in enumerate(meta["signatures"][graph]["inputs"]):
        name = port["name"]
        shape = tuple(rows if d == "batch" else int(d) for d in port["shape"])
        u = _sequence(int(np.prod(shape)), 0.1 * i).reshape(shape)  # [0, 1)
        if name == "params":
            lo = np.array([inp["ranges"][n][0] for n in PARAM_NAMES], dtype=np.float64)
            hi = np.array([inp["ranges"][n][1] for n in PARAM_NAMES], dtype=np.float64)
            x = lo + u * (hi - lo)
            x[0] = [VTRACER_DEFAULTS[n] for n in PARAM_NAMES]
        elif name in moments and moments[name][0] in inp:
            mean, std = (np.asarray(inp[k], dtype=np.float64) for k in moments[name])
            x = mean + std * (2 * u - 1)  # within one std of the training mean
        elif name == "long_side":  # px within the trained long sides
            lo, hi = min(inp["sizes"]), max(inp["sizes"])
            x = lo + u * (hi - lo)
        elif name == "image_features":
            x = 2 * u  # pooled ReLU outputs: >= 0
        else:
            x = 4 * u - 2  # a normalized image, assembled rows: around 0
        out[name] = np.ascontiguousarray(x, dtype=np.float32)
    return out


def self_test_record(
    meta: Mapping[str, Any],
    run: Callable[[str, dict[str, np.ndarray], list[str]], list[np.ndarray]],
) -> dict[str, Any]:
    """The served graphs' outputs on :func:`self_test_inputs`, for metadata.json
    (``run(graph, feed, output names) -> outputs``: the export's ONNX Runtime sessions)."""
    graphs = {}
    for graph in exported_graphs(meta):
        names = self_test_outputs(meta, graph)
        outs = run(graph, self_test_inputs(meta, graph), names)
        graphs[graph] = {
            n: [float(v) for v in np.asarray(o).reshape(-1)]
            for n, o in zip(names, outs, strict=True)
        }
    return {"inputs": "svg_quality.serving.metadata.self_test_inputs", "graphs": graphs}


def self_test_mismatch(
    meta: Mapping[str, Any], graph: str, outputs: Mapping[str, np.ndarray]
) -> str | None:
    """How ``graph``'s ``outputs`` on the self-test input differ from the record (None:
    within ``SELF_TEST_ATOL``)."""
    record = meta["self_test"]["graphs"][graph]
    for name, want in record.items():
        got = np.asarray(outputs[name], dtype=np.float64).reshape(-1)
        want = np.asarray(want, dtype=np.float64)
        if got.shape != want.shape:
            return f"{name} has {got.size} values where the export recorded {want.size}"
        diff = np.abs(got - want)
        diff[np.isnan(diff)] = np.inf  # NaN fails too
        if not np.all(diff <= SELF_TEST_ATOL):
            row = int(np.argmax(diff))
            return (
                f"{name} is {got[row]:.6g} where the export recorded {want[row]:.6g} (row {row} "
                f"of the fixed input; allowed difference {SELF_TEST_ATOL:g})"
            )
    return None
