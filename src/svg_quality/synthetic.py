"""Procedural logos in four types, varied like real ones and deterministic for a seed.

Types (DESIGN.md / issue 3):

- ``simple``: flat geometric marks in 1-4 flat colours.
- ``text``: wordmarks, lettermarks and combination marks in the machine's fonts plus
  Pillow's built-in font.
- ``gradient``: linear and radial fills, shaded spheres, glossy badges, soft shadows.
- ``complex``: many overlapping shapes, outlines, emblems, fine detail, many colours.

Everything is drawn at a supersampling factor times the final size with hard edges and
downsampled with a Lanczos filter, which anti-aliases edges the way a rasterised vector
logo is: ``SS`` (4) up to ``SS_LARGE_FROM`` px, ``SS_LARGE`` (2) above, where 4x cost
about 2 s per gradient or complex logo at 1024 px (2x: 0.3 s). The background is white, transparent,
tinted or dark. A share of logos gets JPEG artefacts, as logos scraped from the web
often have.

The random draws depend on ``(logo_type, seed, index)``, not on ``size``, so a logo is
the same picture at every size (prepare draws a share of the logos again at the larger
long sides of ``data.sizes``); ``generate(..., like=...)`` catches the rare logo whose
layout a size tips over anyway.

The shapes, fills, gradients and fitted text the four types are composed of are
:mod:`svg_quality.drawing`; this module picks the canvas, background and palette and
lays each type out.
"""

from __future__ import annotations

import colorsys
import io
import math
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from svg_quality.config import LOGO_TYPES
from svg_quality.drawing import (
    FLAT_SHAPES,
    SHAPES,
    Color,
    Rng,
    draw_shape,
    fit_text,
    gradient,
    layout_box,
    new_mask,
    paint,
    random_word,
    shade,
    shape_points,
    square_in,
    system_fonts,
)

SS = 4  # supersampling factor: drawn hard-edged at 4x, anti-aliased by the downsample
SS_LARGE = 2  # ... above SS_LARGE_FROM px: at 1024 px 0.05-0.3 s a logo (4x: 0.2-2.3 s)
SS_LARGE_FROM = 512  # px; up to here SS, so logos of data.image_size (256) are as before


# --------------------------------------------------------------------------- public API


class LayoutDiffers(ValueError):
    """A logo drawn differently at one size than at another (see :func:`generate`)."""


def generate(
    logo_type: str, seed: int, index: int, size: int = 256, *, like: int | None = None
) -> Image.Image:
    """The ``index``-th logo of ``logo_type`` for ``seed``, as RGBA with longest side ``size``.

    ``like``: a size this drawing must be the same picture as, or :class:`LayoutDiffers`
    is raised. The draws never depend on the size, but a few layout decisions compare
    float geometry (a dot grid's column count, whether a square fits its box to the last
    bit) that the canvas' rounded short side can tip: of 5,000 logos per type, 0.6% of
    the gradient and 0.8% of the complex ones are arranged differently at 1024 px than at
    256 px (none of the others). And under 128 px a wide logo's short side is held at
    32 px, which changes its aspect. Checking costs a drawing at ``like``.
    """
    if logo_type not in LOGO_TYPES:
        raise ValueError(f"logo_type {logo_type!r} is unknown; allowed: {', '.join(LOGO_TYPES)}")
    img, drawn = _draw(logo_type, seed, index, size)
    if like is not None and like != size:
        ref, ref_drawn = _draw(logo_type, seed, index, like)
        # rounding the short side to whole px moves the aspect by under 1% from 128 px up
        aspect = abs(math.log(img.width * ref.height / (img.height * ref.width)))
        if ref_drawn != drawn or aspect > 0.02:
            raise LayoutDiffers(
                f"{logo_type} logo {index} (seed {seed}) is drawn differently at {size} px "
                f"than at {like} px ({'aspect' if ref_drawn == drawn else 'layout'})"
            )
    return img


def _draw(logo_type: str, seed: int, index: int, size: int) -> tuple[Image.Image, Any]:
    """The logo and where its random stream ended (equal ends: the same draws)."""
    rng = np.random.default_rng([seed, LOGO_TYPES.index(logo_type), index])
    w, h = _canvas_size(rng, size, logo_type)
    bg = _background(rng)
    ss = supersampling(size)
    canvas = Image.new("RGBA", (w * ss, h * ss), bg)
    palette = _palette(rng, 16, dark_bg=_is_dark(bg))
    _DRAWERS[logo_type](canvas, rng, palette, bg)
    img = canvas.resize((w, h), Image.Resampling.LANCZOS)
    if rng.random() < 0.15:  # web-scraped logos often went through JPEG
        img = _jpeg_roundtrip(img, int(rng.integers(60, 95)))
    return img, rng.bit_generator.state["state"]


def supersampling(size: int) -> int:
    """The factor a logo of long side ``size`` is drawn at before its downsample."""
    return SS if size <= SS_LARGE_FROM else SS_LARGE


def available_fonts() -> list[str]:
    """TrueType/OpenType fonts on this machine, sorted (plus Pillow's built-in as ``""``)."""
    return [*system_fonts(), ""]


# --------------------------------------------------------------------------- canvas & colour


def _canvas_size(rng: Rng, size: int, logo_type: str) -> tuple[int, int]:
    # Wordmarks are wide; emblems tend to be square; some marks are tall.
    if logo_type == "text":
        aspect = rng.choice([1.0, 1.5, 2.0, 3.0, 4.0], p=[0.2, 0.2, 0.25, 0.25, 0.1])
    else:
        aspect = rng.choice([1.0, 1.33, 1.78, 0.75, 0.6], p=[0.5, 0.15, 0.15, 0.1, 0.1])
    if aspect >= 1:
        return size, max(32, round(size / aspect))
    return max(32, round(size * aspect)), size


def _background(rng: Rng) -> Color:
    kind = rng.choice(["white", "transparent", "tinted", "dark"], p=[0.45, 0.35, 0.1, 0.1])
    if kind == "white":
        return (255, 255, 255, 255)
    if kind == "transparent":
        return (0, 0, 0, 0)
    h = rng.random()
    if kind == "tinted":
        r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(0.05, 0.25), rng.uniform(0.9, 1.0))
    else:
        r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(0.0, 0.7), rng.uniform(0.05, 0.3))
    return (round(r * 255), round(g * 255), round(b * 255), 255)


def _is_dark(c: Color) -> bool:
    return c[3] > 0 and (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]) < 110


def _palette(rng: Rng, n: int, dark_bg: bool) -> list[Color]:
    """A brand-like palette: a scheme around a base hue, plus near-black/white accents."""
    scheme = rng.choice(["mono", "analogous", "complementary", "triad", "random"])
    h0 = rng.random()
    offsets = {
        "mono": [0.0],
        "analogous": [0.0, 0.08, -0.08],
        "complementary": [0.0, 0.5],
        "triad": [0.0, 1 / 3, 2 / 3],
        "random": list(rng.random(6)),
    }[scheme]
    colors: list[Color] = []
    for i in range(n):
        h = (h0 + offsets[i % len(offsets)] + rng.normal(0, 0.02)) % 1.0
        s = rng.uniform(0.35, 1.0)
        v = rng.uniform(0.55, 1.0) if dark_bg else rng.uniform(0.25, 0.95)
        r, g, b = colorsys.hsv_to_rgb(h, s, v)
        colors.append((round(r * 255), round(g * 255), round(b * 255), 255))
    accent = (245, 245, 245, 255) if dark_bg else (int(rng.integers(15, 50)),) * 3 + (255,)
    if rng.random() < 0.5:  # many real logos are set in near-black (or white on dark)
        colors.insert(0, accent)
    return colors


def _jpeg_roundtrip(img: Image.Image, quality: int) -> Image.Image:
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, img).convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGBA")


# --------------------------------------------------------------------------- the four types


def _draw_simple(canvas, rng: Rng, pal: list[Color], bg: Color) -> None:
    colors = pal[: int(rng.integers(1, 5))]  # 1-4 flat colours
    box = layout_box(canvas, rng)
    layout = rng.choice(["single", "nested", "row", "stripes", "target", "grid"])
    x0, y0, x1, y1 = box
    if layout == "single":
        hole = None
        if rng.random() < 0.35:
            hole = (
                str(rng.choice(FLAT_SHAPES)),
                (rng.uniform(-0.3, 0.3), 0.0, rng.uniform(0.3, 0.6)),
            )
        draw_shape(canvas, rng, rng.choice(SHAPES), square_in(box, rng), colors[0], hole=hole)
    elif layout == "nested":
        sq = square_in(box, rng)
        for i, f in enumerate((1.0, rng.uniform(0.45, 0.7), rng.uniform(0.15, 0.35))):
            cx, cy, r = (sq[0] + sq[2]) / 2, (sq[1] + sq[3]) / 2, (sq[2] - sq[0]) / 2 * f
            kind = rng.choice(FLAT_SHAPES)
            draw_shape(canvas, rng, kind, (cx - r, cy - r, cx + r, cy + r), colors[i % len(colors)])
    elif layout == "row":
        n = int(rng.integers(2, 5))
        cell = (x1 - x0) / n
        kind = rng.choice(SHAPES)
        for i in range(n):
            c = (x0 + i * cell, y0, x0 + (i + 1) * cell, y1)
            draw_shape(canvas, rng, kind, square_in(c, rng, 0.85), colors[i % len(colors)])
    elif layout == "stripes":
        n = int(rng.integers(3, 7))
        vertical = rng.random() < 0.5
        for i in range(n):
            t0, t1 = i / n, (i + rng.uniform(0.4, 0.8)) / n
            b = (
                (x0 + (x1 - x0) * t0, y0, x0 + (x1 - x0) * t1, y1)
                if vertical
                else (x0, y0 + (y1 - y0) * t0, x1, y0 + (y1 - y0) * t1)
            )
            draw_shape(canvas, rng, "rect", b, colors[i % len(colors)], rot=0.0)
    elif layout == "target":
        sq = square_in(box, rng)
        n = int(rng.integers(2, 5))
        cx, cy, r = (sq[0] + sq[2]) / 2, (sq[1] + sq[3]) / 2, (sq[2] - sq[0]) / 2
        for i in range(n):
            ri = r * (1 - i / n)
            fill = colors[i % len(colors)] if i % 2 == 0 or len(colors) > 1 else _bg_or_white(bg)
            draw_shape(canvas, rng, "ellipse", (cx - ri, cy - ri, cx + ri, cy + ri), fill)
    else:  # grid of 4 tiles, like a windows-style mark
        sq = square_in(box, rng)
        g = (sq[2] - sq[0]) * rng.uniform(0.04, 0.12)
        half = (sq[2] - sq[0] - g) / 2
        for i in range(4):
            ox, oy = sq[0] + (i % 2) * (half + g), sq[1] + (i // 2) * (half + g)
            b = (ox, oy, ox + half, oy + half)
            draw_shape(canvas, rng, "rect", b, colors[i % len(colors)], rot=0.0)


def _bg_or_white(bg: Color) -> Color:
    return bg if bg[3] > 0 else (255, 255, 255, 255)


def _draw_text(canvas, rng: Rng, pal: list[Color], bg: Color) -> None:
    fonts = available_fonts()
    font = fonts[int(rng.integers(len(fonts)))]
    box = layout_box(canvas, rng, (0.04, 0.12))
    x0, y0, x1, y1 = box
    layout = rng.choice(["wordmark", "lettermark", "combo_left", "combo_top", "two_tone"])
    c0, c1 = pal[0], pal[1]
    if layout == "wordmark":
        tag = rng.random() < 0.4
        split = y0 + (y1 - y0) * (0.72 if tag else 1.0)
        fit_text(canvas, rng, random_word(rng, 1, 4), (x0, y0, x1, split), font, c0)
        if tag:  # a small tagline: fine detail real wordmarks often carry
            tag_font = fonts[int(rng.integers(len(fonts)))]
            fit_text(
                canvas, rng, random_word(rng, 2, 5).upper(), (x0, split + 2, x1, y1), tag_font, c1
            )
        if rng.random() < 0.3:  # underline bar
            h = (y1 - y0) * 0.04
            draw_shape(canvas, rng, "rect", (x0, y1 - h, x1, y1), c1, rot=0.0)
    elif layout == "lettermark":
        letters = random_word(rng, 1, 1)[: int(rng.integers(1, 4))].upper()
        sq = square_in(box, rng)
        if rng.random() < 0.6:  # letters knocked out of a filled frame
            draw_shape(canvas, rng, rng.choice(["ellipse", "squircle", "poly6", "poly4"]), sq, c0)
            pad = (sq[2] - sq[0]) * 0.25
            inner = (sq[0] + pad, sq[1] + pad, sq[2] - pad, sq[3] - pad)
            fit_text(
                canvas, rng, letters, inner, font, _bg_or_white(bg) if rng.random() < 0.7 else c1
            )
        else:
            fit_text(canvas, rng, letters, sq, font, c0)
    elif layout == "combo_left":
        side = min(y1 - y0, (x1 - x0) * 0.35)
        mark = (x0, (y0 + y1 - side) / 2, x0 + side, (y0 + y1 + side) / 2)
        draw_shape(canvas, rng, rng.choice(SHAPES), mark, c1)
        gap = side * 0.15
        th = (y1 - y0) * rng.uniform(0.45, 0.8)
        cy = (y0 + y1) / 2
        fit_text(
            canvas,
            rng,
            random_word(rng),
            (x0 + side + gap, cy - th / 2, x1, cy + th / 2),
            font,
            c0,
            0,
        )
    elif layout == "combo_top":
        split = y0 + (y1 - y0) * rng.uniform(0.5, 0.65)
        draw_shape(canvas, rng, rng.choice(SHAPES), square_in((x0, y0, x1, split), rng), c1)
        fit_text(canvas, rng, random_word(rng), (x0, split + (y1 - y0) * 0.05, x1, y1), font, c0)
    else:  # two words, two colours, one baseline
        w1, w2 = random_word(rng, 1, 2), random_word(rng, 1, 2)
        mid = x0 + (x1 - x0) * len(w1) / (len(w1) + len(w2))
        fit_text(canvas, rng, w1, (x0, y0, mid, y1), font, c0, 1.0)
        fit_text(canvas, rng, w2, (mid, y0, x1, y1), font, c1, 0.0)


def _draw_gradient(canvas, rng: Rng, pal: list[Color], bg: Color) -> None:
    box = layout_box(canvas, rng)
    layout = rng.choice(["shape", "sphere", "badge", "plate", "shadowed", "multi"])

    def grad(n: int = 2) -> Image.Image:
        idx = rng.choice(len(pal), size=n, replace=False)
        return gradient(canvas.size, rng, [pal[i] for i in idx])

    if layout == "shape":
        draw_shape(
            canvas, rng, rng.choice(SHAPES), square_in(box, rng), grad(int(rng.integers(2, 4)))
        )
    elif layout == "sphere":  # radial highlight on a disc: the classic shaded orb
        sq = square_in(box, rng)
        c = pal[int(rng.integers(len(pal)))]
        g = gradient(canvas.size, rng, [shade(c, 0.7), c, shade(c, -0.5)], radial=True)
        draw_shape(canvas, rng, "ellipse", sq, g)
    elif layout == "badge":  # glossy rounded badge with a flat mark or text on top
        sq = square_in(box, rng) if rng.random() < 0.5 else box
        c = pal[int(rng.integers(len(pal)))]
        draw_shape(
            canvas,
            rng,
            "squircle",
            sq,
            gradient(canvas.size, rng, [shade(c, 0.4), shade(c, -0.3)], False),
        )
        pad = min(sq[2] - sq[0], sq[3] - sq[1]) * 0.25
        inner = (sq[0] + pad, sq[1] + pad, sq[2] - pad, sq[3] - pad)
        if rng.random() < 0.5:
            draw_shape(canvas, rng, rng.choice(SHAPES), square_in(inner, rng), (255, 255, 255, 255))
        else:
            fonts = available_fonts()
            fit_text(
                canvas,
                rng,
                random_word(rng, 1, 2),
                inner,
                fonts[int(rng.integers(len(fonts)))],
                (255, 255, 255, 255),
            )
    elif layout == "plate":  # a gradient background plate behind a flat mark
        plate = Image.new("L", canvas.size, 255)
        paint(canvas, plate, grad(2))
        draw_shape(
            canvas,
            rng,
            rng.choice(SHAPES),
            square_in(layout_box(canvas, rng, (0.2, 0.3)), rng),
            pal[0],
        )
    elif layout == "shadowed":  # flat or graded shape with a soft drop shadow
        sq = square_in(box, rng, 0.85)
        kind = rng.choice(SHAPES)
        off = (sq[2] - sq[0]) * rng.uniform(0.03, 0.08)
        shadow, d = new_mask(canvas.size)
        pts = shape_points(
            kind,
            (sq[0] + sq[2]) / 2 + off,
            (sq[1] + sq[3]) / 2 + off,
            (sq[2] - sq[0]) / 2,
            (sq[3] - sq[1]) / 2,
            0.0,
            rng,
        )
        d.polygon(pts, fill=int(rng.integers(80, 170)))
        shadow = shadow.filter(ImageFilter.GaussianBlur(off * rng.uniform(0.5, 1.5)))
        paint(canvas, shadow, (0, 0, 0, 255))
        draw_shape(canvas, rng, kind, sq, grad(2) if rng.random() < 0.7 else pal[0])
    else:  # several overlapping graded shapes (translucent ones blend)
        for _ in range(int(rng.integers(2, 5))):
            sq = square_in(box, rng, rng.uniform(0.4, 0.8))
            dx = rng.uniform(-0.25, 0.25) * (box[2] - box[0])
            sq = (sq[0] + dx, sq[1], sq[2] + dx, sq[3])
            g = grad(2)
            if rng.random() < 0.4:
                g.putalpha(int(rng.integers(140, 230)))
            draw_shape(canvas, rng, rng.choice(SHAPES), sq, g)


def _draw_complex(canvas, rng: Rng, pal: list[Color], bg: Color) -> None:
    box = layout_box(canvas, rng, (0.03, 0.1))
    x0, y0, x1, y1 = box
    unit = min(x1 - x0, y1 - y0)
    # Many colours: the palette plus jittered variants.
    colors = pal + [
        shade(pal[int(i)], rng.uniform(-0.4, 0.4)) for i in rng.integers(0, len(pal), 16)
    ]

    def color() -> Color:
        return colors[int(rng.integers(len(colors)))]

    layout = rng.choice(["collage", "mandala", "emblem", "detail"])
    if layout == "collage":  # many overlapping shapes, some outlined
        for _ in range(int(rng.integers(15, 45))):
            r = unit * rng.uniform(0.04, 0.3)
            cx, cy = rng.uniform(x0 + r, x1 - r), rng.uniform(y0 + r, y1 - r)
            outline = color() if rng.random() < 0.3 else None
            draw_shape(
                canvas,
                rng,
                rng.choice(SHAPES),
                (cx - r, cy - r, cx + r, cy + r),
                color(),
                outline,
                unit * rng.uniform(0.005, 0.02),
            )
    elif layout == "mandala":  # rotational symmetry, rings of petals
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        for ring in range(int(rng.integers(2, 5))):
            k = int(rng.integers(5, 16))
            rr = unit / 2 * (1 - ring * rng.uniform(0.18, 0.25))
            pr = rr * rng.uniform(0.12, 0.3)
            kind, c = rng.choice(SHAPES), color()
            for j in range(k):
                a = 2 * np.pi * j / k
                px, py = cx + (rr - pr) * math.cos(a), cy + (rr - pr) * math.sin(a)
                draw_shape(canvas, rng, kind, (px - pr, py - pr, px + pr, py + pr), c)
        r = unit * rng.uniform(0.08, 0.18)
        draw_shape(canvas, rng, "ellipse", (cx - r, cy - r, cx + r, cy + r), color())
    elif layout == "emblem":  # a crest: outlined shield, inner marks, banner text
        sq = square_in(box, rng)
        w = unit * rng.uniform(0.02, 0.05)
        draw_shape(
            canvas,
            rng,
            rng.choice(["poly6", "squircle", "ellipse", "poly5"]),
            sq,
            color(),
            color(),
            w,
        )
        inner = layout_box(canvas, rng, (0.28, 0.35))
        for _ in range(int(rng.integers(3, 9))):
            r = unit * rng.uniform(0.04, 0.12)
            cx, cy = rng.uniform(inner[0], inner[2]), rng.uniform(inner[1], inner[3])
            draw_shape(canvas, rng, rng.choice(SHAPES), (cx - r, cy - r, cx + r, cy + r), color())
        fonts = available_fonts()
        by = sq[3] - unit * 0.22
        band = (sq[0] - unit * 0.02, by, sq[2] + unit * 0.02, by + unit * 0.14)
        draw_shape(canvas, rng, "rect", band, color(), rot=0.0)
        pad = unit * 0.02
        fit_text(
            canvas,
            rng,
            random_word(rng, 2, 3).upper(),
            (band[0] + pad * 3, band[1] + pad, band[2] - pad * 3, band[3] - pad),
            fonts[int(rng.integers(len(fonts)))],
            _bg_or_white(bg),
        )
    else:  # fine detail: hatching, dot grids, thin concentric rings, small shapes
        mask, d = new_mask(canvas.size)
        step = unit * rng.uniform(0.025, 0.06)
        lw = max(1, int(step * rng.uniform(0.1, 0.35)))
        for i in range(int((x1 - x0 + y1 - y0) / step)):
            o = i * step
            d.line([(x0 + o, y0), (x0, y0 + o)], fill=255, width=lw)
        clip, cd = new_mask(canvas.size)
        cd.polygon(
            shape_points(
                rng.choice(["ellipse", "squircle", "blob"]),
                (x0 + x1) / 2,
                (y0 + y1) / 2,
                (x1 - x0) / 2,
                (y1 - y0) / 2,
                0.0,
                rng,
            ),
            fill=255,
        )
        hatch = Image.fromarray(np.minimum(np.asarray(mask), np.asarray(clip)))
        paint(canvas, hatch, color())
        dots, dd = new_mask(canvas.size)
        dr = unit * rng.uniform(0.006, 0.018)
        for gx in np.arange(x0, x1, dr * rng.uniform(3, 6)):
            for gy in np.arange(y0, y0 + (y1 - y0) * rng.uniform(0.2, 0.5), dr * 4):
                dd.ellipse((gx - dr, gy - dr, gx + dr, gy + dr), fill=255)
        paint(canvas, dots, color())
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        rings, rd = new_mask(canvas.size)
        for k in range(1, int(rng.integers(4, 12))):
            r = unit * 0.04 * k
            rd.ellipse((cx - r, cy - r, cx + r, cy + r), outline=255, width=max(1, lw))
        paint(canvas, rings, color())
        for _ in range(int(rng.integers(5, 20))):
            r = unit * rng.uniform(0.02, 0.08)
            px, py = rng.uniform(x0 + r, x1 - r), rng.uniform(y0 + r, y1 - r)
            draw_shape(canvas, rng, rng.choice(SHAPES), (px - r, py - r, px + r, py + r), color())


_DRAWERS = {
    "simple": _draw_simple,
    "text": _draw_text,
    "gradient": _draw_gradient,
    "complex": _draw_complex,
}
