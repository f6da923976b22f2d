"""The torch graphs the export writes and the torch predictor runs.

    MLPForExport     rows [B, width] -> ssim [B, 1] (, log10_svg_bytes [B, 1])
    EndToEnd         the raw inputs of InputSpec.graph_inputs("e2e") (image, params, stats)
                     -> ssim [B, 1] (, log10_svg_bytes [B, 1]) (, image_features [B, 2048])
    CandidateScorer  one logo's per-logo inputs [1, ...] and N raw parameter sets
                     -> ssim [N, 1] (, log10_svg_bytes [N, 1])

With a size head (:class:`SizeOutput`, a second MLP on the same rows) every graph has
the second output InputSpec.graph_outputs names; without one they are unchanged.

Both raw-input graphs normalize inside, with the ranges and train-split mean/std that
:class:`~svg_quality.inputspec.InputSpec` records, and take their inputs in the order
``InputSpec.graph_inputs`` gives (``forward(*inputs)``), so a new input segment needs
no new class here. Each graph holds its MLPs as :func:`~svg_quality.model.plain_mlp`
(a ``model.resnet_pca`` projection folded into the first Linear), so every graph is a
plain MLP over the raw rows whatever the ResNet block was in training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from svg_quality.backbone import load_backbone
from svg_quality.inputspec import InputSpec
from svg_quality.model import PeriodicEmbedding, QualityMLP, plain_mlp


class SizeOutput(nn.Module):
    """The size head: its MLP's sigmoid output mapped to log10(SVG bytes) by the affine
    scale recorded with it (:class:`svg_quality.sizehead.SizeScale`), as graph constants."""

    def __init__(self, mlp: QualityMLP, log10_low: float, log10_high: float) -> None:
        super().__init__()
        self.mlp = plain_mlp(mlp)
        # The trained module, for the size model file (its meta rebuilds that layout, not
        # the plain one); a list, so it is no submodule and no graph carries it.
        self._trained = [mlp]
        self.register_buffer("low", torch.tensor(float(log10_low), dtype=torch.float32))
        self.register_buffer("span", torch.tensor(float(log10_high - log10_low)))

    def trained(self) -> QualityMLP:
        """The size head as trained (members, ResNet block), as its model file holds it."""
        return self._trained[0]

    def scale(self, unit: torch.Tensor) -> torch.Tensor:
        return self.low + unit * self.span

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.scale(self.mlp(rows)).unsqueeze(-1)  # [B, width] -> [B, 1]


def size_output(mlp: QualityMLP, meta: Mapping[str, Any]) -> SizeOutput:
    """The size head of a size model file's (module, meta)."""
    scale = meta["size_scale"]
    return SizeOutput(mlp.eval(), scale["log10_low"], scale["log10_high"]).eval()


def _outputs(*outs: torch.Tensor | None) -> Any:
    present = tuple(o for o in outs if o is not None)
    return present[0] if len(present) == 1 else present


class MLPForExport(nn.Module):
    """The MLP with the exported output shape: rows ``[B, in_dim]`` -> ssim ``[B, 1]``
    (and log10_svg_bytes ``[B, 1]`` with a size head)."""

    def __init__(self, mlp: QualityMLP, size: SizeOutput | None = None) -> None:
        super().__init__()
        self.mlp = plain_mlp(mlp)
        self.size = size

    def forward(self, features: torch.Tensor) -> Any:
        ssim = self.mlp(features).unsqueeze(-1)  # [B] -> [B, 1]
        if self.size is None:
            return ssim
        return ssim, self.size(features)


class _Affine(nn.Module):
    """``(raw - shift) / scale`` with graph constants (min-max params, standardized stats)."""

    def __init__(self, shift: list[float], scale: list[float]) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32).reshape(-1))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).reshape(-1))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.shift) / self.scale


class _Log2Scale(nn.Module):
    """The size input: ``log2(long_side / view)`` (``inputspec.log2_scale``)."""

    def __init__(self, view: int) -> None:
        super().__init__()
        self.register_buffer("view", torch.tensor([float(view)], dtype=torch.float32))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.log2(raw / self.view)


def _normalizers(spec: InputSpec) -> nn.ModuleDict:
    out = nn.ModuleDict()
    for s in spec.segments():
        affine = spec.affine(s.name)
        if s.name == "size":
            out[s.raw] = _Log2Scale(int(spec.sizes[0]))
        else:
            out[s.raw] = _Affine(*affine) if affine is not None else nn.Identity()
    return out


class EndToEnd(nn.Module):
    """Image + raw per-logo blocks + raw parameters -> (ssim ``[B, 1]``[, log10_svg_bytes
    ``[B, 1]``], image_features): the outputs of ``spec.graph_outputs("e2e")``."""

    def __init__(
        self,
        backbone: nn.Module | None,
        mlp: QualityMLP,
        spec: InputSpec,
        size: SizeOutput | None = None,
    ) -> None:
        super().__init__()
        if spec.uses_resnet and backbone is None:
            raise ValueError(f"inputs {spec.inputs!r} need the ResNet-50 backbone")
        self.backbone = backbone if spec.uses_resnet else None
        self.mlp = plain_mlp(mlp)
        self.size = size
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
        rows = torch.cat(parts, dim=1)  # [B, width]
        ssim = self.mlp(rows).unsqueeze(-1)  # [B, 1]
        size = self.size(rows) if self.size is not None else None  # [B, 1]
        return _outputs(ssim, size, feats)


class _FirstInputs(nn.Module):
    """Some row columns (``columns``, ascending) -> their part of the first Linear's input:
    the columns themselves, or with a :class:`~svg_quality.model.PeriodicEmbedding` the
    skipped (ResNet) ones as they are and the rest embedded; ``positions`` says where those
    values sit in the first Linear's input."""

    def __init__(self, embed: PeriodicEmbedding | None, columns: list[int]) -> None:
        super().__init__()
        skip = embed.skip if embed is not None else float("inf")
        kept = [i for i, c in enumerate(columns) if c < skip]
        embedded = [i for i, c in enumerate(columns) if c >= skip]
        self.register_buffer("kept", torch.tensor(kept, dtype=torch.long))
        self.register_buffer("embedded", torch.tensor(embedded, dtype=torch.long))
        self.has_kept, self.has_embedded = bool(kept), bool(embedded)
        self.embed: PeriodicEmbedding | None = None
        self.positions = [columns[i] for i in kept]
        if embed is not None:
            self.embed = embed.columns([columns[i] for i in embedded]) if embedded else None
            self.positions += [p for i in embedded for p in embed.positions(columns[i])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x  # no embedding: the columns are the first Linear's inputs
        if self.embed is not None:
            parts: list[torch.Tensor] = []
            if self.has_kept:
                parts.append(x.index_select(1, self.kept))
            if self.has_embedded:
                parts.append(self.embed.embed(x.index_select(1, self.embedded)))
            out = torch.cat(parts, dim=1)
        return out


class _SplitMLP(nn.Module):
    """One MLP with its first Linear split into per-logo and per-candidate columns:
    ``W x + b = W_img x_img + W_par x_par + b``, the image half computed once (with a
    periodic embedding, each half embeds its own columns first)."""

    def __init__(self, mlp: QualityMLP, spec: InputSpec) -> None:
        super().__init__()
        plain = plain_mlp(mlp)
        layers = list(plain.net)
        first = next(i for i, m in enumerate(layers) if isinstance(m, nn.Linear))
        linear: nn.Linear = layers[first]
        w = linear.weight.detach()
        self.logo_in = _FirstInputs(plain.embed, spec.columns(per_logo=True))
        self.cand_in = _FirstInputs(plain.embed, spec.columns(per_logo=False))
        self.register_buffer("w_img", w[:, self.logo_in.positions].clone())  # [h, S]
        self.register_buffer("w_par", w[:, self.cand_in.positions].clone())  # [h, 8]
        self.register_buffer("bias", linear.bias.detach().clone())  # [h]
        self.rest = nn.Sequential(*layers[first + 1 :])

    def forward(self, logo: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        shared = self.logo_in(logo) @ self.w_img.T  # [1, h], once per logo
        h = self.cand_in(cand) @ self.w_par.T + shared + self.bias  # [N, h]
        return self.rest(h).squeeze(-1)  # [N]


class CandidateScorer(nn.Module):
    """One logo's per-logo blocks ``[1, ...]`` and ``N`` raw parameter sets -> ssim ``[N, 1]``
    (and log10_svg_bytes ``[N, 1]`` with a size head).

    Each head's first Linear splits into the columns of the per-logo blocks and of the
    parameters (:class:`_SplitMLP`), so the image half is computed once and broadcast
    over the candidates: the same function with about four times fewer FLOPs at 2,048
    candidates.
    """

    def __init__(self, mlp: QualityMLP, spec: InputSpec, size: SizeOutput | None = None) -> None:
        super().__init__()
        self.ssim = _SplitMLP(mlp, spec)
        self.size = _SplitMLP(size.mlp, spec) if size is not None else None
        self.size_scale = size
        self.norm = _normalizers(spec)
        self.names = spec.input_names("candidates")
        segs = spec.segments()
        self.logo_blocks = [s.raw for s in segs if s.per_logo]
        self.candidate_blocks = [s.raw for s in segs if not s.per_logo]

    def forward(self, *inputs: torch.Tensor) -> Any:
        named = dict(zip(self.names, inputs, strict=True))
        logo = torch.cat([self.norm[n](named[n]) for n in self.logo_blocks], dim=1)
        cand = torch.cat([self.norm[n](named[n]) for n in self.candidate_blocks], dim=1)
        ssim = self.ssim(logo, cand).unsqueeze(-1)  # [N, 1]
        if self.size is None or self.size_scale is None:
            return ssim
        return ssim, self.size_scale.scale(self.size(logo, cand)).unsqueeze(-1)


def end_to_end(
    backbone: nn.Module | None, mlp: QualityMLP, spec: InputSpec, size: SizeOutput | None = None
) -> EndToEnd:
    return EndToEnd(backbone, mlp, spec, size).eval()


def candidate_scorer(
    mlp: QualityMLP, spec: InputSpec, size: SizeOutput | None = None
) -> CandidateScorer:
    return CandidateScorer(mlp, spec, size).eval()


def rebuild_backbone(weights: Mapping[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The exact ResNet-50 trunk featurize used, from its recorded ``weights`` record
    (``data/features/meta.json``); fails when the rebuilt tensors' digest differs."""
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
