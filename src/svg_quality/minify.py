"""What `convert` writes, minified: VTracer's SVG through the scour optimizer, kept only
when its rendering is the same.

VTracer writes one ``<path>`` per shape with absolute coordinates, a ``transform`` each and
long decimals; a careful user runs an optimizer on it (SVGO, or scour in Python) before
shipping. scour (https://github.com/scour-project/scour, pure Python) rewrites the path
data (relative commands, shortest number forms) and drops the XML prolog, comments and
whitespace. Options are chosen to keep the geometry: numbers keep 10 significant digits,
the root keeps its ``width``/``height`` (no viewBox rewriting), colours and structure
stay. It does replace VTracer's straight cubic segments (control points on the line) by
lines, the same shape, which resvg rasterizes a hair differently at antialiased edges: on
a 300 px synthetic logo 161 of 90,000 pixels changed, SSIM against the unminified
rendering 0.99986. :func:`minify` renders both and keeps the original when the minified
one's SSIM against it is below 1 - ``MAX_SSIM_LOSS``; `convert` reports the figures of
what it writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SSIM_LOSS = 1e-3  # SSIM of the minified rendering against the original's, at least 1 - this
_OPTIONS = [
    "--enable-id-stripping",
    "--shorten-ids",
    "--remove-descriptive-elements",
    "--strip-xml-prolog",
    "--no-line-breaks",
    "--set-precision=10",
    "--set-c-precision=10",
    "--quiet",
]


def scour_svg(svg: str) -> str:
    """``svg`` through scour with the lossless options above."""
    from scour import scour

    return scour.scourString(svg, scour.parse_args(_OPTIONS))


@dataclass(frozen=True)
class Minified:
    svg: str  # the minified SVG, or the original when minifying would change the picture
    rendering: np.ndarray | None  # uint8 [H, W, 3] of ``svg`` when minified, else None

    @property
    def changed(self) -> bool:
        return self.rendering is not None


def minify(svg: str, width: int, height: int) -> Minified:
    """``svg`` minified when its rendering at ``width`` x ``height`` stays the same (SSIM
    against the original's >= 1 - MAX_SSIM_LOSS) and it is smaller, with that rendering
    (so the caller can score what it writes without rendering it again); else ``svg``."""
    # lazy: both load scipy, which convert (and so the CLI) need not load at import
    from svg_quality.ssim import SSIMReference
    from svg_quality.vectorize import RenderFailed, render

    small = scour_svg(svg)
    if len(small) >= len(svg):
        return Minified(svg, None)
    try:
        shown = render(small, width, height)
        same = SSIMReference(render(svg, width, height)).score(shown)
    except (RenderFailed, ValueError):
        return Minified(svg, None)
    return Minified(small, shown) if same >= 1.0 - MAX_SSIM_LOSS else Minified(svg, None)
