"""The quality MLP and the self-describing model file.

The model maps one input row (laid out by :class:`svg_quality.inputspec.InputSpec`)
to the predicted SSIM in [0, 1]:

    [resnet features (2048)] [logo statistics, standardized (k)] [8 normalized params]
      -> [model.embedding: periodic embedding of every non-ResNet column]
      -> (Linear, BatchNorm1d, ReLU, Dropout) per hidden width -> Linear -> Sigmoid

With ``model.members: K`` the MLP is K independent members side by side in one module
(each its own embedding and layers; block-diagonal weights, :class:`MaskedLinear`), each
trained on its own loss; the prediction is the sigmoid of their mean logit. For export,
:func:`plain_mlp` folds them into one plain MLP of the summed widths, the same function.

The spec (with its parameter ranges and statistics mean/std) travels inside every
checkpoint, so inference normalizes exactly like training did.

The model file (``models/model.pt``) holds only tensors and plain Python values, so it
loads with ``torch.load(weights_only=True)``; :func:`load_model` rebuilds the module.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from svg_quality.config import AUTO_MEMBERS, ModelConfig
from svg_quality.inputgroups import AUTO, parse_inputs, resolve_inputs
from svg_quality.inputspec import INPUT_CHOICES as INPUT_CHOICES  # re-exported
from svg_quality.inputspec import RESNET_DIM as RESNET_DIM  # re-exported
from svg_quality.inputspec import InputSpec
from svg_quality.io import atomic_path
from svg_quality.paramspace import PARAM_NAMES

MODEL_FORMAT = 1  # bump when the model file's layout changes


# --------------------------------------------------------------------------- the MLP


class Dropout(nn.Dropout):
    """``nn.Dropout`` (zero each element with probability ``p``, scale the rest by
    ``1 / (1 - p)``) with a cheaper mask on CPU.

    On CPU ``bernoulli_`` draws one 32-bit number per element at ~9 ns each, which makes
    dropout the largest cost after the matrix multiplies (a third of a training step of
    the default 25-input MLP on 2 cores). Here one 64-bit draw gives four 16-bit uniforms,
    so an element is dropped with probability ``round(p * 65536) / 65536`` (within 8e-6
    of ``p``); forward plus backward is ~4.5x faster than ``F.dropout`` at [512, 1024].
    CUDA (and a TorchScript-scripted copy) keep ``F.dropout``. Eval mode is the identity,
    so TorchScript and ONNX exports are unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # TorchScript skips a branch only under a bare `if not torch.jit.is_scripting()`.
        if not torch.jit.is_scripting():  # noqa: SIM102
            if self.training and self.p > 0.0 and not x.is_cuda:
                return _cpu_dropout(x, self.p)
        return nn.functional.dropout(x, self.p, self.training, self.inplace)


def _cpu_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
    bits.random_(-(2**63), 2**63 - 1)  # the whole int64 range: all 16-bit lanes uniform
    u16 = bits.view(torch.int16)[:n].view(x.shape)  # uniform over [-32768, 32767]
    keep = u16 >= round(p * 65536) - 32768  # bool, P(keep) = 1 - p
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - p))


class MaskedLinear(nn.Linear):
    """A Linear whose weight is multiplied by a fixed 0/1 ``mask`` (``[out, in]``) in every
    call: the block-diagonal layers of a K-member MLP, whose masked weights never act and
    never get a gradient. The mask is rebuilt from the config, not saved."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor) -> None:
        super().__init__(in_features, out_features)
        if tuple(mask.shape) != (out_features, in_features):
            raise ValueError(f"mask {tuple(mask.shape)} for a {in_features} -> {out_features}")
        self.register_buffer("mask", mask.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)

    def plain(self) -> nn.Linear:
        """The same function as a plain ``nn.Linear`` (masked weights zero)."""
        out = nn.Linear(self.in_features, self.out_features)
        with torch.no_grad():
            out.weight.copy_(self.weight * self.mask)
            out.bias.copy_(self.bias)
        return out


def member_mask(out_owner: torch.Tensor, in_owner: torch.Tensor) -> torch.Tensor:
    """``[out, in]`` 0/1: output ``i`` reads input ``j`` when both belong to one member
    (``owner`` = member index per unit; ``-1`` marks an input every member reads)."""
    same = out_owner[:, None] == in_owner[None, :]
    return (same | (in_owner[None, :] < 0)).float()


def owners(members: int, width: int) -> torch.Tensor:
    """Member index of each of ``members * width`` units laid out member by member."""
    return torch.arange(members).repeat_interleave(width)


class ResnetBlock(nn.Module):
    """The row's leading ``width`` ResNet columns -> ``pca`` whitened principal components
    (0: the raw columns), then dropout on the block only; the other columns pass through.

    The projection is a fixed map fitted on the train images (:meth:`fit`), never trained:
    ``z = (x - mean) @ proj`` with ``proj [width, pca]`` folding the per-feature
    standardization, the top right singular vectors and the whitening. A random-init trunk's
    2048 features are mostly noise the MLP overfits within a few epochs (val r 0.55 vs 0.92
    without them); a few whitened components (params.yaml: 8) leave it little to overfit. In eval the
    block is linear, so :func:`plain_mlp` folds it into the first Linear for export.
    """

    def __init__(self, width: int, pca: int, dropout: float) -> None:
        super().__init__()
        self.width, self.pca = width, pca
        self.out_width = pca or width
        if pca:
            self.register_buffer("mean", torch.zeros(width))  # [width]
            self.register_buffer("proj", torch.zeros(width, pca))  # [width, pca]
        self.drop = Dropout(dropout) if dropout > 0 else nn.Identity()

    def fit(self, images: np.ndarray) -> None:
        """Fit the projection on the train images' ResNet features ``[n_images, width]``
        (one row per image, not per label row: images with more samples do not weigh more)."""
        if not self.pca:
            return
        mean, proj = fit_pca(images, self.pca)
        self.mean.copy_(torch.from_numpy(mean))
        self.proj.copy_(torch.from_numpy(proj))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = x[:, : self.width]  # [B, width]
        if self.pca:
            r = (r - self.mean) @ self.proj  # [B, width] -> [B, pca]
        return torch.cat([self.drop(r), x[:, self.width :]], dim=1)  # [B, out_width + rest]


def fit_pca(images: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mean [w], proj [w, k])`` float32: ``(x - mean) @ proj`` are the top ``k`` principal
    components of the standardized features, each of unit variance over ``images``."""
    x = np.asarray(images, dtype=np.float64)  # [n, w]
    n = x.shape[0]
    if k > n - 1:
        raise ValueError(
            f"model.resnet_pca = {k} needs more than {k} train images, got {n}; "
            f"use at most {max(n - 1, 0)} (or 0 for the raw features)"
        )
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[~(std > 1e-12)] = 1.0  # a constant feature standardizes to 0
    _, s, vt = np.linalg.svd((x - mean) / std, full_matrices=False)  # vt [min(n, w), w]
    if not s[k - 1] > 1e-6 * s[0]:
        raise ValueError(
            f"model.resnet_pca = {k}: the train images' features have only "
            f"{int((s > 1e-6 * s[0]).sum())} non-degenerate components; lower it"
        )
    comps = vt[:k]  # [k, w]
    comps *= np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])[:, None]  # fixed signs
    proj = comps.T / std[:, None] * (np.sqrt(n) / s[:k])  # [w, k]: unit variance per component
    return mean.astype(np.float32), proj.astype(np.float32)


class PeriodicEmbedding(nn.Module):
    """Each of ``n_columns`` numeric columns ``x`` -> ``ReLU(W_j [sin 2 pi c_j x, cos 2 pi c_j x]
    + b_j)``, ``dim`` values per column, with ``frequencies`` trained frequencies ``c_j``
    initialised from ``N(0, sigma)``: the "PLR" embedding of Gorishniy et al. (2022), *On
    Embeddings for Numerical Features in Tabular Deep Learning*. It lets the first Linear
    see sharp, bounded functions of each input (VTracer's cliffs at a colour precision or
    a speckle size) instead of one slope, and saturates where a real logo's value lies
    outside the synthetic range. The leading ``skip`` columns (the ResNet block) pass
    through unchanged: ``[B, skip + n_columns] -> [B, skip + n_columns * dim]``.
    """

    def __init__(
        self,
        n_columns: int,
        frequencies: int,
        dim: int,
        sigma: float,
        skip: int = 0,
        members: int = 1,
    ) -> None:
        super().__init__()
        # With members > 1, each column has `members` embeddings side by side: member m
        # owns frequencies m*k..(m+1)*k-1 and outputs m*dim..(m+1)*dim-1 of the column.
        k, self.members = frequencies * members, members
        self.skip, self.dim, self.n_columns = skip, dim * members, n_columns
        self.freq = nn.Parameter(torch.randn(n_columns, k) * sigma)  # [n, K*k]
        scale = 1.0 / math.sqrt(2 * frequencies)
        self.weight = nn.Parameter(torch.randn(n_columns, 2 * k, self.dim) * scale)
        self.bias = nn.Parameter(torch.zeros(n_columns, self.dim))  # [n, K*dim]
        mask = None
        if members > 1:  # [2Kk, K*dim]: sin and cos of a member's frequencies -> its outputs
            f = owners(members, frequencies)
            mask = member_mask(torch.cat([f, f]), owners(members, dim))
        self.mask: torch.Tensor | None
        self.register_buffer("mask", mask, persistent=False)

    def out_owners(self) -> torch.Tensor:
        """Member of each output value (``-1``: a skipped column every member reads)."""
        per_column = owners(self.members, self.dim // self.members)
        return torch.cat([torch.full((self.skip,), -1), per_column.repeat(self.n_columns)])

    def out_width(self) -> int:
        return self.skip + self.n_columns * self.dim

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        """``[B, n_columns] -> [B, n_columns * dim]`` (column-major: column j's ``dim``)."""
        z = (2.0 * math.pi) * t.unsqueeze(-1) * self.freq  # [B, n, k]
        z = torch.cat([torch.sin(z), torch.cos(z)], dim=-1)  # [B, n, 2k]
        # per column: [B, 2k] @ [2k, dim], as one batched matmul over the columns
        w = self.weight if self.mask is None else self.weight * self.mask
        h = torch.matmul(z.transpose(0, 1), w).transpose(0, 1) + self.bias  # [B, n, dim]
        return torch.relu(h).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.skip == 0:
            return self.embed(x)
        return torch.cat([x[:, : self.skip], self.embed(x[:, self.skip :])], dim=1)

    def positions(self, column: int) -> list[int]:
        """Where input ``column`` lands in the output (one place, or ``dim`` of them)."""
        if column < self.skip:
            return [column]
        start = self.skip + (column - self.skip) * self.dim
        return list(range(start, start + self.dim))

    def columns(self, columns: Sequence[int]) -> PeriodicEmbedding:
        """The embedding of the non-skipped ``columns`` only (its parameters sliced; no skip)."""
        j = torch.tensor([c - self.skip for c in columns], dtype=torch.long)
        k, d = self.freq.shape[1] // self.members, self.dim // self.members
        out = PeriodicEmbedding(len(columns), k, d, 1.0, members=self.members)
        with torch.no_grad():
            out.freq.copy_(self.freq[j])
            out.weight.copy_(self.weight[j])
            out.bias.copy_(self.bias[j])
        return out

    def plain(self) -> PeriodicEmbedding:
        """The same function with one member's layout: the masked weights set to zero."""
        out = PeriodicEmbedding(self.n_columns, self.freq.shape[1], self.dim, 1.0, self.skip)
        with torch.no_grad():
            out.freq.copy_(self.freq)
            out.weight.copy_(self.weight if self.mask is None else self.weight * self.mask)
            out.bias.copy_(self.bias)
        return out


def is_resnet_only_layout(in_features: int, resnet_width: int) -> bool:
    """Whether rows ``in_features`` wide are the ResNet-only layout (``model.inputs:
    resnet``): the ResNet features and the 8 parameters, nothing else, whose original
    plain MLP the ``auto`` choices keep."""
    return resnet_width > 0 and in_features - resnet_width == len(PARAM_NAMES)


def resolve_embedding(choice: str, in_features: int, resnet_width: int) -> str:
    """``model.embedding`` for rows ``in_features`` wide with ``resnet_width`` leading ResNet
    columns: ``auto`` is ``periodic`` except for the ResNet-only layout (ResNet features and
    the 8 parameters, ``model.inputs: resnet``), whose MLP stays the original plain 2056-wide
    one (DESIGN.md)."""
    if choice not in ("none", "periodic", "auto"):
        raise ValueError(f"model.embedding = {choice!r} is invalid; allowed: none, periodic, auto")
    if choice != "auto":
        return choice
    return "none" if is_resnet_only_layout(in_features, resnet_width) else "periodic"


def resolve_members(choice: int | str, in_features: int, resnet_width: int) -> int:
    """``model.members`` for rows ``in_features`` wide: ``auto`` is 2 members, except one
    MLP for the ResNet-only layout (``model.inputs: resnet``), which keeps the original
    plain MLP."""
    if choice != "auto":
        return int(choice)
    return 1 if is_resnet_only_layout(in_features, resnet_width) else AUTO_MEMBERS


class QualityMLP(nn.Module):
    """``in_features -> hidden... -> 1`` with BatchNorm, ReLU, Dropout per hidden layer.

    With ``resnet_width`` (the row's leading ResNet columns) and ``resnet_pca`` or
    ``resnet_dropout``, a :class:`ResnetBlock` maps those columns first; the row layout
    (``in_features``) is unchanged.

    With ``members`` K > 1, the layers are K members side by side, each ``hidden / K``
    wide (block-diagonal :class:`MaskedLinear` weights) with its own embedding. In
    training mode ``forward`` returns each member's prediction ``[B, K]`` (each trained
    on its own loss, so they stay as independent as separately trained models); in eval
    mode the sigmoid of the members' mean logit ``[B]``.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (1024, 512, 256),
        dropout: Sequence[float] = (0.3, 0.2, 0.1),
        input_dropout: float = 0.0,
        *,
        resnet_width: int = 0,
        resnet_pca: int = 0,
        resnet_dropout: float = 0.0,
        embedding: str = "none",
        embedding_frequencies: int = 16,
        embedding_dim: int = 16,
        embedding_sigma: float = 0.1,
        members: int = 1,
    ) -> None:
        super().__init__()
        if len(hidden) != len(dropout):
            raise ValueError(f"{len(hidden)} hidden widths but {len(dropout)} dropout rates")
        if members < 1 or any(h % members for h in hidden):
            raise ValueError(f"{members} members cannot share the hidden widths {list(hidden)}")
        self.members = members
        self.resnet: ResnetBlock | None = None
        width, skip = in_features, resnet_width
        if resnet_width and (resnet_pca or resnet_dropout > 0):
            self.resnet = ResnetBlock(resnet_width, resnet_pca, resnet_dropout)
            width = in_features - resnet_width + self.resnet.out_width
            skip = self.resnet.out_width
        self.embed: PeriodicEmbedding | None = None
        owner = torch.full((width,), -1)  # member of each first-Linear input (-1: all)
        if resolve_embedding(embedding, in_features, resnet_width) == "periodic":
            self.embed = PeriodicEmbedding(
                width - skip, embedding_frequencies, embedding_dim, embedding_sigma, skip, members
            )
            width = self.embed.out_width()
            owner = self.embed.out_owners()
        layers: list[nn.Module] = []
        if input_dropout > 0:
            # Dropout on the raw inputs regularises the wide, mostly-noise ResNet block.
            layers.append(Dropout(input_dropout))
        for h, p in zip(hidden, dropout, strict=True):
            layers += [self._linear(width, h // members, owner), nn.BatchNorm1d(h), nn.ReLU()]
            layers.append(Dropout(p))
            width, owner = h, owners(members, h // members)
        layers.append(self._linear(width, 1, owner))
        if members == 1:  # K members: forward applies the sigmoid to each logit or their mean
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)
        self.in_features = in_features

    def _linear(self, width: int, out: int, owner: torch.Tensor) -> nn.Linear:
        """``width -> out`` outputs per member: a plain Linear for one member, else masked so
        each member's outputs read only its own inputs (and the ones every member reads)."""
        if self.members == 1:
            return nn.Linear(width, out)
        mask = member_mask(owners(self.members, out), owner)
        return MaskedLinear(width, out * self.members, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resnet is not None:
            x = self.resnet(x)  # [B, in_features] -> [B, pca + rest]
        if self.embed is not None:
            x = self.embed(x)  # [B, skip + rest] -> [B, skip + rest * dim]
        if self.members == 1:
            return self.net(x).squeeze(-1)  # [B, 1] SSIM -> [B]
        logits = self.net(x)  # [B, K], one per member
        if self.training:
            return torch.sigmoid(logits)  # [B, K]: each member's own prediction
        return torch.sigmoid(logits.mean(dim=-1))  # [B]


def plain_mlp(mlp: QualityMLP) -> QualityMLP:
    """``mlp`` as a plain MLP over the same rows: the ResNet block folded into the first
    Linear (``W_r z = W_r proj^T (x - mean)``), its dropout dropped; K members as one MLP
    of the summed widths (masked weights zero, the last Linear averaging their logits).
    The same function in eval mode (to float32 rounding), so every exported graph keeps
    the plain-MLP shape (with ``inputs: resnet``, the original 2056 -> 1024 -> 512 -> 256 -> 1)."""
    block = mlp.resnet
    if block is None and mlp.members == 1:
        return mlp
    out = copy.deepcopy(mlp)
    if mlp.members > 1:
        _fold_members(out)
    if block is None:
        return out
    out.resnet = None
    if out.embed is not None:  # it passes the raw ResNet columns through now
        out.embed.skip = block.width
    i = next(j for j, m in enumerate(out.net) if isinstance(m, nn.Linear))
    first: nn.Linear = out.net[i]
    if block.pca:
        w = first.weight.detach().double()  # [h, pca + rest]
        w_raw = w[:, : block.pca] @ block.proj.double().T  # [h, width]
        bias = first.bias.detach().double() - w_raw @ block.mean.double()  # [h]
        linear = nn.Linear(block.width + w.shape[1] - block.pca, first.out_features)
        with torch.no_grad():
            linear.weight.copy_(torch.cat([w_raw, w[:, block.pca :]], dim=1).float())
            linear.bias.copy_(bias.float())
        out.net[i] = linear
    return out


def _fold_members(mlp: QualityMLP) -> None:
    """In place: masked layers -> plain ones, the last ``[K, width]`` Linear -> ``[1, width]``
    giving the members' mean logit (each member's row reads only its own units)."""
    if mlp.embed is not None:
        mlp.embed = mlp.embed.plain()
    for i, m in enumerate(mlp.net):
        if isinstance(m, MaskedLinear):
            mlp.net[i] = m.plain()
    last_i = max(j for j, m in enumerate(mlp.net) if isinstance(m, nn.Linear))
    last: nn.Linear = mlp.net[last_i]
    mean = nn.Linear(last.in_features, 1)
    with torch.no_grad():
        mean.weight.copy_(last.weight.sum(dim=0, keepdim=True) / mlp.members)
        mean.bias.copy_(last.bias.mean().reshape(1))
    mlp.net[last_i] = mean
    mlp.net.append(nn.Sigmoid())
    mlp.members = 1


def build_model(cfg: ModelConfig, in_features: int, resnet_width: int = 0) -> QualityMLP:
    """The MLP of ``cfg`` over rows ``in_features`` wide whose first ``resnet_width`` columns
    are ResNet features (``InputSpec.resnet_width``); fit its projection with ``fit``."""
    return QualityMLP(
        in_features,
        cfg.hidden,
        cfg.dropout,
        cfg.input_dropout,
        resnet_width=resnet_width,
        resnet_pca=cfg.resnet_pca,
        resnet_dropout=cfg.resnet_dropout,
        embedding=cfg.embedding,
        embedding_frequencies=cfg.embedding_frequencies,
        embedding_dim=cfg.embedding_dim,
        embedding_sigma=cfg.embedding_sigma,
        members=resolve_members(cfg.members, in_features, resnet_width),
    )


def count_parameters(model: nn.Module) -> int:
    """Trainable values; a masked weight counts only its unmasked entries."""
    total = 0
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            mask = getattr(m, "mask", None) if name == "weight" else None
            if isinstance(mask, torch.Tensor):  # broadcast over the weight's leading dims
                total += int(mask.sum()) * (p.numel() // mask.numel())
            else:
                total += p.numel()
    return total


def model_config_meta(cfg: ModelConfig, resolved: str | None = None) -> dict[str, Any]:
    """``cfg`` as plain values; ``inputs`` is the resolved request (``requested``: as asked)."""
    return {
        "inputs": resolved or cfg.inputs,
        "requested_inputs": cfg.requested_inputs,
        "hidden": list(cfg.hidden),
        "dropout": list(cfg.dropout),
        "input_dropout": float(cfg.input_dropout),
        "resnet_pca": int(cfg.resnet_pca),
        "resnet_dropout": float(cfg.resnet_dropout),
        "embedding": cfg.embedding,
        "embedding_frequencies": int(cfg.embedding_frequencies),
        "embedding_dim": int(cfg.embedding_dim),
        "embedding_sigma": float(cfg.embedding_sigma),
        "members": cfg.members,
    }


def model_config_from_meta(meta: Mapping[str, Any]) -> ModelConfig:
    return ModelConfig(
        inputs=meta["inputs"],  # resolved, probe included: rebuilds the same layout
        hidden=tuple(meta["hidden"]),
        dropout=tuple(meta["dropout"]),
        input_dropout=float(meta["input_dropout"]),
        resnet_pca=int(meta.get("resnet_pca", 0)),  # files from before the ResNet block
        resnet_dropout=float(meta.get("resnet_dropout", 0.0)),
        embedding=str(meta.get("embedding", "none")),  # files from before the embedding
        embedding_frequencies=int(meta.get("embedding_frequencies", 16)),
        embedding_dim=int(meta.get("embedding_dim", 16)),
        embedding_sigma=float(meta.get("embedding_sigma", 0.1)),
        members=int(meta.get("members", 1)),  # files from before the members
    )


# --------------------------------------------------------------------------- model file


def model_meta(
    cfg: ModelConfig, spec: InputSpec, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Everything needed to rebuild and feed the model, as plain Python values."""
    asked = cfg.requested_inputs
    if AUTO not in parse_inputs(asked) and resolve_inputs(asked, "random") != spec.inputs:
        raise ValueError(f"model.inputs {asked!r} differs from the input spec's {spec.inputs!r}")
    model_cfg = model_config_meta(cfg, spec.inputs)
    model_cfg["embedding"] = resolve_embedding(cfg.embedding, spec.width, spec.resnet_width)
    model_cfg["members"] = resolve_members(cfg.members, spec.width, spec.resnet_width)
    meta = {
        "format": MODEL_FORMAT,
        "model": model_cfg,
        "input": spec.to_meta(),
        "param_names": list(PARAM_NAMES),
        "output": "ssim",
    }
    meta.update(dict(extra or {}))
    return meta


def save_model(path: str | Path, model: nn.Module, meta: Mapping[str, Any]) -> None:
    """Write ``{"state_dict", "meta"}`` atomically; loadable with ``weights_only=True``."""
    if "model" in meta and "input" in meta:  # load_model must rebuild this very module
        got, want = set(model.state_dict()), set(model_from_meta(meta).state_dict())
        if got != want:
            raise ValueError(
                f"the module's tensors {sorted(got ^ want)[:3]} differ from what meta['model'] "
                "rebuilds; build it with build_model(cfg, spec.width, spec.resnet_width)"
            )
    with atomic_path(path) as tmp:
        torch.save({"state_dict": cpu_state(model.state_dict()), "meta": dict(meta)}, tmp)


def cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state dict (for checkpoints, model files, best weights)."""
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def model_from_meta(meta: Mapping[str, Any]) -> QualityMLP:
    cfg = model_config_from_meta(meta["model"])
    spec = InputSpec.from_meta(meta["input"])
    return build_model(cfg, spec.width, spec.resnet_width)


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[QualityMLP, dict[str, Any]]:
    """``models/model.pt`` (or a checkpoint) -> (module in eval mode, meta dict).

    ``meta["input"]`` rebuilds the :class:`InputSpec` (``InputSpec.from_meta``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model file; run `dvc repro train` first")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob or "meta" not in blob:
        raise ValueError(f"{path}: not an svg-quality model file (needs 'state_dict' and 'meta')")
    meta = blob["meta"]
    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(
            f"{path}: model format {meta.get('format')!r}, this code reads {MODEL_FORMAT}; retrain"
        )
    model = model_from_meta(meta)
    model.load_state_dict(blob["state_dict"])
    model.to(device).eval()
    return model, meta
