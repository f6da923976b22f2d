"""The quality MLP, its input layout, and the self-describing model file.

The model maps one input row to the predicted SSIM in [0, 1]:

    [resnet features (2048)] [logo statistics, standardized (k)]
    [VTracer-conditioned values, standardized (m)] [probe, standardized (2)] [8 normalized params]
      -> (Linear, BatchNorm1d, ReLU, Dropout) per hidden width -> Linear -> Sigmoid

Which segments are present is ``model.inputs`` resolved (:mod:`svg_quality.inputgroups`:
``auto``, or groups of ``resnet``, ``stats``, ``vtracer``, ``probe``).
:class:`InputSpec` is the one place that order is defined: the trainer, the model
file, validate and export all assemble rows through :meth:`InputSpec.assemble`, and
the spec (with its parameter ranges and statistics mean/std) travels inside every
checkpoint, so inference normalizes exactly like training did.

The model file (``models/model.pt``) holds only tensors and plain Python values, so it
loads with ``torch.load(weights_only=True)``; :func:`load_model` rebuilds the module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from svg_quality.config import ModelConfig
from svg_quality.inputgroups import groups_of
from svg_quality.paramspace import PARAM_NAMES, normalize
from svg_quality.probe import PROBE_NAMES

INPUT_CHOICES = ("resnet", "resnet+stats", "stats")  # the seed's; any resolved request works
RESNET_DIM = 2048  # ResNet-50's pooled feature width
MODEL_FORMAT = 1  # bump when the model file's layout changes


# --------------------------------------------------------------------------- input layout


@dataclass(frozen=True)
class InputSpec:
    """How one model input row is built, and everything needed to build it again.

    ``stats_mean``/``stats_std`` are the train split's statistics (empty when the
    inputs use no statistics), ``cond_*`` the same for the VTracer-conditioned values
    (``vtables.lookup``, fitted over train rows) and ``probe_*`` for the probe;
    ``ranges`` are ``vtracer.ranges`` used to min-max normalize the 8 parameters.
    ``tables`` is ``vtables.table_meta()`` of the tables the conditioned values come from.
    """

    inputs: str
    resnet_dim: int
    stat_names: tuple[str, ...]
    stats_mean: tuple[float, ...]
    stats_std: tuple[float, ...]
    ranges: Mapping[str, tuple[float, float]]
    cond_names: tuple[str, ...] = ()
    cond_mean: tuple[float, ...] = ()
    cond_std: tuple[float, ...] = ()
    probe_mean: tuple[float, ...] = ()
    probe_std: tuple[float, ...] = ()
    tables: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        try:
            groups_of(self.inputs)
        except ValueError as exc:
            raise ValueError(f"inputs {self.inputs!r} is invalid: {exc}") from None
        if self.uses_stats and not self.stat_names:
            raise ValueError(
                f"inputs {self.inputs!r} needs logo statistics, but the features have none "
                "(data/features/stats.npy is empty); use model.inputs=resnet"
            )
        for name, names, mean, std in (
            ("stats", self.stat_names, self.stats_mean, self.stats_std),
            ("vtracer", self.cond_names, self.cond_mean, self.cond_std),
            ("probe", PROBE_NAMES, self.probe_mean, self.probe_std),
        ):
            if self._uses(name) and not (len(mean) == len(std) == len(names)):
                raise ValueError(
                    f"{name} mean/std have {len(mean)}/{len(std)} values for {len(names)} "
                    "columns; fit them on the train split (dataset.make_input_spec)"
                )
        if self.uses_vtracer and (not self.cond_names or self.tables is None):
            raise ValueError(
                f"inputs {self.inputs!r} need VTracer tables, but none were given; rebuild "
                "data/features with `dvc repro featurize`"
            )
        missing = [n for n in PARAM_NAMES if n not in self.ranges]
        if missing:
            raise ValueError(f"parameter ranges lack {missing}; pass vtracer.ranges")

    def _uses(self, group: str) -> bool:
        return group in groups_of(self.inputs)

    @property
    def uses_resnet(self) -> bool:
        return self._uses("resnet")

    @property
    def uses_stats(self) -> bool:
        return self._uses("stats")

    @property
    def uses_vtracer(self) -> bool:
        return self._uses("vtracer")

    @property
    def uses_probe(self) -> bool:
        return self._uses("probe")

    def layout(self) -> list[dict[str, Any]]:
        """The input columns as ordered segments: ``[{name, start, width, columns?}, ...]``."""
        segments: list[tuple[str, int, list[str] | None]] = []
        if self.uses_resnet:
            segments.append(("resnet", self.resnet_dim, None))
        if self.uses_stats:
            segments.append(("stats", len(self.stat_names), list(self.stat_names)))
        if self.uses_vtracer:
            segments.append(("vtracer", len(self.cond_names), list(self.cond_names)))
        if self.uses_probe:
            segments.append(("probe", len(PROBE_NAMES), list(PROBE_NAMES)))
        segments.append(("params", len(PARAM_NAMES), list(PARAM_NAMES)))
        out, start = [], 0
        for name, width, columns in segments:
            seg: dict[str, Any] = {"name": name, "start": start, "width": width}
            if columns is not None:
                seg["columns"] = columns
            out.append(seg)
            start += width
        return out

    @property
    def width(self) -> int:
        last = self.layout()[-1]
        return last["start"] + last["width"]

    def assemble(
        self,
        resnet: np.ndarray | None,
        stats: np.ndarray | None,
        raw_params: np.ndarray,
        *,
        cond: np.ndarray | None = None,
        probe: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rows ``[n, width]`` float32 from features ``[n, 2048]``, statistics ``[n, k]``,
        conditioned values ``[n, m]`` (``vtables.lookup``), probe ``[n, 2]`` and raw
        (un-normalized) VTracer parameters ``[n, 8]`` in PARAM_NAMES order."""
        raw_params = np.asarray(raw_params)
        if raw_params.ndim != 2 or raw_params.shape[1] != len(PARAM_NAMES):
            raise ValueError(f"raw_params must be [n, {len(PARAM_NAMES)}], got {raw_params.shape}")
        n = raw_params.shape[0]
        parts = []
        if self.uses_resnet:
            parts.append(_check_block("resnet", resnet, n, self.resnet_dim))
        for name, block, mean, std, k in (
            ("stats", stats, self.stats_mean, self.stats_std, len(self.stat_names)),
            ("vtracer", cond, self.cond_mean, self.cond_std, len(self.cond_names)),
            ("probe", probe, self.probe_mean, self.probe_std, len(PROBE_NAMES)),
        ):
            if self._uses(name):
                block = _check_block(name, block, n, k)
                mean_ = np.asarray(mean, dtype=np.float32)
                std_ = np.asarray(std, dtype=np.float32)
                parts.append((block - mean_) / std_)
        parts.append(normalize(raw_params, self.ranges))
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)

    def to_meta(self) -> dict[str, Any]:
        """Plain Python values (JSON- and ``weights_only``-safe)."""
        meta = {
            "inputs": self.inputs,
            "resnet_dim": int(self.resnet_dim),
            "stat_names": list(self.stat_names),
            "stats_mean": [float(v) for v in self.stats_mean],
            "stats_std": [float(v) for v in self.stats_std],
            "ranges": {k: [float(v) for v in self.ranges[k]] for k in PARAM_NAMES},
            "layout": self.layout(),
            "width": self.width,
        }
        if self.uses_vtracer:
            meta["cond_names"] = list(self.cond_names)
            meta["cond_mean"] = [float(v) for v in self.cond_mean]
            meta["cond_std"] = [float(v) for v in self.cond_std]
            meta["tables"] = _plain(self.tables)
        if self.uses_probe:
            meta["probe_names"] = list(PROBE_NAMES)
            meta["probe_mean"] = [float(v) for v in self.probe_mean]
            meta["probe_std"] = [float(v) for v in self.probe_std]
        return meta

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> InputSpec:
        spec = cls(
            inputs=meta["inputs"],
            resnet_dim=int(meta["resnet_dim"]),
            stat_names=tuple(meta["stat_names"]),
            stats_mean=tuple(meta["stats_mean"]),
            stats_std=tuple(meta["stats_std"]),
            ranges={k: tuple(v) for k, v in meta["ranges"].items()},
            cond_names=tuple(meta.get("cond_names", ())),
            cond_mean=tuple(meta.get("cond_mean", ())),
            cond_std=tuple(meta.get("cond_std", ())),
            probe_mean=tuple(meta.get("probe_mean", ())),
            probe_std=tuple(meta.get("probe_std", ())),
            tables=meta.get("tables"),
        )
        if "layout" in meta and spec.layout() != list(meta["layout"]):
            raise ValueError(
                "the recorded input layout differs from the one this code builds; "
                "the model file was written by an incompatible version"
            )
        return spec


def _plain(obj: Any) -> Any:
    """Nested mappings/sequences as plain dicts/lists (JSON- and ``weights_only``-safe)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _check_block(name: str, block: np.ndarray | None, n: int, width: int) -> np.ndarray:
    if block is None:
        raise ValueError(f"the model's inputs need {name} features, but none were given")
    block = np.asarray(block, dtype=np.float32)
    if block.shape != (n, width):
        raise ValueError(f"{name} block must be [{n}, {width}], got {list(block.shape)}")
    return block


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


class QualityMLP(nn.Module):
    """``in_features -> hidden... -> 1`` with BatchNorm, ReLU, Dropout per hidden layer."""

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (1024, 512, 256),
        dropout: Sequence[float] = (0.3, 0.2, 0.1),
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(hidden) != len(dropout):
            raise ValueError(f"{len(hidden)} hidden widths but {len(dropout)} dropout rates")
        layers: list[nn.Module] = []
        if input_dropout > 0:
            # Dropout on the raw inputs regularises the wide, mostly-noise ResNet block.
            layers.append(Dropout(input_dropout))
        width = in_features
        for h, p in zip(hidden, dropout, strict=True):
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(), Dropout(p)]
            width = h
        layers += [nn.Linear(width, 1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)
        self.in_features = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # [B, in_features] -> [B]


def build_model(cfg: ModelConfig, in_features: int) -> QualityMLP:
    return QualityMLP(in_features, cfg.hidden, cfg.dropout, cfg.input_dropout)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_config_meta(cfg: ModelConfig, resolved: str | None = None) -> dict[str, Any]:
    """``cfg`` as plain values; ``inputs`` is the resolved request (``requested``: as asked)."""
    return {
        "inputs": resolved or cfg.inputs,
        "requested_inputs": cfg.requested_inputs,
        "hidden": list(cfg.hidden),
        "dropout": list(cfg.dropout),
        "input_dropout": float(cfg.input_dropout),
    }


def model_config_from_meta(meta: Mapping[str, Any]) -> ModelConfig:
    return ModelConfig(
        inputs=meta["inputs"],  # resolved, probe included: rebuilds the same layout
        hidden=tuple(meta["hidden"]),
        dropout=tuple(meta["dropout"]),
        input_dropout=float(meta["input_dropout"]),
    )


# --------------------------------------------------------------------------- model file


def model_meta(
    cfg: ModelConfig, spec: InputSpec, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Everything needed to rebuild and feed the model, as plain Python values."""
    from svg_quality.inputgroups import AUTO, parse_inputs, resolve_inputs

    asked = cfg.requested_inputs
    if AUTO not in parse_inputs(asked) and resolve_inputs(asked, "random") != spec.inputs:
        raise ValueError(f"model.inputs {asked!r} differs from the input spec's {spec.inputs!r}")
    meta = {
        "format": MODEL_FORMAT,
        "model": model_config_meta(cfg, spec.inputs),
        "input": spec.to_meta(),
        "param_names": list(PARAM_NAMES),
        "output": "ssim",
    }
    meta.update(dict(extra or {}))
    return meta


def save_model(path: str | Path, model: nn.Module, meta: Mapping[str, Any]) -> None:
    """Write ``{"state_dict", "meta"}`` atomically; loadable with ``weights_only=True``."""
    from svg_quality.io import atomic_path

    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": dict(meta)}, tmp)


def model_from_meta(meta: Mapping[str, Any]) -> QualityMLP:
    cfg = model_config_from_meta(meta["model"])
    spec = InputSpec.from_meta(meta["input"])
    return build_model(cfg, spec.width)


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
