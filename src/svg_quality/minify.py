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


def minify(svg: str, width: int, height: int) -> str:
    """``svg`` minified when its rendering at ``width`` x ``height`` stays the same (SSIM
    against the original's >= 1 - MAX_SSIM_LOSS) and it is smaller; else ``svg``."""
    from svg_quality.ssim import SSIMReference
    from svg_quality.vectorize import RenderFailed, render

    small = scour_svg(svg)
    if len(small) >= len(svg):
        return svg
    try:
        same = SSIMReference(render(svg, width, height)).score(render(small, width, height))
    except (RenderFailed, ValueError):
        return svg
    return small if same >= 1.0 - MAX_SSIM_LOSS else svg
