"""Cheap logo statistics that govern how well VTracer vectorizes a logo (pure numpy).

VTracer clusters colours (``color_precision``, ``layer_difference``), drops speckles
(``filter_speckle``, in pixels) and fits splines to region outlines, and the label is
SSIM on luma. So what predicts fidelity is: how many colours there are and how well a
few of them explain the image (flat logo vs gradient), how much edge there is, how much
smooth shading a palette will band, and how much of the logo is thin detail that
clustering and speckle filtering erase.

The statistics are computed on the *normalized* logo (``data/logos/<id>.png``: RGB on
white, longest side ``data.image_size``), because that is the image VTracer converts.
Shares, entropies and palette errors do not depend on the image's scale; the edge,
gradient and thin-stroke statistics are measured in pixels of the normalized logo on
purpose, since VTracer's own thresholds are in those pixels.

No torch here: the ONNX predictor computes the same numbers without it.
"""

from __future__ import annotations

import numpy as np

# Bump when any statistic's definition changes: featurize recomputes cached stats rows.
STATS_VERSION = 1

STAT_NAMES: tuple[str, ...] = (
    "colors_log2",  # log2 of the number of distinct colours at 4 bits per channel
    "color_entropy",  # entropy (bits) of the 4-bit colour histogram; log2 of the effective count
    "top1_share",  # share of pixels in the dominant 4-bit colour
    "top4_share",  # share of pixels in the 4 dominant 4-bit colours
    "palette_err_4",  # mean |luma - luma of nearest of the 4 dominant colours| / 255
    "palette_err_16",  # the same with the 16 dominant colours
    "background_luma",  # luma / 255 of the background (dominant border colour)
    "ink_coverage",  # share of pixels that differ from the background
    "luma_std",  # standard deviation of luma / 255 (contrast)
    "luma_entropy",  # entropy (bits) of the 256-bin luma histogram
    "edge_density",  # share of pixels on a strong luma edge (Sobel >= EDGE_THRESHOLD)
    "grad_mean",  # mean Sobel luma gradient magnitude / 255 (per pixel)
    "soft_gradient_share",  # share of pixels in smooth shading (gradient, away from edges)
    "thin_share",  # share of ink pixels in strokes at most 2 px wide (3x3 opening removes them)
    "narrow_share",  # share of ink pixels in strokes at most 4 px wide (5x5 opening)
    "detail_share",  # share of pixels in colour regions under 3 px wide (3-bit colours)
    "aspect_log2",  # log2(width / height)
)

EDGE_THRESHOLD = 16.0  # luma levels per pixel: a step of >= 32 levels between neighbours
SOFT_MIN = 0.5  # a one-level luma step; smaller Sobel responses are corner artefacts
INK_TOLERANCE = 24  # max channel difference from the background still counted as background
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as the SSIM label


def compute_stats(rgb: np.ndarray) -> np.ndarray:
    """``uint8 [H, W, 3]`` logo -> ``float32 [len(STAT_NAMES)]`` statistics, in that order."""
    _check(rgb)
    h, w = rgb.shape[:2]
    n = h * w
    px = rgb.reshape(-1, 3)
    luma = (px.astype(np.float32) @ _LUMA).reshape(h, w)  # [H, W] in 0..255

    # --- colours at 4 bits per channel (4096 bins): how many, how concentrated
    q = (px >> 4).astype(np.int32)
    code = (q[:, 0] << 8) | (q[:, 1] << 4) | q[:, 2]  # [N]
    counts = np.bincount(code, minlength=4096)
    used = np.flatnonzero(counts)
    share = counts[used] / n
    order = used[np.argsort(-counts[used], kind="stable")]  # dominant first
    top = counts[order] / n

    # Each bin is represented by the mean colour of its pixels (exact for flat colours).
    sums = np.stack([np.bincount(code, weights=px[:, c], minlength=4096) for c in range(3)], 1)
    bin_rgb = sums[used] / counts[used, None]  # [U, 3]
    bin_index = np.zeros(4096, dtype=np.int64)
    bin_index[used] = np.arange(len(used))
    pixel_bin = bin_index[code]  # [N] index into `used`

    background = _background_colour(rgb, bin_rgb, bin_index)
    diff = np.abs(px.astype(np.int16) - background.astype(np.int16)).max(axis=1)
    ink = (diff > INK_TOLERANCE).reshape(h, w)
    n_ink = int(ink.sum())

    # --- luma gradient (Sobel / 8: levels per pixel), edges and smooth shading
    g = _sobel_magnitude(luma)
    edge = g >= EDGE_THRESHOLD
    # Anti-aliasing puts soft steps right beside every edge; shading lies away from edges.
    soft = (g >= SOFT_MIN) & ~_dilate(edge)

    # --- thin strokes: ink that a morphological opening removes
    open3 = _dilate(_erode(ink))
    open5 = _dilate(_dilate(_erode(_erode(ink))))
    thin = ink & ~open3
    narrow = ink & ~open5

    lhist = np.bincount(np.clip(np.rint(luma), 0, 255).astype(np.int64).ravel(), minlength=256)

    stats = {
        "colors_log2": np.log2(len(used)),
        "color_entropy": _entropy(share),
        "top1_share": top[0],
        "top4_share": top[:4].sum(),
        "palette_err_4": _palette_error(luma.ravel(), bin_rgb, pixel_bin, order, bin_index, 4),
        "palette_err_16": _palette_error(luma.ravel(), bin_rgb, pixel_bin, order, bin_index, 16),
        "background_luma": float(background @ _LUMA) / 255.0,
        "ink_coverage": n_ink / n,
        "luma_std": float(luma.std()) / 255.0,
        "luma_entropy": _entropy(lhist[lhist > 0] / n),
        "edge_density": edge.mean(),
        "grad_mean": float(g.mean()) / 255.0,
        "soft_gradient_share": soft.mean(),
        "thin_share": thin.sum() / n_ink if n_ink else 0.0,
        "narrow_share": narrow.sum() / n_ink if n_ink else 0.0,
        "detail_share": _detail_share(rgb),
        "aspect_log2": np.log2(w / h),
    }
    return np.array([stats[name] for name in STAT_NAMES], dtype=np.float32)


# --------------------------------------------------------------------------- pieces


def _check(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray):
        raise TypeError(f"compute_stats expects a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"compute_stats expects uint8 [H, W, 3] RGB, got {rgb.dtype} {list(rgb.shape)}; "
            "load the logo with svg_quality.images.load_rgb (alpha composited on white)"
        )
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"compute_stats got an empty image {list(rgb.shape)}")


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _background_colour(rgb: np.ndarray, bin_rgb: np.ndarray, bin_index: np.ndarray) -> np.ndarray:
    """Mean colour of the most common 4-bit colour on the 1-px border: white for most logos,
    the tint for a tinted or dark background."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]) >> 4  # [B, 3]
    bcode = (border[:, 0].astype(np.int32) << 8) | (border[:, 1].astype(np.int32) << 4)
    bcode |= border[:, 2].astype(np.int32)
    return bin_rgb[bin_index[np.bincount(bcode, minlength=4096).argmax()]]


def _palette_error(
    luma: np.ndarray,
    bin_rgb: np.ndarray,
    pixel_bin: np.ndarray,
    order: np.ndarray,
    bin_index: np.ndarray,
    k: int,
) -> float:
    """Mean luma error (/255) when every pixel takes the nearest (RGB) of the ``k``
    dominant colours: the banding a ``k``-colour vectorization cannot avoid."""
    palette = bin_rgb[bin_index[order[:k]]]  # [k, 3]
    d = ((bin_rgb[:, None, :] - palette[None, :, :]) ** 2).sum(-1)  # [U, k]
    nearest_luma = (palette @ _LUMA.astype(np.float64))[d.argmin(axis=1)]  # [U]
    return float(np.abs(luma - nearest_luma[pixel_bin]).mean()) / 255.0


def _sobel_magnitude(y: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude / 8 (luma levels per pixel), borders edge-replicated."""
    p = np.pad(y, 1, mode="edge")
    # Separable: smooth [1, 2, 1] along one axis, difference [-1, 0, 1] along the other.
    sy = p[:-2] + 2 * p[1:-1] + p[2:]  # [H, W+2] smoothed vertically
    gx = sy[:, 2:] - sy[:, :-2]
    sx = p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]  # [H+2, W] smoothed horizontally
    gy = sx[2:] - sx[:-2]
    return np.hypot(gx, gy) / 8.0


def _erode(m: np.ndarray) -> np.ndarray:
    """3x3 binary erosion (separable); beyond the border the image continues unchanged."""
    p = np.pad(m, 1, mode="edge")
    r = p[:, :-2] & p[:, 1:-1] & p[:, 2:]
    return r[:-2] & r[1:-1] & r[2:]


def _dilate(m: np.ndarray) -> np.ndarray:
    p = np.pad(m, 1, mode="edge")
    r = p[:, :-2] | p[:, 1:-1] | p[:, 2:]
    return r[:-2] | r[1:-1] | r[2:]


def _detail_share(rgb: np.ndarray) -> float:
    """Share of pixels whose 3-bit colour region is under 3 px wide there: a 3x3 opening
    of each colour's mask (all colours at once) does not keep them. Catches thin detail of
    any colour, on any background, that colour clustering merges away."""
    h, w = rgb.shape[:2]
    q = rgb >> 5
    lab = (q[..., 0].astype(np.int16) << 6) | (q[..., 1].astype(np.int16) << 3) | q[..., 2]
    p = np.pad(lab, 1, mode="edge")
    offsets = [(dy, dx) for dy in (0, 1, 2) for dx in (0, 1, 2)]
    same = [p[dy : dy + h, dx : dx + w] == lab for dy, dx in offsets]  # neighbour has my colour
    interior = np.logical_and.reduce(same)  # the whole 3x3 window is my colour
    ip = np.pad(interior, 1, mode="constant")
    # Kept by the opening: some window containing me is all my colour.
    kept = np.logical_or.reduce(
        [ip[dy : dy + h, dx : dx + w] & s for (dy, dx), s in zip(offsets, same, strict=True)]
    )
    return float(1.0 - kept.mean())
