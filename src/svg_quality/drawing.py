"""Drawing primitives for the synthetic logos: shapes, fills, gradients and fitted text.

Everything draws onto an RGBA canvas at the supersampled size (:mod:`svg_quality.synthetic`
picks the size and downsamples), hard-edged: a shape is a polygon painted through an
``L`` mask, so an anti-aliased edge comes only from the downsample. Random choices draw
from the caller's generator, in a fixed order, so a logo stays a function of its seed.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", str(Path.home() / ".fonts"))

Color = tuple[int, int, int, int]
Rng = np.random.Generator


# --------------------------------------------------------------------------- geometry


def shape_points(kind: str, cx: float, cy: float, rx: float, ry: float, rot: float, rng: Rng):
    """Polygon outline of a named shape (ellipses are polygons too: one code path)."""
    t = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    if kind == "ellipse":
        x, y = np.cos(t), np.sin(t)
    elif kind == "squircle":  # app-icon rounded square
        p = rng.uniform(3, 6)
        x = np.sign(np.cos(t)) * np.abs(np.cos(t)) ** (2 / p)
        y = np.sign(np.sin(t)) * np.abs(np.sin(t)) ** (2 / p)
    elif kind.startswith("poly"):
        n = int(kind[4:])
        a = np.linspace(0, 2 * np.pi, n, endpoint=False) - np.pi / 2
        x, y = np.cos(a), np.sin(a)
    elif kind.startswith("star"):
        n = int(kind[4:])
        inner = rng.uniform(0.35, 0.6)
        a = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False) - np.pi / 2
        r = np.where(np.arange(2 * n) % 2 == 0, 1.0, inner)
        x, y = r * np.cos(a), r * np.sin(a)
    elif kind == "heart":
        x = 16 * np.sin(t) ** 3 / 17
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)) / 17
    elif kind == "blob":  # organic shape: a smooth random radius
        r = np.ones_like(t)
        for k in range(2, 6):
            r += rng.uniform(0, 0.25 / k * 2) * np.sin(k * t + rng.uniform(0, 2 * np.pi))
        r /= r.max()
        x, y = r * np.cos(t), r * np.sin(t)
    elif kind == "leaf":
        x = np.cos(t)
        y = np.sin(t) * np.abs(np.sin(t / 2)) ** 0.5 * 0.9
    elif kind == "rect":
        x, y = np.array([-1.0, 1.0, 1.0, -1.0]), np.array([-1.0, -1.0, 1.0, 1.0])
    elif kind == "chevron":
        x = np.array([-1, 0, 1, 1, 0, -1])
        y = np.array([-0.2, -1, -0.2, 0.35, -0.45, 0.35])
    elif kind == "arrow":
        x = np.array([-1, 0.2, 0.2, 1, 0.2, 0.2, -1])
        y = np.array([-0.3, -0.3, -0.8, 0, 0.8, 0.3, 0.3])
    elif kind == "cross":
        a = rng.uniform(0.2, 0.4)
        x = np.array([-a, a, a, 1, 1, a, a, -a, -a, -1, -1, -a])
        y = np.array([-1, -1, -a, -a, a, a, 1, 1, a, a, -a, -a])
    else:
        raise ValueError(f"unknown shape {kind!r}")
    c, s = math.cos(rot), math.sin(rot)
    px = cx + rx * (x * c - y * s)
    py = cy + ry * (x * s + y * c)
    return list(zip(px.tolist(), py.tolist(), strict=True))


SHAPES = (
    "ellipse",
    "squircle",
    "poly3",
    "poly4",
    "poly5",
    "poly6",
    "poly8",
    "star5",
    "star6",
    "star8",
    "heart",
    "blob",
    "leaf",
    "chevron",
    "arrow",
    "cross",
)
FLAT_SHAPES = ("ellipse", "squircle", "poly3", "poly4", "poly6", "star5", "chevron", "cross")


def new_mask(size: tuple[int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    m = Image.new("L", size, 0)
    return m, ImageDraw.Draw(m)


def paint(canvas: Image.Image, mask: Image.Image, fill: Color | Image.Image) -> None:
    """Paint ``fill`` (a colour or an RGBA image) through ``mask`` onto ``canvas``."""
    if isinstance(fill, Image.Image):
        layer = fill.copy()
        alpha = np.asarray(layer.getchannel("A"), dtype=np.uint16) * np.asarray(mask) // 255
        layer.putalpha(Image.fromarray(alpha.astype(np.uint8)))
    else:
        layer = Image.new("RGBA", canvas.size, fill[:3] + (0,))
        layer.putalpha(mask.point(lambda v, a=fill[3]: v * a // 255))
    canvas.alpha_composite(layer)


def draw_shape(canvas, rng, kind, box, fill, outline=None, width=0, hole=None, rot=None) -> None:
    """A shape inside ``box`` (x0, y0, x1, y1), optionally with a cut-out ``hole`` shape."""
    x0, y0, x1, y1 = box
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if rot is None:  # most marks sit upright; some are tilted
        rot = float(rng.choice([0.0, 0.0, rng.uniform(-0.5, 0.5)]))
    pts = shape_points(kind, cx, cy, rx, ry, rot, rng)
    mask, d = new_mask(canvas.size)
    d.polygon(pts, fill=255)
    if hole is not None:  # rings, crescents, cut-outs: transparent where the hole is
        hk, (dx, dy, scale) = hole
        hole_pts = shape_points(hk, cx + dx * rx, cy + dy * ry, rx * scale, ry * scale, rot, rng)
        d.polygon(hole_pts, fill=0)
    paint(canvas, mask, fill)
    if outline is not None and width > 0:
        omask, od = new_mask(canvas.size)
        od.line([*pts, pts[0]], fill=255, width=int(width), joint="curve")
        paint(canvas, omask, outline)


def gradient(size, rng: Rng, colors: list[Color], radial: bool | None = None) -> Image.Image:
    """A linear or radial gradient through 2-3 colour stops, as an RGBA image."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if radial is None:
        radial = rng.random() < 0.45
    if radial:
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        t = np.hypot(xx - cx, yy - cy) / (rng.uniform(0.4, 0.9) * max(w, h))
    else:
        a = rng.uniform(0, 2 * np.pi)
        t = (xx * math.cos(a) + yy * math.sin(a)) / (abs(w * math.cos(a)) + abs(h * math.sin(a)))
        t = t - t.min()
    t = np.clip(t, 0, 1)
    stops = np.array([c[:3] for c in colors], dtype=np.float32)
    pos = np.linspace(0, 1, len(stops))
    rgb = np.stack([np.interp(t, pos, stops[:, k]) for k in range(3)], axis=-1)
    alpha = np.full((h, w, 1), 255, np.float32)
    return Image.fromarray(np.concatenate([rgb, alpha], -1).round().astype(np.uint8), "RGBA")


def shade(c: Color, f: float) -> Color:
    """Lighter (f > 0, towards white) or darker (f < 0, towards black) version of a colour."""
    if f >= 0:
        return tuple(round(v + (255 - v) * f) for v in c[:3]) + (c[3],)
    return tuple(round(v * (1 + f)) for v in c[:3]) + (c[3],)


def layout_box(canvas: Image.Image, rng: Rng, margin: tuple[float, float] = (0.06, 0.18)):
    w, h = canvas.size
    m = rng.uniform(*margin) * min(w, h)
    return (m, m, w - m, h - m)


def square_in(box, rng: Rng, frac: float = 1.0):
    x0, y0, x1, y1 = box
    side = min(x1 - x0, y1 - y0) * frac
    cx = rng.uniform(x0 + side / 2, x1 - side / 2) if x1 - x0 > side else (x0 + x1) / 2
    cy = (y0 + y1) / 2
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


# --------------------------------------------------------------------------- text


@lru_cache(maxsize=1)
def system_fonts() -> tuple[str, ...]:
    found = set()
    for d in FONT_DIRS:
        p = Path(d)
        if p.is_dir():
            found.update(str(f) for f in p.rglob("*") if f.suffix.lower() in (".ttf", ".otf"))
    return tuple(sorted(found))


@lru_cache(maxsize=256)
def load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    if path:
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)  # Pillow's built-in font


SYLLABLES = (
    "ka",
    "lo",
    "ne",
    "tri",
    "vo",
    "zen",
    "ar",
    "mi",
    "sol",
    "qu",
    "ex",
    "ly",
    "bo",
    "sta",
    "ri",
    "on",
    "flux",
    "gra",
    "pix",
    "ta",
    "no",
    "ve",
    "co",
    "dy",
    "hub",
)


def random_word(rng: Rng, lo: int = 1, hi: int = 4) -> str:
    w = "".join(rng.choice(SYLLABLES) for _ in range(int(rng.integers(lo, hi + 1))))
    style = rng.choice(["upper", "title", "lower"], p=[0.45, 0.4, 0.15])
    return {"upper": w.upper(), "title": w.title(), "lower": w}[style]


def fit_text(canvas, rng: Rng, text: str, box, font_path: str, fill: Color, anchor_x=0.5):
    """Draw ``text`` as large as fits in ``box``."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    size = max(4, int(bh))
    font = load_font(font_path, size)
    left, top, right, bottom = font.getbbox(text)
    scale = min(bw / max(1, right - left), bh / max(1, bottom - top))
    size = max(4, int(size * scale * 0.98))
    font = load_font(font_path, size)
    left, top, right, bottom = font.getbbox(text)
    tx = x0 + (bw - (right - left)) * anchor_x - left
    ty = y0 + (bh - (bottom - top)) / 2 - top
    mask, d = new_mask(canvas.size)
    d.text((tx, ty), text, font=font, fill=255)
    paint(canvas, mask, fill)
    return (tx + left, ty + top, tx + right, ty + bottom)
