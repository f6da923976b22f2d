"""``metadata.json``: everything a consumer needs, without params.yaml or this code."""

from __future__ import annotations

import contextlib
import json
import platform
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from svg_quality.inputspec import InputSpec
from svg_quality.model import QualityMLP, count_parameters, plain_mlp
from svg_quality.paramspace import PARAM_NAMES, SPECS, VTRACER_DEFAULTS
from svg_quality.serving.runtime import EXPORT_FORMAT, FILES


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
    size_head: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a consumer needs, without params.yaml or this repository's code."""
    features = dict(model_meta.get("features") or {})
    preprocessing = features.get("preprocessing")
    if spec.uses_resnet and not preprocessing:
        raise ValueError("the model's meta records no backbone preprocessing; retrain")
    from svg_quality.dataset import weights_used
    from svg_quality.inputgroups import describe_resnet

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
