"""The model's input layout and every exported graph's inputs and outputs (torch-free).

One input row of the MLP is the concatenation of ordered *segments*:

    [resnet features (2048)] [logo statistics, standardized (k)] [8 normalized params]

    [VTracer-conditioned values, standardized (m)] [probe, standardized (2)]
    [size: log2(long side / the view's long side) (1)]

Which segments are present is ``model.inputs`` resolved (:mod:`svg_quality.inputgroups`:
``auto``, or groups of ``resnet``, ``stats``, ``vtracer``, ``probe``). The ``size`` segment
is there when the labels hold more than one long side (``data.sizes``): the model then
predicts for a stated resolution. Every other block describes the logo at the model's view
(long side ``sizes[0]``, ``data.image_size``) and the parameters are in that view's frame: a
prediction at long side S is for VTracer run at S with ``paramspace.scale_params(params,
S / sizes[0])``.
:class:`InputSpec` is the one place that order is defined: the trainer, the model file,
validate, export and the predictor assemble rows through it, and the spec (with its
parameter ranges and statistics mean/std) travels inside every checkpoint and export,
so inference normalizes exactly like training did.

It also owns the *graphs'* interfaces (:meth:`InputSpec.graph_inputs` /
:meth:`InputSpec.graph_outputs`): names, order and shapes of the MLP, end-to-end and
candidates models, which the export writers, parity checks, latency timings and the
predictor's feeds all ask for. A new input segment or output is added here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from svg_quality.inputgroups import groups_of
from svg_quality.paramspace import PARAM_NAMES, normalize
from svg_quality.probe import PROBE_NAMES

INPUT_CHOICES = ("resnet", "resnet+stats", "stats")  # the first three; any resolved one works
RESNET_DIM = 2048  # ResNet-50's pooled feature width
GRAPHS = ("mlp", "e2e", "candidates")
SSIM_HEAD, SIZE_HEAD = "ssim", "log10_svg_bytes"
HEADS = (SSIM_HEAD, SIZE_HEAD)  # the outputs a model may predict, in graph output order
IMAGE_SIZE = 224  # the backbone's input side, when the features' meta records none


@dataclass(frozen=True)
class Segment:
    """One block of input columns.

    ``raw`` names the graph input that carries the block un-normalized (the end-to-end
    model takes the ``image`` instead of ``image_features``); ``per_logo`` blocks are the
    same for every parameter set of a logo, so the candidates model takes them once.
    """

    name: str  # in the layout: resnet, stats, params
    width: int
    columns: tuple[str, ...] | None
    raw: str  # graph input name: image_features, stats, params
    per_logo: bool
    description: str


@dataclass(frozen=True)
class Port:
    """One graph input or output; a ``"batch"`` first axis is dynamic."""

    name: str
    shape: tuple[int | str, ...]
    description: str
    dtype: str = "float32"

    @property
    def batched(self) -> bool:
        return self.shape[0] == "batch"

    def to_meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "description": self.description,
        }


@dataclass(frozen=True)
class InputSpec:
    """How one model input row is built, and everything needed to build it again.

    ``stats_mean``/``stats_std`` are the train split's statistics (empty when the
    inputs use no statistics); ``ranges`` are ``vtracer.ranges`` used to min-max
    normalize the 8 parameters.
    """

    inputs: str
    resnet_dim: int
    stat_names: tuple[str, ...]
    stats_mean: tuple[float, ...]
    stats_std: tuple[float, ...]
    ranges: Mapping[str, tuple[float, float]]
    # What the graphs predict from these rows: SSIM, and log10(SVG bytes) with the size head
    heads: tuple[str, ...] = (SSIM_HEAD,)
    # VTracer-conditioned values (vtables.lookup; mean/std over train rows), the tables'
    # record (vtables.table_meta) and the probe's mean/std over train images
    cond_names: tuple[str, ...] = ()
    cond_mean: tuple[float, ...] = ()
    cond_std: tuple[float, ...] = ()
    probe_mean: tuple[float, ...] = ()
    probe_std: tuple[float, ...] = ()
    tables: Mapping[str, Any] | None = None
    # The long sides (px) the labels were converted at, ascending; the first is the model's
    # view. More than one: the rows carry a size input (log2 of long side / sizes[0]).
    sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if list(self.sizes) != sorted(set(self.sizes)) or any(int(v) < 1 for v in self.sizes):
            raise ValueError(f"sizes {list(self.sizes)} are invalid; allowed: ascending px > 0")
        if not self.heads or self.heads[0] != SSIM_HEAD or any(h not in HEADS for h in self.heads):
            raise ValueError(
                f"heads {list(self.heads)} are invalid; allowed: ['ssim'] or {list(HEADS)}"
            )
        try:
            groups_of(self.inputs)
        except ValueError as exc:
            raise ValueError(f"inputs {self.inputs!r} is invalid: {exc}") from None
        for name, names, mean, std in (
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
        if self.uses_stats and not self.stat_names:
            raise ValueError(
                f"inputs {self.inputs!r} needs logo statistics, but the features have none "
                "(data/features/stats.npy is empty); use model.inputs=resnet"
            )
        if self.uses_stats and not (
            len(self.stats_mean) == len(self.stats_std) == len(self.stat_names)
        ):
            raise ValueError(
                f"stats mean/std have {len(self.stats_mean)}/{len(self.stats_std)} values for "
                f"{len(self.stat_names)} statistics; fit them with dataset.fit_standardizer"
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
    def resnet_width(self) -> int:
        """How many leading row columns are ResNet features (0 when the inputs use none)."""
        return int(self.resnet_dim) if self.uses_resnet else 0

    @property
    def uses_stats(self) -> bool:
        return self._uses("stats")

    @property
    def uses_vtracer(self) -> bool:
        return self._uses("vtracer")

    @property
    def uses_probe(self) -> bool:
        return self._uses("probe")

    @property
    def uses_size(self) -> bool:
        """Whether the rows carry the size input (labels at more than one long side)."""
        return len(self.sizes) > 1

    @property
    def view_size(self) -> int | None:
        """The long side (px) of the view every per-logo block describes (None: unrecorded)."""
        return int(self.sizes[0]) if self.sizes else None

    # ------------------------------------------------------------------ the row layout

    def segments(self) -> list[Segment]:
        """The row's blocks in column order; parameters are always last."""
        out = []
        if self.uses_resnet:
            out.append(
                Segment(
                    "resnet",
                    self.resnet_dim,
                    None,
                    "image_features",
                    True,
                    "ResNet-50 pooled features of the image",
                )
            )
        if self.uses_stats:
            out.append(
                Segment(
                    "stats",
                    len(self.stat_names),
                    tuple(self.stat_names),
                    "stats",
                    True,
                    "raw logo statistics (svg_quality.logostats.compute_stats) in the "
                    "order input.stat_names; standardized inside the graph",
                )
            )
        if self.uses_vtracer:
            out.append(
                Segment(
                    "vtracer",
                    len(self.cond_names),
                    tuple(self.cond_names),
                    "vtracer",
                    False,
                    "raw VTracer-conditioned values of each parameter set "
                    "(svg_quality.vtables.lookup of the logo's tables) in the order "
                    "input.cond_names; standardized inside the graph",
                )
            )
        if self.uses_probe:
            out.append(
                Segment(
                    "probe",
                    len(PROBE_NAMES),
                    PROBE_NAMES,
                    "probe",
                    True,
                    "the logo's real SSIM and log10(SVG bytes) at VTracer's defaults "
                    "(svg_quality.probe.measure); standardized inside the graph",
                )
            )
        if self.uses_size:
            out.append(
                Segment(
                    "size",
                    1,
                    ("log2_scale",),
                    "long_side",
                    True,
                    f"the long side in px the SVG is traced at (trained at {list(self.sizes)}; "
                    f"the parameters are in the frame of the {self.sizes[0]} px view and "
                    "VTracer gets them scaled: svg_quality.paramspace.scale_params)",
                )
            )
        out.append(
            Segment(
                "params",
                len(PARAM_NAMES),
                tuple(PARAM_NAMES),
                "params",
                False,
                f"raw VTracer parameters in the order {list(PARAM_NAMES)}",
            )
        )
        return out

    def layout(self) -> list[dict[str, Any]]:
        """The input columns as ordered segments: ``[{name, start, width, columns?}, ...]``."""
        out, start = [], 0
        for s in self.segments():
            seg: dict[str, Any] = {"name": s.name, "start": start, "width": s.width}
            if s.columns is not None:
                seg["columns"] = list(s.columns)
            out.append(seg)
            start += s.width
        return out

    @property
    def width(self) -> int:
        return sum(s.width for s in self.segments())

    def columns(self, per_logo: bool) -> list[int]:
        """Row column indices of the per-logo (or the per-candidate) segments."""
        out, start = [], 0
        for s in self.segments():
            if s.per_logo == per_logo:
                out += range(start, start + s.width)
            start += s.width
        return out

    def assemble(
        self,
        resnet: np.ndarray | None,
        stats: np.ndarray | None,
        raw_params: np.ndarray,
        *,
        cond: np.ndarray | None = None,
        probe: np.ndarray | None = None,
        long_side: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rows ``[n, width]`` float32 from features ``[n, 2048]``, statistics ``[n, k]``,
        VTracer-conditioned values ``[n, m]`` (``vtables.lookup``), probe ``[n, 2]``, the
        long side in px ``[n, 1]`` each row is for, and raw (un-normalized) VTracer
        parameters ``[n, 8]`` in PARAM_NAMES order."""
        return self.rows(
            {
                "image_features": resnet,
                "stats": stats,
                "vtracer": cond,
                "probe": probe,
                "long_side": long_side,
                "params": raw_params,
            }
        )

    def complete(self, raw: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray | None]:
        """``raw`` with the ``vtracer`` block derived, when the inputs use it and it is not
        given: looked up (``vtables.lookup``) in the per-logo VTracer tables ``vtables``
        (``[n, TABLE_WIDTH]``, one per parameter set, or ``[1, TABLE_WIDTH]`` for all of
        them) at each row of ``params``. Every feed of a graph with a ``vtracer`` input goes
        through here, so training, validate, export and the predictor look up alike."""
        out = dict(raw)
        if not self.uses_vtracer or out.get("vtracer") is not None:
            return out
        from svg_quality import vtables  # lazy: scipy; this module stays numpy-only

        tables, params = out.get("vtables"), out.get("params")
        if tables is None or params is None:
            raise ValueError(
                f"inputs {self.inputs!r} need the logo's VTracer tables (vtables) and the "
                "parameters to look the vtracer block up; compute them with "
                "svg_quality.vtables.compute_tables"
            )
        tables, params = np.asarray(tables), np.asarray(params)
        n = len(params)
        if len(tables) not in (1, n):
            raise ValueError(
                f"vtables must have 1 or {n} rows (one per parameter set), got {len(tables)}"
            )
        logo_rows = np.zeros(n, np.int64) if len(tables) == 1 else np.arange(n)
        out["vtracer"] = vtables.lookup(tables, logo_rows, params)
        return out

    def rows(self, raw: Mapping[str, np.ndarray | None], broadcast: bool = False) -> np.ndarray:
        """Rows ``[n, width]`` from raw blocks keyed by graph input name (``image_features``,
        ``stats``, ``vtracer`` or the ``vtables`` to look it up in, ``probe``, ``params``);
        with ``broadcast``, a per-logo block ``[1, w]`` (the candidates model's feed) is
        repeated for every parameter set."""
        raw = self.complete(raw)
        raw_params = np.asarray(raw["params"])
        if raw_params.ndim != 2 or raw_params.shape[1] != len(PARAM_NAMES):
            raise ValueError(f"raw_params must be [n, {len(PARAM_NAMES)}], got {raw_params.shape}")
        n = raw_params.shape[0]
        parts = []
        for s in self.segments():
            block = raw.get(s.raw)
            if broadcast and s.per_logo and block is not None and len(block) == 1:
                block = np.repeat(np.asarray(block), n, 0)
            if s.name == "params":  # normalized from the raw values, before any float32 cast
                parts.append(normalize(raw_params, self.ranges))
            else:
                parts.append(self._normalize(s, _check_block(s.name, block, n, s.width)))
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)

    def _normalize(self, s: Segment, block: np.ndarray) -> np.ndarray:
        if s.name == "size":
            return log2_scale(block, self.sizes[0])
        shift_scale = self.affine(s.name)
        if shift_scale is None:
            return block
        mean = np.asarray(shift_scale[0], dtype=np.float32)
        std = np.asarray(shift_scale[1], dtype=np.float32)
        return (block - mean) / std

    def affine(self, name: str) -> tuple[list[float], list[float]] | None:
        """``(shift, scale)`` with ``(raw - shift) / scale`` the normalized segment ``name``,
        for the graphs that normalize inside (None: the segment is used as it is)."""
        if name == "params":
            lo = np.array([self.ranges[n][0] for n in PARAM_NAMES], dtype=np.float32)
            hi = np.array([self.ranges[n][1] for n in PARAM_NAMES], dtype=np.float32)
            return lo.tolist(), (hi - lo).tolist()  # the span in float32, as the graphs use it
        if name == "stats":
            return [float(v) for v in self.stats_mean], [float(v) for v in self.stats_std]
        if name == "vtracer":
            return [float(v) for v in self.cond_mean], [float(v) for v in self.cond_std]
        if name == "probe":
            return [float(v) for v in self.probe_mean], [float(v) for v in self.probe_std]
        return None

    # ------------------------------------------------------------------ graph interfaces

    def graph_inputs(
        self, graph: str, feature_dim: int | None = None, input_size: int = IMAGE_SIZE
    ) -> list[Port]:
        """The inputs of ``graph`` (``mlp``, ``e2e``, ``candidates``) in order.

        The MLP takes assembled rows. The end-to-end and candidates models take the raw
        blocks: the image (or its features) first, then the parameters, then the other
        per-logo blocks in layout order; the candidates model takes per-logo blocks once
        (``[1, w]``) and the parameters as ``[N, 8]``.
        """
        _check_graph(graph)
        if graph == "mlp":
            return [
                Port(
                    "features",
                    ("batch", self.width),
                    "model input rows laid out as input.layout: ResNet features, "
                    "standardized statistics, min-max normalized parameters",
                )
            ]
        dim = int(feature_dim or self.resnet_dim)
        segs = self.segments()
        ordered = (
            [s for s in segs if s.name == "resnet"]
            + [s for s in segs if s.name == "params"]
            + [s for s in segs if s.name not in ("resnet", "params")]
        )
        ports = []
        for s in ordered:
            batch: int | str = 1 if graph == "candidates" and s.per_logo else "batch"
            if s.name == "resnet" and graph == "e2e":
                ports.append(
                    Port(
                        "image",
                        (batch, 3, input_size, input_size),
                        "the logo letterboxed on white and ImageNet-normalized (see preprocessing)",
                    )
                )
            else:
                width = dim if s.name == "resnet" else s.width
                ports.append(Port(s.raw, (batch, width), s.description))
        return ports

    def graph_outputs(self, graph: str, feature_dim: int | None = None) -> list[Port]:
        """The outputs of ``graph``: ``ssim [B, 1]`` first, then ``log10_svg_bytes [B, 1]``
        with the size head; the end-to-end model also returns the image features last
        (one backbone pass serves a whole suggestion)."""
        _check_graph(graph)
        out = [Port("ssim", ("batch", 1), "predicted SSIM in [0, 1]")]
        if SIZE_HEAD in self.heads:
            out.append(Port(SIZE_HEAD, ("batch", 1), "predicted log10 of the SVG's size in bytes"))
        if graph == "e2e" and self.uses_resnet:
            dim = int(feature_dim or self.resnet_dim)
            out.append(
                Port("image_features", ("batch", dim), "ResNet-50 pooled features of the image")
            )
        return out

    def input_names(self, graph: str) -> list[str]:
        return [p.name for p in self.graph_inputs(graph)]

    def output_names(self, graph: str) -> list[str]:
        return [p.name for p in self.graph_outputs(graph)]

    def signatures(self, feature_dim: int | None, input_size: int | None) -> dict[str, Any]:
        """Names, shapes and meaning of every graph's inputs and outputs (for the metadata)."""
        size = int(input_size or IMAGE_SIZE)
        return {
            g: {
                "inputs": [p.to_meta() for p in self.graph_inputs(g, feature_dim, size)],
                "outputs": [p.to_meta() for p in self.graph_outputs(g, feature_dim)],
            }
            for g in GRAPHS
        }

    # ------------------------------------------------------------------ metadata

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
            **({"heads": list(self.heads)} if self.heads != (SSIM_HEAD,) else {}),
            **({"sizes": [int(v) for v in self.sizes]} if self.sizes else {}),
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
            heads=tuple(meta.get("heads", (SSIM_HEAD,))),
            cond_names=tuple(meta.get("cond_names", ())),
            cond_mean=tuple(meta.get("cond_mean", ())),
            cond_std=tuple(meta.get("cond_std", ())),
            probe_mean=tuple(meta.get("probe_mean", ())),
            probe_std=tuple(meta.get("probe_std", ())),
            tables=meta.get("tables"),
            sizes=tuple(int(v) for v in meta.get("sizes", ())),
        )
        if "layout" in meta and spec.layout() != list(meta["layout"]):
            raise ValueError(
                "the recorded input layout differs from the one this code builds; "
                "the model file was written by an incompatible version"
            )
        return spec


def log2_scale(long_side: np.ndarray, view: int) -> np.ndarray:
    """The size input's value: log2(long side / the view's long side); the graphs compute
    the same from their ``long_side`` input (``serving.graphs``)."""
    block = np.asarray(long_side, dtype=np.float32)
    if not np.all(np.isfinite(block)) or np.any(block <= 0):
        raise ValueError("long_side must be a positive number of pixels")
    return np.log2(block / np.float32(view)).astype(np.float32)


def _plain(obj: Any) -> Any:
    """Nested mappings/sequences as plain dicts/lists (JSON- and ``weights_only``-safe)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _check_graph(graph: str) -> None:
    if graph not in GRAPHS:
        raise ValueError(f"graph {graph!r} is unknown; allowed: {', '.join(GRAPHS)}")


def _check_block(name: str, block: np.ndarray | None, n: int, width: int) -> np.ndarray:
    if block is None:
        raise ValueError(f"the model's inputs need {name} features, but none were given")
    block = np.asarray(block, dtype=np.float32)
    if block.shape != (n, width):
        raise ValueError(f"{name} block must be [{n}, {width}], got {list(block.shape)}")
    return block
