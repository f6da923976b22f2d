"""VTracer conversion, resvg rendering and scoring, all in memory.

Used by the ``label`` stage (through :mod:`svg_quality.labeling`) and by
``svg-quality suggest --verify``. Nothing touches the disk: the logo's PNG bytes go
to ``vtracer.convert_raw_image_to_svg``, the SVG string to ``resvg_py.svg_to_bytes``
(rendered at the logo's own size on white), and the rendering is compared to the
logo with :class:`svg_quality.ssim.SSIMReference`.

Failures are raised as :class:`ConversionFailed` / :class:`RenderFailed` so callers can
tell them apart; a VTracer panic arrives as ``pyo3_runtime.PanicException``, which
derives from ``BaseException`` (not ``Exception``), and is turned into
:class:`ConversionFailed` with ``panic=True``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from svg_quality.native import require
from svg_quality.paramspace import PARAM_NAMES, SPECS
from svg_quality.ssim import SSIMReference

if TYPE_CHECKING:
    from svg_quality.colour import ColourReference
    from svg_quality.config import VtracerConfig


class ConversionFailed(RuntimeError):
    """VTracer raised or panicked; ``panic`` tells which."""

    def __init__(self, message: str, *, panic: bool) -> None:
        super().__init__(message)
        self.panic = panic


class RenderFailed(RuntimeError):
    """resvg could not render the SVG (or produced an image of the wrong size)."""


def _is_panic(exc: BaseException) -> bool:
    # pyo3_runtime is not importable as a module; recognise the class by name.
    return type(exc).__name__ == "PanicException"


def vtracer_kwargs(params: Mapping[str, float], vtracer_cfg: VtracerConfig) -> dict[str, object]:
    """The keyword arguments VTracer gets for ``params`` (all 8 names required)."""
    missing = [n for n in PARAM_NAMES if n not in params]
    if missing:
        raise ValueError(f"VTracer parameter {missing[0]!r} is missing; give all of {PARAM_NAMES}")
    kwargs: dict[str, object] = {
        "colormode": vtracer_cfg.colormode,
        "hierarchical": vtracer_cfg.hierarchical,
        "mode": vtracer_cfg.mode,
    }
    for name in PARAM_NAMES:
        value = params[name]
        # VTracer's binding rejects floats for its integer arguments.
        kwargs[name] = int(np.rint(value)) if SPECS[name].kind is int else float(value)
    return kwargs


def convert(png_bytes: bytes, params: Mapping[str, float], vtracer_cfg: VtracerConfig) -> str:
    """PNG bytes -> SVG text with VTracer; raises :class:`ConversionFailed`."""
    vtracer = require("vtracer")

    kwargs = vtracer_kwargs(params, vtracer_cfg)
    try:
        return vtracer.convert_raw_image_to_svg(png_bytes, img_format="png", **kwargs)
    except Exception as exc:
        raise ConversionFailed(f"{type(exc).__name__}: {exc}", panic=False) from exc
    except BaseException as exc:
        if not _is_panic(exc):
            raise  # KeyboardInterrupt, SystemExit: not ours to swallow
        raise ConversionFailed(f"VTracer panicked: {exc}", panic=True) from None


def render(svg: str, width: int, height: int) -> np.ndarray:
    """SVG text -> ``[height, width, 3]`` uint8 RGB, composited on white, with resvg."""
    from PIL import Image

    resvg_py = require("resvg_py")

    try:
        png = resvg_py.svg_to_bytes(
            svg_string=svg,
            width=width,
            height=height,
            background="white",
            skip_system_fonts=True,  # VTracer SVGs hold no text; loading fonts costs time
        )
        with Image.open(io.BytesIO(png)) as im:
            im.load()
            rgba = np.asarray(im if im.mode == "RGBA" else im.convert("RGBA"))
    except (ValueError, OSError) as exc:
        raise RenderFailed(f"{type(exc).__name__}: {exc}") from exc
    if rgba.shape[:2] != (height, width):
        raise RenderFailed(
            f"resvg produced {rgba.shape[1]}x{rgba.shape[0]}, wanted {width}x{height}"
        )
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        return rgba[..., :3]
    # resvg already paints the white background; composite anyway if any alpha is left.
    a = alpha[..., None].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def count_paths(svg: str) -> int:
    return svg.count("<path")


@dataclass(frozen=True)
class Score:
    ssim: float  # clipped to [0, 1] (DESIGN.md); raw SSIM can dip below 0 in theory
    svg_bytes: int
    n_paths: int
    convert_ms: float
    render_ms: float
    ssim_ms: float
    svg: str
    delta_e: float | None = None  # mean CIEDE2000 vs the logo (svg_quality.colour), if asked


def score(
    logo_rgb: np.ndarray,
    params: Mapping[str, float],
    vtracer_cfg: VtracerConfig,
    *,
    png_bytes: bytes | None = None,
    reference: SSIMReference | None = None,
    colour: ColourReference | None = None,
) -> Score:
    """Convert the logo with ``params``, render the SVG and compare it with the logo.

    ``png_bytes`` (the logo's PNG file) and ``reference`` (its precomputed SSIM side)
    save work when one logo is scored many times; both are derived from ``logo_rgb``
    when omitted. With ``colour`` (the logo's :class:`svg_quality.colour.ColourReference`)
    the score also holds the rendering's mean CIEDE2000 colour error.
    """
    logo_rgb = np.asarray(logo_rgb)
    height, width = logo_rgb.shape[:2]
    if png_bytes is None:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(logo_rgb).save(buf, format="PNG")
        png_bytes = buf.getvalue()
    if reference is None:
        reference = SSIMReference(logo_rgb)

    t0 = time.perf_counter()
    svg = convert(png_bytes, params, vtracer_cfg)
    t1 = time.perf_counter()
    rendering = render(svg, width, height)
    t2 = time.perf_counter()
    value = reference.score(rendering)
    t3 = time.perf_counter()
    delta_e = None if colour is None else colour.delta_e(rendering)
    return Score(
        ssim=float(np.clip(value, 0.0, 1.0)),
        svg_bytes=len(svg.encode()),
        n_paths=count_paths(svg),
        convert_ms=(t1 - t0) * 1e3,
        render_ms=(t2 - t1) * 1e3,
        ssim_ms=(t3 - t2) * 1e3,
        svg=svg,
        delta_e=delta_e,
    )
