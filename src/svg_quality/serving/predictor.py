"""Serve the exported predictor: SSIM for a logo and VTracer parameters, and suggestions.

    Predictor.load("models/export")                     # ONNX Runtime; no torch needed
    p.predict("logo.png", {"filter_speckle": 8})        # -> 0.93 (defaults fill the rest)
    p.predict_many("logo.png", [{...}, {...}])          # -> array, one backbone pass
    p.suggest("logo.png", top_k=5, verify=4)            # -> best sets, verified (verify.suggest)

Everything comes from the export directory's ``metadata.json`` (ranges, statistics
mean/std, preprocessing, file names): neither params.yaml nor torch is needed on the
``onnx`` runtime; its imports are numpy, Pillow, scipy and onnxruntime. The ``torch``
runtime rebuilds the same network in PyTorch (the reference the ONNX files are checked
against) and needs the backbone weights featurize used.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svg_quality.config import shown
from svg_quality.inputspec import SIZE_HEAD, InputSpec
from svg_quality.io import file_digest
from svg_quality.logostats import STAT_NAMES, compute_stats
from svg_quality.paramspace import PARAM_NAMES, SPECS, VTRACER_DEFAULTS
from svg_quality.preprocess import backbone_input, load_logo
from svg_quality.probe import measure
from svg_quality.serving.metadata import (
    check_metadata,
    self_test_inputs,
    self_test_mismatch,
    self_test_outputs,
)
from svg_quality.serving.runtime import FILES, GRAPH_FILES, ort_session
from svg_quality.verify import suggest

RUNTIMES = ("onnx", "torch")
METADATA = FILES["metadata"]
# The way back from a damaged or missing export file, named in every load failure.
REEXPORT = "re-export with `dvc repro export`, or restore it with `dvc pull models/export`"
DEFAULT_MIN_SIZE = 16  # data.min_size's default, for exports that predate its record


@dataclass(frozen=True)
class Logo:
    """A logo ready for the model: normalized pixels and its per-logo raw inputs (each
    None when the model does not use it)."""

    rgb: np.ndarray  # uint8 [H, W, 3], what VTracer converts
    image: np.ndarray | None  # float32 [3, S, S], the backbone's input
    stats: np.ndarray | None  # float32 [k], logo statistics
    tables: np.ndarray | None = None  # float32 [TABLE_WIDTH], VTracer tables (vtables)
    probe: np.ndarray | None = None  # float32 [2], real SSIM and log10 bytes at the defaults
    probe_ms: float = 0.0  # what the probe's one conversion cost
    probe_score: Any = None  # that conversion (vectorize.Score): verification reuses it
    probe_vtracer: Mapping[str, Any] | None = None  # the settings it was converted with
    # The long side (px) predictions are for, when the model takes a size input: the
    # parameters stay in the frame of the model's view (paramspace.scale_params maps them)
    long_side: float | None = None


class Predictor:
    """The exported model behind one API, on ONNX Runtime or PyTorch."""

    def __init__(self, export_dir: Path, metadata: dict[str, Any], runtime: str) -> None:
        self.export_dir = export_dir
        self.metadata = metadata
        self.runtime = runtime
        self.spec = InputSpec.from_meta(metadata["input"])
        self.uses_resnet = self.spec.uses_resnet
        self.uses_stats = self.spec.uses_stats
        self.ranges = {n: tuple(float(v) for v in metadata["param_ranges"][n]) for n in PARAM_NAMES}
        self.image_size = int(metadata["logo"]["image_size"])
        self.min_size = int(metadata["logo"].get("min_size", DEFAULT_MIN_SIZE))
        self._backend: Any = None

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, export_dir: str | Path = "models/export", runtime: str = "onnx") -> Predictor:
        """Read ``metadata.json``; the runtime's models load on first use."""
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime {runtime!r} is invalid; allowed: {', '.join(RUNTIMES)}")
        d = Path(export_dir)
        path = d / METADATA
        if not path.is_file():
            raise FileNotFoundError(
                f"{d}: no exported model ({METADATA} missing); run `dvc repro export` or pass "
                "--model with an export directory"
            )
        try:
            metadata = json.loads(path.read_text())
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            raise ValueError(f"{path}: not valid JSON ({exc}); {REEXPORT}") from None
        if not isinstance(metadata, dict) or metadata.get("format") != "svg-quality-export":
            raise ValueError(f"{path}: not an svg-quality export's metadata; {REEXPORT}")
        if list(metadata.get("param_names", [])) != list(PARAM_NAMES):
            raise ValueError(
                f"{path}: parameters {metadata.get('param_names')} differ from this code's "
                f"{list(PARAM_NAMES)}; use the svg-quality version that exported it"
            )
        try:
            check_metadata(metadata)  # names, digests, ranges, signatures: nothing trusted
            predictor = cls(d, metadata, runtime)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}; {REEXPORT}") from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"{path}: incomplete or damaged ({type(exc).__name__}: {shown(str(exc))}); "
                f"{REEXPORT}"
            ) from None
        if "self_test" not in metadata:
            warnings.warn(
                f"{d}: this export records no self-test, so its graphs are served unchecked; "
                "re-export with `dvc repro export`",
                stacklevel=2,
            )
        return predictor

    def model_file(self, key: str) -> Path:
        """The export's file ``key`` (metadata ``files``: a plain name inside the export
        folder), checked against the SHA-256 metadata.json records for it."""
        if key not in self.metadata["files"]:
            raise ValueError(f"{self.export_dir}: this export has no {key} file; {REEXPORT}")
        path = self.export_dir / self.metadata["files"][key]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing from the export; {REEXPORT}")
        want = (self.metadata.get("sha256") or {}).get(path.name)
        if want is None:  # check_metadata refuses this at load; a hand-built Predictor too
            raise ValueError(f"{path}: metadata.json records no SHA-256 for it; {REEXPORT}")
        if file_digest(path) != want:
            raise ValueError(
                f"{path}: its SHA-256 differs from the one metadata.json records (truncated "
                f"or changed since the export); {REEXPORT}"
            )
        return path

    @property
    def backend(self) -> Any:
        if self._backend is None:
            self._backend = (_OnnxBackend if self.runtime == "onnx" else _TorchBackend)(self)
        return self._backend

    # ------------------------------------------------------------------ inputs

    def check_params(self, params: Mapping[str, float] | None = None) -> dict[str, float]:
        """All 8 parameters (VTracer defaults fill the missing ones), validated against
        the training ranges; raises ValueError naming an unknown name or a bad value."""
        out = dict(VTRACER_DEFAULTS)
        for name, value in (params or {}).items():
            if name not in out:
                raise ValueError(
                    f"unknown VTracer parameter {name!r}; known: {', '.join(PARAM_NAMES)}"
                )
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"{name} = {value!r} is invalid; allowed: a number")
            value = float(value)
            lo, hi = self.ranges[name]
            if not lo <= value <= hi:
                raise ValueError(
                    f"{name} = {value:g} is out of range; allowed: [{lo:g}, {hi:g}] "
                    "(the range the model was trained on)"
                )
            if SPECS[name].kind is int and value != round(value):
                raise ValueError(f"{name} = {value:g} is invalid; allowed: an integer")
            out[name] = value
        return out

    def _matrix(self, params_list: Sequence[Mapping[str, float]]) -> np.ndarray:
        if len(params_list) == 0:
            raise ValueError("no parameter sets given; pass at least one")
        rows = [self.check_params(p) for p in params_list]
        return np.array([[r[n] for n in PARAM_NAMES] for r in rows], dtype=np.float32)

    def prepare(self, image: str | Path | Any, long_side: float | None = None) -> Logo:
        """Normalize a logo (path, PIL image or uint8 array) and compute the model's inputs.

        ``long_side``: the long side (px) the SVG will be traced at, for a model with a size
        input (:attr:`sizes`); default the model's view. Parameters keep the view's frame:
        at long side S VTracer gets ``paramspace.scale_params(params, S / view)``."""
        if isinstance(image, Logo):
            return image
        rgb = load_logo(image, self.image_size, self.min_size)
        x = backbone_input(rgb, self.metadata["preprocessing"]) if self.uses_resnet else None
        if self.uses_stats and list(STAT_NAMES) != list(self.metadata["stats"]["names"]):
            raise ValueError(
                "this code computes other logo statistics than the model was trained on; "
                "use the svg-quality version that exported it"
            )
        return logo_inputs(
            rgb,
            self.spec,
            self.metadata["vtracer"],
            x,
            f"{self.export_dir}: the exported model",
            long_side=long_side,
        )

    @property
    def sizes(self) -> tuple[int, ...]:
        """The long sides the model was trained at (more than one: it takes a size input)."""
        return tuple(self.spec.sizes) if self.spec.uses_size else (self.image_size,)

    def size_input(self, long_side: float | None) -> float | None:
        """The size fed for a long side (:func:`size_input`)."""
        return size_input(self.spec, long_side)

    # ------------------------------------------------------------------ predictions

    def predict(self, image: Any, params: Mapping[str, float] | None = None) -> float:
        """Predicted SSIM of VTracer with ``params`` (defaults fill the rest) on ``image``."""
        point = self.check_params(params)
        logo = self.prepare(image)
        raw = np.array([[point[n] for n in PARAM_NAMES]], dtype=np.float32)
        return float(self.backend.run("e2e", self._feed(logo, raw))[0][0, 0])

    def image_features(self, logo: Logo) -> np.ndarray | None:
        """The backbone's ``[1, 2048]`` features of a prepared logo (None without ResNet)."""
        if not self.uses_resnet:
            return None
        raw = np.array([[VTRACER_DEFAULTS[n] for n in PARAM_NAMES]], dtype=np.float32)
        return self._outputs("e2e", self._feed(logo, raw))["image_features"]

    def logo_blocks(self, logo: Logo, image_features: np.ndarray | None) -> dict[str, Any]:
        """The candidates model's per-logo inputs ``[1, w]`` of a prepared logo, by graph
        input name, with its VTracer tables for the per-candidate lookup."""
        return logo_blocks(logo, image_features)

    @property
    def has_size_head(self) -> bool:
        """Whether the export also predicts log10(SVG bytes) (the size head)."""
        return SIZE_HEAD in self.spec.heads

    def _outputs(self, graph: str, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """``graph``'s outputs by name (``spec.graph_outputs``)."""
        outs = self.backend.run(graph, arrays)
        return dict(zip(self.spec.output_names(graph), outs, strict=True))

    def score_candidates(self, logo: Logo, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Predicted SSIM ``[N]`` and log10(SVG bytes) ``[N]`` (None without a size head)
        of raw parameter sets ``[N, 8]`` on a prepared logo: one backbone pass, one pass
        of the candidates model."""
        raw = self._check_matrix(np.array(raw, dtype=np.float32))  # a copy: torch wants it writable
        feed = self.spec.complete(
            {**self.logo_blocks(logo, self.image_features(logo)), "params": raw}
        )
        out = self._outputs("candidates", feed)
        size = out.get(SIZE_HEAD)
        return out["ssim"].reshape(-1), None if size is None else size.reshape(-1)

    def predict_bytes(self, image: Any, params: Mapping[str, float] | None = None) -> float:
        """Predicted SVG bytes of VTracer with ``params`` on ``image`` (needs the size head)."""
        if not self.has_size_head:
            raise ValueError(
                f"{self.export_dir}: this export has no size head; re-export a model trained "
                "with it (`dvc repro`)"
            )
        point = self.check_params(params)
        raw = np.array([[point[n] for n in PARAM_NAMES]], dtype=np.float32)
        return float(10 ** self.score_candidates(self.prepare(image), raw)[1][0])

    def predict_many(
        self, image: Any, params_list: Sequence[Mapping[str, float]] | np.ndarray
    ) -> np.ndarray:
        """Predicted SSIM ``[N]`` for many parameter sets of one logo: one backbone pass,
        one batched pass of the candidates model. An array is taken as raw ``[N, 8]``."""
        if isinstance(params_list, np.ndarray):
            raw = self._check_matrix(params_list)
        else:
            raw = self._matrix(params_list)
        logo = self.prepare(image)
        return self._score(self.logo_blocks(logo, self.image_features(logo)), raw)

    def _check_matrix(self, raw: np.ndarray) -> np.ndarray:
        if raw.ndim != 2 or raw.shape[1] != len(PARAM_NAMES) or raw.shape[0] == 0:
            raise ValueError(f"parameter matrix must be [N, {len(PARAM_NAMES)}], got {raw.shape}")
        lo = np.array([self.ranges[n][0] for n in PARAM_NAMES])
        hi = np.array([self.ranges[n][1] for n in PARAM_NAMES])
        bad = np.argwhere((raw < lo) | (raw > hi))
        if len(bad):
            i, j = bad[0]
            raise ValueError(
                f"{PARAM_NAMES[j]} = {raw[i, j]:g} (row {i}) is out of range; "
                f"allowed: [{lo[j]:g}, {hi[j]:g}]"
            )
        return np.ascontiguousarray(raw, dtype=np.float32)

    def suggest(self, image: Any, **kwargs: Any) -> Any:
        """:func:`svg_quality.verify.suggest` with this predictor (``top_k``, ``candidates``,
        ``objective``, ``verify``, ...): the one suggest that the CLI, convert, evaluate,
        the export's suggestion check and the benchmarks use. Returns its
        :class:`svg_quality.verify.Suggestions`."""
        return suggest(self, image, **kwargs)

    def _feed(self, logo: Logo, raw: np.ndarray) -> dict[str, np.ndarray | None]:
        """The end-to-end model's raw inputs for one logo and one parameter set ``raw [1, 8]``."""
        blocks = self.logo_blocks(logo, None)
        return self.spec.complete({**blocks, "image": _batch(logo.image), "params": raw})

    def _score(self, blocks: Mapping[str, np.ndarray | None], raw: np.ndarray) -> np.ndarray:
        feed = self.spec.complete({**blocks, "params": raw})
        return self.backend.run("candidates", feed)[0].reshape(-1)


def logo_inputs(
    rgb: np.ndarray,
    spec: InputSpec,
    vtracer: Mapping[str, Any],
    image: np.ndarray | None = None,
    what: str = "the model",
    long_side: float | None = None,
) -> Logo:
    """The per-logo raw inputs ``spec`` uses, of a normalized logo ``rgb``: statistics,
    VTracer tables (checked against the model's record, named ``what`` in the error) and
    the probe (VTracer's defaults converted, rendered and scored once, with the ``vtracer``
    settings); ``image`` is the backbone input, when the model takes one; ``long_side``
    the size predictions are for (:func:`size_input`). Shared by the predictor and by
    evaluate's scoring of a trained model file."""
    stats = tables = probe = probe_score = None
    probe_ms = 0.0
    if spec.uses_stats:
        stats = compute_stats(rgb)
    if spec.uses_vtracer:
        from svg_quality import vtables  # lazy: scipy, for VTracer-aware models only

        vtables.check_meta(spec.tables or {}, what)
        tables = vtables.compute_tables(rgb)
    if spec.uses_probe:
        probe, probe_ms, probe_score = measure(rgb, vtracer)
    side = size_input(spec, long_side)
    return Logo(rgb, image, stats, tables, probe, probe_ms, probe_score, dict(vtracer), side)


def size_input(spec: InputSpec, long_side: float | None) -> float | None:
    """The size fed for a long side (None without a size input): the view by default,
    clamped to the trained sizes (a larger logo is scored as the largest trained)."""
    if not spec.uses_size:
        return None
    if long_side is None:
        return float(spec.sizes[0])
    if not np.isfinite(long_side) or long_side <= 0:
        raise ValueError(f"long_side = {long_side!r} is invalid; allowed: px > 0")
    return float(min(max(long_side, spec.sizes[0]), spec.sizes[-1]))


def logo_blocks(logo: Logo, image_features: np.ndarray | None) -> dict[str, Any]:
    """A prepared logo's per-logo graph inputs ``[1, w]`` by name, and its VTracer tables
    (``vtables``, for :meth:`InputSpec.complete`'s per-candidate lookup)."""
    return {
        "image_features": image_features,
        "stats": _batch(logo.stats),
        "probe": _batch(logo.probe),
        "long_side": None if logo.long_side is None else np.array([[logo.long_side]], np.float32),
        "vtables": _batch(logo.tables),
    }


def _batch(x: np.ndarray | None) -> np.ndarray | None:
    return None if x is None else np.ascontiguousarray(x[None], dtype=np.float32)


# --------------------------------------------------------------------------- runtimes


class _OnnxBackend:
    """ONNX Runtime sessions of the end-to-end and candidates models (each opened on first use)."""

    def __init__(self, predictor: Predictor) -> None:
        self.model_file = predictor.model_file
        self.metadata = predictor.metadata
        self.spec = predictor.spec
        self.sessions: dict[str, Any] = {}
        self.paths: dict[str, Path] = {}

    def session(self, graph: str) -> Any:
        """``graph``'s session, opened on first use: its inputs checked against the
        signature metadata.json records, then its self-test run (refused on a mismatch)."""
        if graph not in self.sessions:
            path = self.paths[graph] = self.model_file(GRAPH_FILES[graph])
            try:
                session = ort_session(path)
            except Exception as exc:  # InvalidProtobuf and kin: the file, not the code
                raise ValueError(
                    f"{path}: ONNX Runtime cannot load it ({_reason(exc)}); {REEXPORT}"
                ) from None
            _check_signature(path, session, self.metadata["signatures"][graph])
            record = self.metadata.get("self_test")  # None: an export from before it
            if record is not None and graph in record["graphs"]:
                names = self_test_outputs(self.metadata, graph)
                outs = self._run(path, session, names, self_test_inputs(self.metadata, graph))
                _self_test(path, self.metadata, graph, dict(zip(names, outs, strict=True)))
            self.sessions[graph] = session
        return self.sessions[graph]

    @staticmethod
    def _run(path: Path, session: Any, names: list[str], feed: dict[str, np.ndarray]) -> Any:
        try:
            return session.run(names, feed)
        except Exception as exc:
            if not type(exc).__module__.startswith("onnxruntime"):
                raise  # ours, not the file's: keep the traceback
            raise ValueError(
                f"{path}: ONNX Runtime cannot run it ({_reason(exc)}); {REEXPORT}"
            ) from None

    def warm(self) -> None:
        self.session("candidates")
        if self.spec.uses_resnet:
            self.session("e2e")

    def run(self, graph: str, arrays: Mapping[str, np.ndarray | None]) -> list[np.ndarray]:
        """``graph``'s outputs (``spec.graph_outputs`` order) for the raw input ``arrays``."""
        feed = _feed(self.spec.input_names(graph), arrays)
        session = self.session(graph)
        return self._run(self.paths[graph], session, self.spec.output_names(graph), feed)


class _TorchBackend:
    """The same network in PyTorch: MLP from quality_predictor.pth, backbone rebuilt."""

    def __init__(self, predictor: Predictor) -> None:
        import torch

        from svg_quality.model import load_model
        from svg_quality.serving.graphs import (
            candidate_scorer,
            end_to_end,
            rebuild_backbone,
            size_output,
        )

        self.torch = torch

        def load(key: str) -> tuple[Any, dict[str, Any]]:
            path = predictor.model_file(key)
            try:
                return load_model(path)
            except Exception as exc:  # a truncated or foreign file: unpickling errors and kin
                raise ValueError(
                    f"{path}: cannot load the model file ({_reason(exc)}); {REEXPORT}"
                ) from None

        mlp, meta = load("state_dict")
        spec = self.spec = predictor.spec  # the export's: inputs and heads
        size = size_output(*load("size_state_dict")) if predictor.has_size_head else None
        weights = (meta.get("features") or {}).get("weights") or {}
        backbone = rebuild_backbone(weights)[0] if spec.uses_resnet else None
        self.modules = {
            "e2e": end_to_end(backbone, mlp, spec, size),
            "candidates": candidate_scorer(mlp, spec, size),
        }
        if "self_test" in predictor.metadata:  # the model files' maths, as the ONNX files'
            path = predictor.model_file("state_dict")
            for graph in predictor.metadata["self_test"]["graphs"]:
                outs = self.run(graph, self_test_inputs(predictor.metadata, graph))
                named = dict(zip(spec.output_names(graph), outs, strict=True))
                _self_test(path, predictor.metadata, graph, named)

    def warm(self) -> None:
        pass  # everything was built in __init__

    def run(self, graph: str, arrays: Mapping[str, np.ndarray | None]) -> list[np.ndarray]:
        feed = _feed(self.spec.input_names(graph), arrays)
        with self.torch.inference_mode():
            out = self.modules[graph](*(self.torch.from_numpy(a) for a in feed.values()))
        return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def _reason(exc: BaseException) -> str:
    """``Type: first line`` of an exception from a model file's loader, cut short."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}"


def _check_signature(path: Path, session: Any, signature: Mapping[str, Any]) -> None:
    """The ONNX file's inputs and outputs against the layout metadata.json records: names
    in order, float32, fixed sizes equal and dynamic ones dynamic."""
    got = [(i.name, i.type, list(i.shape)) for i in session.get_inputs()]
    want = [(p["name"], "tensor(float)", p["shape"]) for p in signature["inputs"]]
    if [g[0] for g in got] != [w[0] for w in want]:
        raise ValueError(
            f"{path}: takes inputs {[g[0] for g in got]}, but metadata.json records "
            f"{[w[0] for w in want]} (a model of another layout); {REEXPORT}"
        )
    for (name, dtype, shape), (_, want_type, want_shape) in zip(got, want, strict=True):
        same = dtype == want_type and len(shape) == len(want_shape)
        same = same and all(
            (isinstance(g, int) and g == w) if isinstance(w, int) else not isinstance(g, int)
            for g, w in zip(shape, want_shape, strict=False)
        )
        if not same:
            raise ValueError(
                f"{path}: input {name!r} is {dtype} {shape}, but metadata.json records "
                f"float32 {want_shape} (a model of another layout); {REEXPORT}"
            )
    outputs = [o.name for o in session.get_outputs()]
    missing = [p["name"] for p in signature["outputs"] if p["name"] not in outputs]
    if missing:
        raise ValueError(
            f"{path}: has no output {missing[0]!r} (outputs {outputs}; a model of another "
            f"layout); {REEXPORT}"
        )


def _self_test(
    path: Path, metadata: Mapping[str, Any], graph: str, outputs: Mapping[str, np.ndarray]
) -> None:
    """Refuse to serve a graph whose outputs on the fixed input are not the recorded ones."""
    problem = self_test_mismatch(metadata, graph, outputs)
    if problem is not None:
        raise ValueError(
            f"{path}: fails its self-test ({graph} graph): {problem}; the file is not the "
            f"model that was exported; {REEXPORT}"
        )


def _feed(names: Sequence[str], arrays: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray]:
    feed = {}
    for name in names:
        if arrays.get(name) is None:
            raise ValueError(f"the exported model needs input {name!r}, which was not computed")
        feed[name] = arrays[name]
    return feed
