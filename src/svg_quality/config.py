"""Typed, strict configuration: each params.yaml section loads into a frozen dataclass.

Unknown keys, wrong types and out-of-range values raise ``ValueError`` naming the
key (as ``section.key``), the offending value and what is allowed, so a typo in
``dvc exp run -S train.lr=...`` fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from svg_quality.artsets import VENDORED, check_sets
from svg_quality.inputgroups import parse_inputs
from svg_quality.metrics import METRIC_NAMES
from svg_quality.paramsfile import read_yaml
from svg_quality.paramspace import MAX_CANDIDATES, SHOWN_CHARS, SPECS, shown, validate_ranges

T = TypeVar("T")

LOGO_TYPES = ("simple", "text", "gradient", "complex")
MAX_SIZE = 4096  # px: the largest data.sizes entry (a 4096 px logo is drawn on 8192 px)


# --------------------------------------------------------------------------- helpers


def _key(key: str) -> str:
    """A dotted key for a message; cut like :func:`shown` (mapping keys come from the file)."""
    return key if len(key) <= SHOWN_CHARS else f"{key[: SHOWN_CHARS - 3]}..."


def _fail(key: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"params.yaml: {_key(key)} = {shown(value)} is invalid; allowed: {allowed}")


def check_range(key: str, value: float, lo: float | None = None, hi: float | None = None) -> None:
    """Raise ValueError naming ``key`` unless ``lo <= value <= hi``."""
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else f"{lo}"
        hi_s = "inf" if hi is None else f"{hi}"
        raise _fail(key, value, f"a value in [{lo_s}, {hi_s}]")


def check_choice(key: str, value: Any, choices: typing.Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise _fail(key, value, "one of " + ", ".join(repr(c) for c in choices))


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a type hint; ints are accepted for floats, lists become tuples."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ValueError as exc:
                errors.append(str(exc))
        raise _fail(key, value, " or ".join(getattr(a, "__name__", str(a)) for a in args))
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _fail(key, value, "a list")
        item = args[0]
        return tuple(_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _fail(key, value, "a mapping")
        return {str(k): _coerce(f"{key}.{k}", v, args[1]) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise _fail(key, value, "true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, value, "an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(key, value, "a number")
        if not math.isfinite(value):  # NaN passes every range check; inf is never meant
            raise _fail(key, value, "a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _fail(key, value, "a string")
        return value
    if hint is Any:
        return value
    raise TypeError(f"unsupported config type {hint!r} for {key}")


def build(cls: type[T], section: str, raw: Mapping[str, Any] | None) -> T:
    """Build the dataclass ``cls`` from the mapping ``raw`` (params.yaml section ``section``).

    Missing keys take the dataclass defaults; unknown keys raise.
    """
    raw = dict(raw or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        key = shown(f"{section}.{unknown[0]}")
        raise ValueError(f"params.yaml: unknown key {key}; {section} accepts: {', '.join(names)}")
    values = {k: _coerce(f"{section}.{k}", v, hints[k]) for k, v in raw.items()}
    return cls(**values)


# --------------------------------------------------------------------------- sections


SOURCE_KINDS = ("synthetic", "artwork")  # data.sources entries besides folders


@dataclass(frozen=True)
class DataConfig:
    # mixed in one prepare: "synthetic" (per_type per logo type), "artwork" (per_set icons of
    # each set in `artwork`, real vector art), and folders laid out as <logo_type>/<file>
    sources: tuple[str, ...] = ("synthetic",)
    per_type: int = 100  # synthetic logos per logo type
    artwork: tuple[str, ...] = VENDORED  # pinned icon sets (svg_quality.artsets.TRAINING)
    per_set: int = 30  # icons per artwork set, type-balanced (artwork.sample)
    seed: int = 0
    image_size: int = 256  # longest side after normalization
    min_size: int = 16  # images with a side shorter than this are rejected
    max_pixels: int = 50_000_000  # decompression-bomb guard (width * height)
    # Larger long sides (px) a share of the logos is also stored (and labelled) at, so the
    # model learns how a logo's size changes its conversion; ascending, each > image_size
    sizes: tuple[int, ...] = ()
    size_share: float = 0.25  # share of the logos of each type and split that get `sizes`

    def __post_init__(self) -> None:
        if not self.sources or any(not s for s in self.sources):
            raise _fail(
                "data.sources", list(self.sources), "a list of 'synthetic', 'artwork' or folders"
            )
        if len(set(self.sources)) != len(self.sources):
            raise _fail("data.sources", list(self.sources), "each source once")
        check_sets("data.artwork", self.artwork)
        if "artwork" in self.sources and not self.artwork:
            raise _fail("data.artwork", [], "at least one set when data.sources has 'artwork'")
        check_range("data.per_set", self.per_set, 1, 100_000)
        check_range("data.per_type", self.per_type, 1, 100_000)
        check_range("data.image_size", self.image_size, 32, 4096)
        check_range("data.min_size", self.min_size, 1, self.image_size)
        check_range("data.max_pixels", self.max_pixels, 1)
        lows = (self.image_size, *self.sizes)[: len(self.sizes)]  # what each must be above
        if any(not low < size <= MAX_SIZE for low, size in zip(lows, self.sizes, strict=True)):
            raise _fail(
                "data.sizes",
                list(self.sizes),
                f"strictly ascending long sides in px, each above data.image_size "
                f"({self.image_size}) and at most {MAX_SIZE}, or [] for none",
            )
        check_range("data.size_share", self.size_share, 0.0, 1.0)


@dataclass(frozen=True)
class SplitConfig:
    seed: int = 42
    val: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        check_range("split.val", self.val, 0.0, 0.5)
        check_range("split.test", self.test, 0.0, 0.5)
        if self.val + self.test >= 0.9:
            raise _fail("split.val + split.test", self.val + self.test, "a sum below 0.9")


@dataclass(frozen=True)
class VtracerConfig:
    colormode: str = "color"
    hierarchical: str = "stacked"
    mode: str = "spline"
    # name -> [low, high]; checked against VTracer's real limits in svg_quality.paramspace
    ranges: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("vtracer.colormode", self.colormode, ("color", "binary"))
        check_choice("vtracer.hierarchical", self.hierarchical, ("stacked", "cutout"))
        check_choice("vtracer.mode", self.mode, ("spline", "polygon", "none"))
        validate_ranges(self.ranges)


@dataclass(frozen=True)
class LabelConfig:
    samples_per_image: int = 12
    # parameter sets per logo at each of its larger sizes (logos.csv `sizes`, data.sizes)
    samples_per_size: int = 4
    seed: int = 0
    workers: int = 0  # 0 = all cores
    timeout_s: float = 60.0  # per-sample limit; a hung conversion becomes a "timeout" row
    cluster: str | None = None  # Dask scheduler address, e.g. "tcp://10.0.0.5:8786"
    # Share of the non-default samples drawn inside `local_box` (a box around VTracer's
    # defaults and where `suggest` picks) instead of over all of vtracer.ranges.
    local_share: float = 0.0
    local_box: dict[str, tuple[float, ...]] = field(default_factory=dict)  # name -> [low, high]

    def __post_init__(self) -> None:
        check_range("label.samples_per_image", self.samples_per_image, 1, 4096)
        check_range("label.samples_per_size", self.samples_per_size, 1, 4096)
        check_range("label.workers", self.workers, 0, 1024)
        check_range("label.timeout_s", self.timeout_s, 0.1)
        check_range("label.local_share", self.local_share, 0.0, 1.0)
        for name, box in self.local_box.items():
            key = f"label.local_box.{name}"
            if name not in SPECS:
                raise _fail(key, list(box), "a VTracer parameter: " + ", ".join(SPECS))
            default = SPECS[name].default
            if len(box) != 2 or not box[0] < box[1] or not box[0] <= default <= box[1]:
                raise _fail(
                    key, list(box), f"[low, high] with low < high around the default {default}"
                )


@dataclass(frozen=True)
class FeaturesConfig:
    weights: str = "auto"  # imagenet | random | auto
    weights_path: str | None = None  # local ResNet-50 state dict for `imagenet`
    seed: int = 0  # initialisation seed for `random`
    batch_size: int = 64
    # DataLoader workers decoding, letterboxing and computing logo statistics in parallel;
    # "auto" = one per core, at most 8; 0 = in the main process
    num_workers: int | str = "auto"
    device: str = "auto"  # auto | cpu | cuda
    # auto: bf16 (else fp16) on CUDA, bf16 on a CPU with hardware bf16, else fp32 | off | bf16 | fp16
    amp: str = "auto"

    def __post_init__(self) -> None:
        check_choice("features.weights", self.weights, ("imagenet", "random", "auto"))
        check_range("features.batch_size", self.batch_size, 1, 4096)
        if isinstance(self.num_workers, str):
            check_choice("features.num_workers", self.num_workers, ("auto",))
        else:
            check_range("features.num_workers", self.num_workers, 0, 64)
        check_choice("features.device", self.device, ("auto", "cpu", "cuda"))
        check_choice("features.amp", self.amp, ("auto", "off", "bf16", "fp16"))
        if self.amp == "fp16" and self.device == "cpu":
            allowed = "'auto', 'off' or 'bf16' with features.device cpu"
            raise _fail("features.amp", self.amp, allowed)


AUTO_MEMBERS = 2  # model.members: auto, except for the ResNet-only layout (one MLP)


@dataclass(frozen=True)
class ModelConfig:
    inputs: str = "resnet"  # auto | groups of resnet, stats, vtracer, probe joined by +
    hidden: tuple[int, ...] = (1024, 512, 256)
    dropout: tuple[float, ...] = (0.3, 0.2, 0.1)
    input_dropout: float = 0.0
    probe: bool = False  # add the real SSIM / SVG size at VTracer's defaults as inputs
    # The ResNet block (when the inputs use it): 0 = the raw 2048 features, else a fixed
    # PCA projection to this many whitened components fitted on the train images
    resnet_pca: int = 0
    resnet_dropout: float = 0.0  # dropout on the ResNet block only (after the projection)
    # none | periodic | auto: periodic embeds each non-ResNet column -> ReLU(W [sin 2pi c x,
    # cos 2pi c x] + b), embedding_frequencies trained frequencies c ~ N(0, embedding_sigma),
    # embedding_dim outputs per column (model.PeriodicEmbedding), before the first Linear;
    # auto = periodic, except none for the ResNet-only layout (ResNet features + 8 params)
    embedding: str = "none"
    embedding_frequencies: int = 16
    embedding_dim: int = 16
    embedding_sigma: float = 0.1
    # K independent members side by side in one MLP, each trained on its own loss and
    # predicting the sigmoid of their mean logit: `hidden` is split between them (each
    # width / K), each has its own embedding. auto = 2, but 1 for the ResNet-only layout
    members: int | str = 1

    def __post_init__(self) -> None:
        parse_inputs(self.inputs)
        if not self.hidden:
            raise _fail("model.hidden", self.hidden, "at least one layer width")
        for i, w in enumerate(self.hidden):
            check_range(f"model.hidden[{i}]", w, 1, 65536)
        if len(self.dropout) != len(self.hidden):
            raise _fail(
                "model.dropout",
                list(self.dropout),
                f"{len(self.hidden)} values (one per hidden layer)",
            )
        for i, p in enumerate(self.dropout):
            check_range(f"model.dropout[{i}]", p, 0.0, 0.95)
        check_range("model.input_dropout", self.input_dropout, 0.0, 0.95)
        check_range("model.resnet_pca", self.resnet_pca, 0, 2048)
        check_range("model.resnet_dropout", self.resnet_dropout, 0.0, 0.95)
        check_choice("model.embedding", self.embedding, ("none", "periodic", "auto"))
        check_range("model.embedding_frequencies", self.embedding_frequencies, 1, 256)
        check_range("model.embedding_dim", self.embedding_dim, 1, 256)
        check_range("model.embedding_sigma", self.embedding_sigma, 1e-4, 100.0)
        if isinstance(self.members, str):
            check_choice("model.members", self.members, ("auto",))
        else:
            check_range("model.members", self.members, 1, 16)
        k = AUTO_MEMBERS if self.members == "auto" else int(self.members)
        for i, w in enumerate(self.hidden):
            if w % k:
                raise _fail(
                    f"model.hidden[{i}]",
                    w,
                    f"a multiple of model.members ({self.members!r}: {k} members share it)",
                )

    @property
    def requested_inputs(self) -> str:
        """``inputs`` with ``+probe`` when ``probe`` is set (resolve with inputgroups)."""
        return f"{self.inputs}+probe" if self.probe and "probe" not in self.inputs else self.inputs

    @property
    def uses_probe(self) -> bool:
        """Whether the model reads the probe (``probe: true`` or ``probe`` in ``inputs``)."""
        return "probe" in self.requested_inputs.split("+")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # adamw | adam | sgd
    momentum: float = 0.9  # sgd only
    scheduler: str = "cosine"  # cosine (with linear warmup) | step | none
    warmup_epochs: int = 2
    step_size: int = 20  # step scheduler
    gamma: float = 0.5  # step scheduler
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    monitor: str = "val_rmse"  # val_loss | val_rmse | val_pearson
    patience: int = 10  # epochs without improvement before stopping; 0 disables
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto (bf16/fp16 on CUDA, off on CPU) | off | bf16 | fp16
    resume: bool = False
    # > 0: batches hold whole logos and the loss adds this weight times the within-logo
    # variance of the errors (the part of the MSE that ranks one logo's parameter sets)
    logo_weight: float = 0.0
    # > 0: batches hold whole logos and the loss adds this weight times a pairwise ranking
    # loss over each logo's sets (softplus of the wrongly ordered prediction gaps / rank_tau,
    # trainer.within_group_rank); SSIM head only
    rank_weight: float = 0.0
    rank_tau: float = 0.03  # SSIM units: gaps much wider than this count as ranked

    def __post_init__(self) -> None:
        check_range("train.epochs", self.epochs, 1, 100_000)
        check_range("train.batch_size", self.batch_size, 1, 1_000_000)
        check_range("train.lr", self.lr, 1e-8, 10.0)
        check_range("train.weight_decay", self.weight_decay, 0.0, 10.0)
        check_choice("train.optimizer", self.optimizer, ("adamw", "adam", "sgd"))
        check_range("train.momentum", self.momentum, 0.0, 1.0)
        check_choice("train.scheduler", self.scheduler, ("cosine", "step", "none"))
        check_range("train.warmup_epochs", self.warmup_epochs, 0, self.epochs)
        check_range("train.step_size", self.step_size, 1)
        check_range("train.gamma", self.gamma, 0.0, 1.0)
        check_range("train.grad_clip", self.grad_clip, 0.0)
        check_choice("train.monitor", self.monitor, ("val_loss", "val_rmse", "val_pearson"))
        check_range("train.patience", self.patience, 0)
        check_choice("train.device", self.device, ("auto", "cpu", "cuda"))
        check_choice("train.amp", self.amp, ("auto", "off", "bf16", "fp16"))
        check_range("train.logo_weight", self.logo_weight, 0.0, 1000.0)
        check_range("train.rank_weight", self.rank_weight, 0.0, 1000.0)
        check_range("train.rank_tau", self.rank_tau, 1e-6, 1.0)

    @property
    def logo_batches(self) -> bool:
        """Whether batches hold whole logos (a within-logo loss term is on)."""
        return self.logo_weight > 0 or self.rank_weight > 0


@dataclass(frozen=True)
class ValidateConfig:
    min_type_examples: int = 30
    cv_folds: int = 5
    cv_epochs: int = 60
    cv_val_share: float = 0.15  # share of each fold's training images held out for early stopping
    seed: int = 0
    fail_on_gates: bool = False
    # gate name -> threshold: a metric of svg_quality.metrics.METRIC_NAMES on the test rows,
    # or type_<metric> for every reported logo type; rmse-like metrics pass at <=, others >=
    gates: dict[str, float] = field(
        default_factory=lambda: {
            "pearson": 0.90,
            "rmse": 0.05,
            "acc_0_1": 0.85,
            "type_pearson": 0.85,
        }
    )
    # folders laid out as <logo_type>/<image file>, labelled with VTracer and scored by the
    # trained model (svg_quality.evaluate): metrics under extra/<folder name>/...
    extra_sets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names: dict[str, str] = {}
        for i, folder in enumerate(self.extra_sets):
            key = f"validate.extra_sets[{i}]"
            if not folder.strip() or not Path(folder).is_dir():
                raise _fail(key, folder, "an existing folder laid out as <logo_type>/<image file>")
            name = Path(folder).resolve().name
            if name in names:
                raise _fail(
                    key, folder, f"a folder not named {shown(name)} like {shown(names[name])}"
                )
            names[name] = folder
        check_range("validate.min_type_examples", self.min_type_examples, 1)
        check_range("validate.cv_folds", self.cv_folds, 0, 100)
        if self.cv_folds == 1:
            raise _fail("validate.cv_folds", 1, "0 (off) or at least 2")
        check_range("validate.cv_epochs", self.cv_epochs, 1)
        check_range("validate.cv_val_share", self.cv_val_share, 0.05, 0.5)

        allowed = (*METRIC_NAMES, *(f"type_{m}" for m in METRIC_NAMES))
        for name, threshold in self.gates.items():
            check_choice(f"validate.gates.{name}", name, allowed)
            if threshold != threshold:  # NaN would make every comparison fail silently
                raise _fail(f"validate.gates.{name}", threshold, "a number")


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 18
    parity_batch: int = 64  # the larger batch of the MLP formats' parity check
    latency_repeats: int = 200  # timed calls per MLP format at batch 1 (a quarter at 256)
    suggest_candidates: int = 2048  # Sobol parameter sets scored by `suggest` (+ defaults)
    suggest_logos: int = 0  # test logos in the suggestion check (0 = all)
    e2e_batch: int = 8  # larger batch for the end-to-end model (ResNet-50 on CPU is slow)
    e2e_repeats: int = 6  # timed end-to-end calls at batch 1 (a third at e2e_batch)
    registry_name: str | None = "svg-quality"  # MLflow registered model; null: don't register

    def __post_init__(self) -> None:
        check_range("export.opset", self.opset, 18, 30)  # the dynamo exporter emits >= 18
        check_range("export.parity_batch", self.parity_batch, 2)
        check_range("export.latency_repeats", self.latency_repeats, 1)

        check_range("export.suggest_candidates", self.suggest_candidates, 1, MAX_CANDIDATES)
        check_range("export.suggest_logos", self.suggest_logos, 0)
        check_range("export.e2e_batch", self.e2e_batch, 2, 1024)
        check_range("export.e2e_repeats", self.e2e_repeats, 1)


@dataclass(frozen=True)
class TrackingConfig:
    # MLFLOW_TRACKING_URI wins over uri; None: sqlite:///<repo root>/mlflow.db (tracking.py)
    uri: str | None = None
    experiment: str = "svg-quality"

    def __post_init__(self) -> None:
        if self.uri is not None and (not self.uri.strip() or ":" not in self.uri):
            raise ValueError(
                f"tracking.uri = {shown(self.uri)} is invalid; allowed: null or a URI such as "
                "http://host:5000 or sqlite:///mlflow.db"
            )
        if not self.experiment.strip():
            raise ValueError("tracking.experiment is empty; allowed: an experiment name")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "split": SplitConfig,
    "vtracer": VtracerConfig,
    "label": LabelConfig,
    "features": FeaturesConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "validate": ValidateConfig,
    "export": ExportConfig,
    "tracking": TrackingConfig,
}


@dataclass(frozen=True)
class Params:
    data: DataConfig
    split: SplitConfig
    vtracer: VtracerConfig
    label: LabelConfig
    features: FeaturesConfig
    model: ModelConfig
    train: TrainConfig
    validate: ValidateConfig
    export: ExportConfig
    tracking: TrackingConfig

    def __post_init__(self) -> None:
        for name, (lo, hi) in self.label.local_box.items():
            r_lo, r_hi = self.vtracer.ranges[name]
            if lo < r_lo or hi > r_hi:
                allowed = f"a box inside vtracer.ranges.{name} = [{r_lo}, {r_hi}]"
                raise _fail(f"label.local_box.{name}", [lo, hi], allowed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_params(raw: Mapping[str, Any]) -> Params:
    """Validate a whole params mapping (as read from params.yaml)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"params.yaml: expected a mapping at the top level, got {shown(raw)}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ValueError(
            f"params.yaml: unknown section {shown(unknown[0])}; sections: {', '.join(SECTIONS)}"
        )
    return Params(**{name: build(cls, name, raw.get(name)) for name, cls in SECTIONS.items()})


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: params file not found; run from the repository root")
    return parse_params(read_yaml(path))


def flatten(d: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}`` (for MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + sep, sep))
        else:
            out[key] = v
    return out
