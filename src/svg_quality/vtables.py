"""VTracer-aware inputs: small per-logo tables, looked up by each candidate's parameters.

The logo statistics (:mod:`svg_quality.logostats`) describe a logo; what VTracer keeps
of it depends on the parameters too. VTracer first clusters 4-connected pixels whose
colours agree in the top ``color_precision`` bits per channel, then merges clusters
smaller than ``filter_speckle``\\ :sup:`2` pixels into a neighbour, and clusters whose
colours differ by less than ``layer_difference`` into one layer. Those three steps can
be measured on the logo itself, for every value a parameter can take, once per logo:

    qssim[p]       SSIM of the logo against itself quantized to p bits per channel, each
                   bin drawn in the mean colour of its pixels (what clustering keeps)
    regions[p]     log2(1 + number of same-colour 4-connected regions) at precision p
    speck[p, f]    share of pixels in those regions smaller than f^2 px (what
                   ``filter_speckle = f`` erases), f = 0..MAX_SPECKLE
    merge[p, d]    share of 4-adjacent pixel pairs that straddle two regions whose mean
                   colours differ (sum of |channel differences|) by less than d, at the
                   knots LAYER_KNOTS (what ``layer_difference = d`` may merge)
    contrast[p, d] the same pairs weighted by their squared luma step: edge contrast
                   (what SSIM sees) that such merges would erase

:func:`compute_tables` flattens them into one ``float32 [TABLE_WIDTH]`` row (featurize
stores one row per logo in ``data/features/tables.npy``); :func:`lookup` turns table
rows and raw parameter rows into the model's conditioned inputs ``[n, len(COND_NAMES)]``.
Training (``dataset.py``), the torch predictor and the ONNX predictor all call
:func:`lookup`, so the rows they build are identical by construction.

numpy, scipy and scikit-image only (no torch): the ONNX predictor runs it where torch is
absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from skimage.measure import label as label_regions

from svg_quality.paramspace import PARAM_NAMES
from svg_quality.ssim import SSIMReference

# Bump when a table's definition changes: featurize recomputes cached table rows.
TABLES_VERSION = 1

PRECISIONS: tuple[int, ...] = tuple(range(1, 9))  # color_precision: bits kept per channel
MAX_SPECKLE = 128  # filter_speckle's VTracer limit (paramspace); larger values are clipped
# layer_difference knots (its VTracer limit is [0, 255]); values between are interpolated.
LAYER_KNOTS: tuple[float, ...] = (0, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 255)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)  # ITU-R 601, as the SSIM label

_P, _F, _D = len(PRECISIONS), MAX_SPECKLE + 1, len(LAYER_KNOTS)
# name -> shape of each table inside the flat row, in this order.
TABLE_SHAPES: dict[str, tuple[int, ...]] = {
    "qssim": (_P,),
    "regions": (_P,),
    "speck": (_P, _F),
    "merge": (_P, _D),
    "contrast": (_P, _D),
}
TABLE_WIDTH = int(sum(np.prod(s) for s in TABLE_SHAPES.values()))

# The conditioned inputs, one column each: the tables read at the row's own
# color_precision (p), filter_speckle (f) and layer_difference (d), then the whole
# qssim curve (the same for every row of a logo: how fast colours fall apart).
COND_NAMES: tuple[str, ...] = (
    "qssim_at_p",
    "regions_at_p",
    "speck_at_pf",
    "merge_at_pd",
    "contrast_at_pd",
    *(f"qssim_{p}" for p in PRECISIONS),
)
_J = {n: PARAM_NAMES.index(n) for n in ("color_precision", "filter_speckle", "layer_difference")}


def table_meta() -> dict[str, Any]:
    """What a tables row holds, for meta.json and exported metadata."""
    return {
        "version": TABLES_VERSION,
        "width": TABLE_WIDTH,
        "shapes": {k: list(v) for k, v in TABLE_SHAPES.items()},
        "precisions": list(PRECISIONS),
        "max_speckle": MAX_SPECKLE,
        "layer_knots": list(LAYER_KNOTS),
        "cond_names": list(COND_NAMES),
    }


def fingerprint_spec() -> dict[str, Any]:
    """The inputs of the tables' cache fingerprint: anything that changes their values."""
    return table_meta()


# --------------------------------------------------------------------------- tables


def compute_tables(rgb: np.ndarray) -> np.ndarray:
    """``uint8 [H, W, 3]`` normalized logo -> ``float32 [TABLE_WIDTH]`` (see the module doc)."""
    _check(rgb)
    h, w = rgb.shape[:2]
    n = h * w
    px = rgb.reshape(-1, 3)
    ref = SSIMReference(rgb) if min(h, w) >= 11 else None
    out = {name: np.zeros(shape, np.float64) for name, shape in TABLE_SHAPES.items()}
    pairs = (h - 1) * w + h * (w - 1)  # 4-adjacent pixel pairs
    knot_index = np.asarray(LAYER_KNOTS, dtype=np.int64)
    # Distinct colours once (one sort); every coarser bin is a union of them.
    code8 = (px[:, 0].astype(np.int32) << 16) | (px[:, 1].astype(np.int32) << 8) | px[:, 2]
    colours, colour_of, colour_count = np.unique(code8, return_inverse=True, return_counts=True)
    crgb = np.stack([(colours >> s) & 255 for s in (16, 8, 0)], 1)  # [U, 3] int32
    csum = crgb * colour_count[:, None].astype(np.float64)  # [U, 3] pixel sums per colour
    n_bins = -1
    for i, p in enumerate(PRECISIONS):
        cq = crgb >> (8 - p)
        ccode = (cq[:, 0] << 16) | (cq[:, 1] << 8) | cq[:, 2]  # [U] p-bit code per colour
        bin_of = np.unique(ccode, return_inverse=True)[1]  # [U] bin of each colour
        if i and int(bin_of.max()) + 1 == n_bins:
            # p - 1's bins are unions of p's, so as many bins means the same partition and
            # the same tables: few-colour logos repeat over most precisions.
            for name in TABLE_SHAPES:
                out[name][i] = 1.0 if name == "qssim" and p == 8 else out[name][i - 1]
            continue
        n_bins = int(bin_of.max()) + 1
        inverse = bin_of[colour_of]  # [N] bin of each pixel
        counts = np.bincount(bin_of, weights=colour_count)  # [bins] pixels per bin
        means = np.stack([np.bincount(bin_of, csum[:, c]) for c in range(3)], 1) / counts[:, None]
        code = inverse.reshape(h, w)  # bins are ordered like codes: equal bin == equal code

        # qssim: each p-bit bin drawn in the mean colour of its pixels
        if p == 8:  # every bin is one exact colour: the quantized logo is the logo
            out["qssim"][i] = 1.0
        elif ref is not None:
            palette = np.clip(np.rint(means), 0, 255).astype(np.uint8)  # [bins, 3]
            out["qssim"][i] = ref.score(palette[code])
        else:  # too small for SSIM's window: 1 when the bins keep every colour exactly
            out["qssim"][i] = float(len(counts) == len(colours))

        # same-colour 4-connected regions; speck[f] = share of pixels in regions < f^2 px
        label, n_regions = _regions(code)
        out["regions"][i] = np.log2(1.0 + n_regions)
        sizes = np.sort(np.bincount(label.ravel(), minlength=n_regions))  # [R] ascending
        cum = np.concatenate([[0], np.cumsum(sizes)])  # pixels in the k smallest regions
        f = np.arange(_F)
        out["speck"][i] = cum[np.searchsorted(sizes, f * f, side="left")] / n

        # merge / contrast: adjacent pixels of different codes lie in different regions;
        # their distance is that of the two bins' mean colours.
        a = np.concatenate([code[:, 1:].ravel(), code[1:].ravel()])
        b = np.concatenate([code[:, :-1].ravel(), code[:-1].ravel()])
        cross = a != b
        diff = means[a[cross]] - means[b[cross]]  # [boundary pairs, 3]
        # floor(dist) < d exactly when dist < d for the integer knots, so a histogram over
        # the 766 possible floors replaces sorting every pair; hist[d] = pairs with dist < d.
        dist = np.floor(np.abs(diff).sum(axis=1)).astype(np.int64)  # [pairs] in 0..765
        step = (diff @ _LUMA / 255.0) ** 2  # squared luma step
        hist = np.concatenate([[0], np.cumsum(np.bincount(dist, minlength=766))])
        whist = np.concatenate([[0.0], np.cumsum(np.bincount(dist, step, minlength=766))])
        out["merge"][i] = hist[knot_index] / pairs
        out["contrast"][i] = whist[knot_index] / pairs
    return np.concatenate([out[name].ravel() for name in TABLE_SHAPES]).astype(np.float32)


def _regions(code: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of equal ``code``: ``(label [H, W] int32, count)``, labels
    0..count-1."""
    label, count = label_regions(code + 1, background=0, connectivity=1, return_num=True)
    return (label - 1).astype(np.int32), int(count)


def unpack(tables: np.ndarray) -> dict[str, np.ndarray]:
    """``[n, TABLE_WIDTH]`` rows -> ``{name: [n, *shape]}`` views."""
    tables = np.asarray(tables)
    if tables.ndim != 2 or tables.shape[1] != TABLE_WIDTH:
        raise ValueError(
            f"tables must be [n, {TABLE_WIDTH}] (vtables version {TABLES_VERSION}), got "
            f"{list(tables.shape)}; rebuild them with `dvc repro featurize`"
        )
    out, start = {}, 0
    for name, shape in TABLE_SHAPES.items():
        width = int(np.prod(shape))
        out[name] = tables[:, start : start + width].reshape(-1, *shape)
        start += width
    return out


# --------------------------------------------------------------------------- lookup


def lookup(tables: np.ndarray, logo_rows: np.ndarray, raw_params: np.ndarray) -> np.ndarray:
    """Conditioned inputs ``float32 [n, len(COND_NAMES)]`` of ``n`` candidate rows.

    ``tables [n_logos, TABLE_WIDTH]`` (one row per logo), ``logo_rows [n]`` (which logo each
    candidate belongs to), ``raw_params [n, 8]`` (raw values, PARAM_NAMES order). Integer
    parameters are rounded; values outside the tables' range are clamped to it.
    """
    t = unpack(tables)
    raw = np.asarray(raw_params, dtype=np.float64)
    rows = np.asarray(logo_rows, dtype=np.int64)
    if raw.ndim != 2 or raw.shape[1] != len(PARAM_NAMES) or rows.shape != (raw.shape[0],):
        raise ValueError(
            f"lookup needs raw_params [n, {len(PARAM_NAMES)}] and logo_rows [n]; got "
            f"{list(raw.shape)} and {list(rows.shape)}"
        )
    if rows.size and (rows.min() < 0 or rows.max() >= t["qssim"].shape[0]):
        raise ValueError(f"logo_rows point outside the {t['qssim'].shape[0]} table rows")
    pi = np.clip(np.rint(raw[:, _J["color_precision"]]), PRECISIONS[0], PRECISIONS[-1])
    pi = pi.astype(np.int64) - PRECISIONS[0]  # [n] index into PRECISIONS
    fi = np.clip(np.rint(raw[:, _J["filter_speckle"]]), 0, MAX_SPECKLE).astype(np.int64)
    d = np.clip(raw[:, _J["layer_difference"]], LAYER_KNOTS[0], LAYER_KNOTS[-1])
    # linear interpolation between the two knots around d
    knots = np.asarray(LAYER_KNOTS, dtype=np.float64)
    k = np.clip(np.searchsorted(knots, d, side="right") - 1, 0, len(knots) - 2)  # [n]
    u = (d - knots[k]) / (knots[k + 1] - knots[k])  # [n] in [0, 1]

    def at_d(name: str) -> np.ndarray:
        table = t[name][rows, pi]  # [n, D]
        lo = np.take_along_axis(table, k[:, None], 1)[:, 0]
        hi = np.take_along_axis(table, k[:, None] + 1, 1)[:, 0]
        return lo + u * (hi - lo)

    cols = [
        t["qssim"][rows, pi],
        t["regions"][rows, pi],
        t["speck"][rows, pi, fi],
        at_d("merge"),
        at_d("contrast"),
    ]
    curve = t["qssim"][rows]  # [n, 8]
    return np.concatenate([np.stack(cols, 1), curve], axis=1).astype(np.float32)


def lookup_one(table: np.ndarray, raw_params: np.ndarray) -> np.ndarray:
    """:func:`lookup` for the candidates of one logo: ``table [TABLE_WIDTH]``."""
    raw = np.asarray(raw_params)
    return lookup(np.asarray(table)[None], np.zeros(raw.shape[0], np.int64), raw)


def check_meta(meta: Mapping[str, Any], what: str) -> None:
    """Fail clearly when recorded tables (featurize meta or an export) differ from this code's."""
    if dict(meta) != table_meta():
        raise ValueError(
            f"{what} was built with other VTracer tables (version {meta.get('version')!r}) "
            f"than this code computes (version {TABLES_VERSION}); rerun `dvc repro featurize` "
            "or use the svg-quality version that made it"
        )


def _check(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise ValueError(
            "compute_tables expects a uint8 [H, W, 3] RGB array; load the logo with "
            "svg_quality.images.load_rgb"
        )
    if rgb.shape[2] != 3 or rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ValueError(f"compute_tables expects [H >= 2, W >= 2, 3], got {list(rgb.shape)}")


__all__: Sequence[str] = (
    "COND_NAMES",
    "TABLES_VERSION",
    "TABLE_WIDTH",
    "compute_tables",
    "lookup",
    "lookup_one",
    "table_meta",
    "unpack",
)
