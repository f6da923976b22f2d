"""The image backbone: a ResNet-50 trunk (classifier removed), its weights and preprocessing.

Preprocessing suits logos: the logo is *letterboxed* onto a white 224x224 square (scaled
so its longest side is 224, centred), so the whole mark is seen - a centre crop would cut
the ends off a wide wordmark - and then normalized with the ImageNet mean/std. The same
functions serve featurize, the predictor and the end-to-end ONNX export, so a logo is
preprocessed identically everywhere:

    letterbox(img) -> PIL 224x224 RGB
    to_tensor(img) -> float32 [3, 224, 224], normalized   (one image)
    normalize(x_uint8) -> float32 [B, 3, 224, 224]          (a batch, on any device)

Weights (``features.weights``): ``imagenet`` (torchvision's ResNet50_Weights from the
torch hub cache or downloaded, or a local state dict at ``features.weights_path``),
``random`` (seeded initialisation: offline machines and tests) or ``auto`` (ImageNet when
obtainable, else random with a loud warning). :class:`WeightsInfo` records what was
actually used, down to a digest of the tensors.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import socket
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from svg_quality.images import to_rgb_on_white

BACKBONE = "torchvision.resnet50"
FEATURE_DIM = 2048  # global-average-pooled output of the last stage
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKGROUND = (255, 255, 255)
WEIGHT_CHOICES = ("imagenet", "random", "auto")
DOWNLOAD_TIMEOUT_S = 30.0  # a firewalled machine can hang on connect; fail instead

# Everything that decides the pixels the network sees; part of the features fingerprint.
PREPROCESSING: dict[str, Any] = {
    "name": "letterbox",
    "version": 1,
    "size": INPUT_SIZE,
    "background": list(BACKGROUND),
    "resample": "bicubic",
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
    "input": "float32 [B, 3, 224, 224] RGB, (x / 255 - mean) / std",
}


# --------------------------------------------------------------------------- preprocessing


def letterbox(img: Image.Image, size: int = INPUT_SIZE) -> Image.Image:
    """Scale ``img`` so its longest side is ``size`` and centre it on a white square.

    Transparent areas are composited on white first, like the normalized logos.
    """
    if img.mode != "RGB":
        img = to_rgb_on_white(img)
    w, h = img.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    if (nw, nh) == (size, size):
        return img
    canvas = Image.new("RGB", (size, size), BACKGROUND)
    canvas.paste(img, ((size - nw) // 2, (size - nh) // 2))
    return canvas


def letterbox_array(img: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """``letterbox`` as ``uint8 [size, size, 3]`` (what the DataLoader workers ship)."""
    return np.asarray(letterbox(img, size), dtype=np.uint8)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """``uint8 [B, 3, H, W]`` (any memory format, any device) -> normalized float32."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def to_tensor(img: Image.Image) -> torch.Tensor:
    """A letterboxed image -> normalized ``float32 [3, 224, 224]`` (letterboxes if needed)."""
    if img.size != (INPUT_SIZE, INPUT_SIZE) or img.mode != "RGB":
        img = letterbox(img)
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    return normalize(x.unsqueeze(0))[0]


def preprocess(img: Image.Image) -> torch.Tensor:
    """Any PIL logo -> the network input ``float32 [3, 224, 224]``."""
    return to_tensor(letterbox(img))


# --------------------------------------------------------------------------- the network


def resnet50_trunk() -> nn.Module:
    """ResNet-50 with ``fc`` replaced by identity: ``[B, 3, 224, 224] -> [B, 2048]``."""
    import torchvision

    model = torchvision.models.resnet50(weights=None)
    model.fc = nn.Identity()
    return model


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a trunk carries; recorded in features/meta.json and read by train."""

    requested: str  # features.weights: imagenet | random | auto
    used: str  # imagenet | random
    source: str  # e.g. "torchvision:IMAGENET1K_V2 (<file>)", "file:<path>", "seed:0"
    digest: str  # sha256 over the trunk's tensors: the cache key for these weights
    seed: int | None = None  # for random weights

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class WeightsUnavailable(RuntimeError):
    """ImageNet weights are neither cached nor downloadable."""


def load_backbone(
    weights: str = "auto", weights_path: str | Path | None = None, seed: int = 0
) -> tuple[nn.Module, WeightsInfo]:
    """Build the trunk with the requested weights, in eval mode on the CPU.

    A ``weights_path`` that does not exist is an error for ``imagenet`` and ``auto``
    alike: the user named a file, so falling back would hide a typo.
    """
    if weights not in WEIGHT_CHOICES:
        raise ValueError(
            f"features.weights = {weights!r} is invalid; allowed: {', '.join(WEIGHT_CHOICES)}"
        )
    if weights == "random":
        return _random_trunk(seed, requested="random")
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"features.weights_path: no ResNet-50 state dict at {str(path)!r} "
                f"(looked at {path.resolve()}); fix the path, or set features.weights_path: "
                "null to use torchvision's ImageNet weights, or features.weights: random"
            )
        model = resnet50_trunk()
        _load_into(model, _read_state_dict(path), path)
        return _finish(model, weights, "imagenet", f"file:{path}")
    try:
        state, source = _torchvision_imagenet()
    except WeightsUnavailable as exc:
        if weights == "imagenet":
            raise WeightsUnavailable(
                f"{exc}. Put a ResNet-50 state dict there or set features.weights_path to "
                "one, or use features.weights: auto/random on an offline machine"
            ) from exc
        warnings.warn(
            f"FEATURES USE RANDOM WEIGHTS (seed {seed}): ImageNet ResNet-50 weights are not "
            f"available ({exc}). Features from a random network predict far worse; set "
            "features.weights_path to a local state dict or run once with internet access.",
            RuntimeWarning,
            stacklevel=2,
        )
        return _random_trunk(seed, requested=weights)
    model = resnet50_trunk()
    _load_into(model, state, Path(source))
    return _finish(model, weights, "imagenet", source)


def prepare_for_inference(model: nn.Module, device: torch.device) -> nn.Module:
    """Eval mode, on ``device``, channels_last (faster convolutions on GPU and CPU)."""
    return model.eval().to(device, memory_format=torch.channels_last)


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of every tensor, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# --------------------------------------------------------------------------- internals


def _finish(model: nn.Module, requested: str, used: str, source: str, seed: int | None = None):
    model.eval()
    info = WeightsInfo(requested, used, source, state_digest(model.state_dict()), seed)
    return model, info


def _random_trunk(seed: int, requested: str) -> tuple[nn.Module, WeightsInfo]:
    # A private RNG stream: seeding must neither depend on nor disturb the global one.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = resnet50_trunk()
    return _finish(model, requested, "random", f"seed:{seed}", seed)


def _torchvision_imagenet() -> tuple[dict[str, torch.Tensor], str]:
    """ImageNet weights from the torch hub cache (V2, then V1), else downloaded (V2)."""
    from torchvision.models import ResNet50_Weights

    ckpt_dir = Path(torch.hub.get_dir()) / "checkpoints"
    candidates = (ResNet50_Weights.IMAGENET1K_V2, ResNet50_Weights.IMAGENET1K_V1)
    for w in candidates:
        cached = ckpt_dir / Path(w.url).name
        if cached.is_file():
            return _read_state_dict(cached), f"torchvision:{w.name} ({cached})"
    w = candidates[0]
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            state = torch.hub.load_state_dict_from_url(w.url, progress=True, check_hash=True)
    except OSError as exc:  # URLError, timeouts, refused connections
        looked = ", ".join(str(ckpt_dir / Path(c.url).name) for c in candidates)
        raise WeightsUnavailable(
            f"could not download {w.url} ({exc}); looked in the torch hub cache: {looked}"
        ) from exc
    return state, f"torchvision:{w.name} ({ckpt_dir / Path(w.url).name})"


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise ValueError(
            f"{path}: cannot read a PyTorch state dict ({exc}); save one with "
            "torch.save(resnet50.state_dict(), path)"
        ) from exc
    # Accept training checkpoints that wrap the state dict.
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a dict of tensors (a ResNet-50 state dict)")
    return obj


def _load_into(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Load a full ResNet-50 state dict into the trunk; its ``fc`` head is not needed."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise ValueError(f"{path}: not a torchvision ResNet-50 state dict: {exc}") from exc
    problems = [*result.missing_keys, *result.unexpected_keys]
    if problems:
        raise ValueError(
            f"{path}: not a torchvision ResNet-50 state dict: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
