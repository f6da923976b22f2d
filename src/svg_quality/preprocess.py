"""Torch-free image preprocessing for serving: logo normalization and the backbone input.

The ONNX predictor must run where torch is not installed, so this module repeats
:mod:`svg_quality.backbone`'s preprocessing with numpy and Pillow alone, driven by the
values recorded in an export's ``metadata.json`` (not by constants of this code):

    any image --prepare's normalization--> RGB on white, longest side ``image_size``
      --letterbox--> 224x224 on white (bicubic) --(x / 255 - mean) / std--> float32 [3, 224, 224]

``tests/test_predictor.py`` checks that it equals backbone's torch preprocessing to 1e-6.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from svg_quality.images import ImageRejected, normalize, open_image

# The recorded "resample" names this module understands (backbone.PREPROCESSING["resample"]).
_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}
MAX_PIXELS = 50_000_000  # decompression-bomb guard when a user hands us a file


def open_logo(image: str | Path | Image.Image | np.ndarray, min_size: int = 1) -> Image.Image:
    """A user's logo as a PIL image, checked: ``image`` is a file path, a PIL image (any
    mode) or an ``uint8 [H, W, 3]`` array. Raises ``ValueError`` naming the file when it
    cannot be read as an image, or when a side is under ``min_size`` (prepare's
    ``data.min_size``: such a logo was never trained on)."""
    if isinstance(image, str | Path):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: image not found")
        try:
            im = open_image(path, max_pixels=MAX_PIXELS)
        except ImageRejected as exc:
            raise ValueError(f"{path}: cannot read the image ({exc})") from exc
    elif isinstance(image, Image.Image):
        im = image
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"an image array must be uint8 [H, W, 3] RGB, got {image.dtype} {list(image.shape)}"
            )
        im = Image.fromarray(image)
    else:
        raise TypeError(f"image must be a path, a PIL image or a uint8 array, got {type(image)}")
    if min(im.size) < min_size:
        name = f"{image}: " if isinstance(image, str | Path) else ""
        raise ValueError(
            f"{name}cannot use the image: {im.width}x{im.height} has a side under {min_size} "
            "px, which prepare rejects (data.min_size), so the model never saw such a logo; "
            "use a larger image"
        )
    return im


def _normalized(im: Image.Image, size: int) -> np.ndarray:
    try:
        rgb = normalize(im, size)
    except ImageRejected as exc:
        raise ValueError(f"cannot use the image: {exc}") from exc
    return np.asarray(rgb, dtype=np.uint8).copy()


def load_logo(
    image: str | Path | Image.Image | np.ndarray, image_size: int, min_size: int = 1
) -> np.ndarray:
    """A logo as the pipeline sees it: ``uint8 [H, W, 3]``, RGB on white, longest side
    ``image_size`` (prepare's normalization; a no-op for the pipeline's own PNGs).
    ``image`` and the errors as :func:`open_logo`.
    """
    return _normalized(open_logo(image, min_size), image_size)


def load_full(
    image: str | Path | Image.Image | np.ndarray, max_side: int, min_size: int = 1
) -> tuple[np.ndarray, tuple[int, int]]:
    """A logo at its own size, as VTracer should trace it: ``(uint8 [H, W, 3] RGB on
    white, (width, height) of the input)``; a long side above ``max_side`` is resampled
    down to it (compare the two sizes to tell). ``image`` and the errors as
    :func:`open_logo`."""
    if max_side < 1:
        raise ValueError(f"max_side = {max_side} is invalid; allowed: at least 1 px")
    im = open_logo(image, min_size)
    return _normalized(im, min(max(im.size), max_side)), (im.width, im.height)


def letterbox(
    rgb: np.ndarray,
    size: int = 224,
    background: Sequence[int] = (255, 255, 255),
    resample: str = "bicubic",
) -> np.ndarray:
    """``uint8 [H, W, 3]`` -> ``uint8 [size, size, 3]``: longest side scaled to ``size``,
    centred on ``background``. Same arithmetic as ``backbone.letterbox``."""
    if resample not in _RESAMPLE:
        raise ValueError(f"resample {resample!r} is invalid; allowed: {', '.join(_RESAMPLE)}")
    img = Image.fromarray(rgb)
    w, h = img.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), _RESAMPLE[resample])
    if (nw, nh) != (size, size):
        canvas = Image.new("RGB", (size, size), tuple(int(c) for c in background))
        canvas.paste(img, ((size - nw) // 2, (size - nh) // 2))
        img = canvas
    return np.asarray(img, dtype=np.uint8)


def to_input(letterboxed: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``uint8 [S, S, 3]`` -> ``float32 [3, S, S]``, ``(x / 255 - mean) / std`` in float32
    (the operation order of ``backbone.normalize``, so results agree bit for bit)."""
    x = letterboxed.astype(np.float32).transpose(2, 0, 1) / np.float32(255.0)  # [3, S, S]
    m = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    return np.ascontiguousarray((x - m) / s, dtype=np.float32)


def backbone_input(rgb: np.ndarray, preprocessing: Mapping[str, Any]) -> np.ndarray:
    """A normalized logo -> the backbone's ``float32 [3, S, S]`` input, following the
    ``preprocessing`` record of ``data/features/meta.json`` (``backbone.PREPROCESSING``)."""
    if preprocessing.get("name") != "letterbox":
        raise ValueError(
            f"preprocessing {preprocessing.get('name')!r} is not supported by this code "
            "(it implements 'letterbox'); re-export with a matching svg-quality version"
        )
    boxed = letterbox(
        rgb,
        int(preprocessing["size"]),
        preprocessing.get("background", (255, 255, 255)),
        preprocessing.get("resample", "bicubic"),
    )
    return to_input(boxed, preprocessing["mean"], preprocessing["std"])
