"""The torch graphs the export writes and the torch predictor runs.

    MLPForExport     rows [B, width] -> ssim [B, 1]
    EndToEnd         the raw inputs of InputSpec.graph_inputs("e2e") (image, params, stats)
                     -> ssim [B, 1] (, image_features [B, 2048])
    CandidateScorer  one logo's per-logo inputs [1, ...] and N raw parameter sets -> ssim [N, 1]

Both raw-input graphs normalize inside, with the ranges and train-split mean/std that
:class:`~svg_quality.inputspec.InputSpec` records, and take their inputs in the order
``InputSpec.graph_inputs`` gives (``forward(*inputs)``), so a new input segment needs
no new class here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from svg_quality.inputspec import InputSpec
from svg_quality.model import QualityMLP


class MLPForExport(nn.Module):
    """The MLP with the exported output shape: rows ``[B, in_dim]`` -> ssim ``[B, 1]``."""

    def __init__(self, mlp: QualityMLP) -> None:
        super().__init__()
        self.mlp = mlp

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features).unsqueeze(-1)  # [B] -> [B, 1]


class _Affine(nn.Module):
    """``(raw - shift) / scale`` with graph constants (min-max params, standardized stats)."""

    def __init__(self, shift: list[float], scale: list[float]) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32).reshape(-1))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).reshape(-1))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.shift) / self.scale


def _normalizers(spec: InputSpec) -> nn.ModuleDict:
    out = nn.ModuleDict()
    for s in spec.segments():
        affine = spec.affine(s.name)
        out[s.raw] = _Affine(*affine) if affine is not None else nn.Identity()
    return out


class EndToEnd(nn.Module):
    """Image + raw per-logo blocks + raw parameters -> (ssim ``[B, 1]``, image_features)."""

    def __init__(self, backbone: nn.Module | None, mlp: QualityMLP, spec: InputSpec) -> None:
        super().__init__()
        if spec.uses_resnet and backbone is None:
            raise ValueError(f"inputs {spec.inputs!r} need the ResNet-50 backbone")
        self.backbone = backbone if spec.uses_resnet else None
        self.mlp = mlp
        self.norm = _normalizers(spec)
        self.names = spec.input_names("e2e")
        self.blocks = [s.raw for s in spec.segments()]  # row order

    def forward(self, *inputs: torch.Tensor) -> Any:
        named = dict(zip(self.names, inputs, strict=True))
        feats = None
        if self.backbone is not None:
            feats = self.backbone(named["image"])  # [B, 3, 224, 224] -> [B, 2048]
            named["image_features"] = feats
        parts = [
            feats if name == "image_features" else self.norm[name](named[name])
            for name in self.blocks
        ]
        ssim = self.mlp(torch.cat(parts, dim=1)).unsqueeze(-1)  # [B, 1]
        return ssim if feats is None else (ssim, feats)


class CandidateScorer(nn.Module):
    """One logo's per-logo blocks ``[1, ...]`` and ``N`` raw parameter sets -> ssim ``[N, 1]``.

    The first Linear's weight splits into the columns of the per-logo blocks and of the
    parameters; ``W x + b = W_img x_img + W_par x_par + b``, so the image half is
    computed once and broadcast over the candidates: the same function with about four
    times fewer FLOPs at 2,048 candidates.
    """

    def __init__(self, mlp: QualityMLP, spec: InputSpec) -> None:
        super().__init__()
        layers = list(mlp.net)
        first = next(i for i, m in enumerate(layers) if isinstance(m, nn.Linear))
        linear: nn.Linear = layers[first]
        w = linear.weight.detach()
        self.register_buffer("w_img", w[:, spec.columns(per_logo=True)].clone())  # [h, S]
        self.register_buffer("w_par", w[:, spec.columns(per_logo=False)].clone())  # [h, 8]
        self.register_buffer("bias", linear.bias.detach().clone())  # [h]
        self.rest = nn.Sequential(*layers[first + 1 :])
        self.norm = _normalizers(spec)
        self.names = spec.input_names("candidates")
        segs = spec.segments()
        self.logo_blocks = [s.raw for s in segs if s.per_logo]
        self.candidate_blocks = [s.raw for s in segs if not s.per_logo]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        named = dict(zip(self.names, inputs, strict=True))
        logo = torch.cat([self.norm[n](named[n]) for n in self.logo_blocks], dim=1)
        shared = logo @ self.w_img.T  # [1, h], once per logo
        cand = torch.cat([self.norm[n](named[n]) for n in self.candidate_blocks], dim=1)
        h = cand @ self.w_par.T + shared + self.bias  # [N, h]
        return self.rest(h).squeeze(-1).unsqueeze(-1)  # [N, 1]


def end_to_end(backbone: nn.Module | None, mlp: QualityMLP, spec: InputSpec) -> EndToEnd:
    return EndToEnd(backbone, mlp, spec).eval()


def candidate_scorer(mlp: QualityMLP, spec: InputSpec) -> CandidateScorer:
    return CandidateScorer(mlp, spec).eval()


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
