"""Image loading and normalization shared by every stage and the predictor.

A logo is normalized once, in ``prepare``: decoded safely (size checked before the
pixels are decoded, so a decompression bomb costs nothing), every mode converted to
8-bit RGB with alpha composited on white, and resized so its longest side is
``data.image_size`` (and, for a share of the logos, at each larger long side of
``data.sizes``). Later stages read the normalized PNGs with :func:`load_rgb`.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")

# Modes we can turn into RGB faithfully. Anything else (e.g. 32-bit float "F") is rejected.
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_PLAIN_MODES = {"RGB", "L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV"}
_WIDE_GREY_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


class ImageRejected(Exception):
    """An input image that cannot become a logo; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def open_image(path: str | Path, *, max_pixels: int, min_size: int = 1) -> Image.Image:
    """Decode ``path`` fully, refusing bad input with :class:`ImageRejected`.

    Reasons: ``empty`` (zero bytes), ``corrupt`` (not a decodable image), ``truncated``,
    ``too_large`` (over ``max_pixels``, checked before decoding), ``too_small`` (a side
    under ``min_size``).
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise ImageRejected("empty", "file has zero bytes")
    # Never let Pillow silently pad a truncated file with grey.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            w, h = im.size
            if w * h > max_pixels:
                raise ImageRejected(
                    "too_large", f"{w}x{h} = {w * h} pixels > max_pixels {max_pixels}"
                )
            if min(w, h) < min_size:
                raise ImageRejected("too_small", f"{w}x{h} has a side under min_size {min_size}")
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)  # animated GIF/WebP/TIFF: the first frame is the logo
            im.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_large", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("corrupt", "not a recognised image format") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc)
        if "truncated" in msg.lower() or isinstance(exc, EOFError):
            raise ImageRejected("truncated", msg or "unexpected end of file") from exc
        raise ImageRejected("corrupt", msg or type(exc).__name__) from exc
    return im


def to_rgb_on_white(im: Image.Image) -> Image.Image:
    """Any supported mode -> 8-bit RGB, transparent areas composited on white."""
    mode = im.mode
    if mode in _WIDE_GREY_MODES:
        # 16/32-bit greyscale: Pillow's convert("L") clips at 255; rescale instead.
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if (
        (mode == "P" and "transparency" in im.info)
        or mode == "PA"
        or mode in ("LA", "La", "RGBa")
        or (mode == "L" and "transparency" in im.info)
        or (mode == "RGB" and "transparency" in im.info)
    ):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im).convert("RGB")
    if im.mode in _PLAIN_MODES:
        return im.convert("RGB")
    raise ImageRejected("unsupported_mode", f"image mode {mode!r} is not supported")


def resize_longest(
    im: Image.Image, size: int, resample: Image.Resampling = Image.Resampling.LANCZOS
) -> Image.Image:
    """Scale so the longest side is ``size`` px, keeping the aspect ratio. ``BOX`` averages
    whole source pixels (area downsampling: prepare's smaller sizes of a synthetic logo)."""
    w, h = im.size
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    if new == (w, h):
        return im
    return im.resize(new, resample)


def normalize(im: Image.Image, size: int) -> Image.Image:
    return resize_longest(to_rgb_on_white(im), size)


def png_bytes(im: Image.Image) -> bytes:
    """Deterministic PNG encoding: the bytes that ``image_id`` hashes."""
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def load_rgb(path: str | Path) -> np.ndarray:
    """A normalized logo as ``uint8 [H, W, 3]``."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
