"""VTracer tables: the vectorized tables against a direct (loop, flood-fill) computation on
tiny images, and the lookup against reading the tables row by row."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS
from svg_quality.ssim import luma
from svg_quality.vtables import (
    COND_NAMES,
    LAYER_KNOTS,
    MAX_SPECKLE,
    PRECISIONS,
    TABLE_WIDTH,
    compute_tables,
    lookup,
    lookup_one,
    unpack,
)


def tiny_logo(seed: int, h: int = 20, w: int = 24) -> np.ndarray:
    """White with a few flat rectangles, a soft gradient band and some single-pixel specks."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 255, np.uint8)
    for _ in range(3):
        y0, x0 = rng.integers(0, h - 4), rng.integers(0, w - 4)
        img[y0 : y0 + rng.integers(2, 8), x0 : x0 + rng.integers(2, 10)] = rng.integers(0, 256, 3)
    img[h // 2 : h // 2 + 3] = np.linspace(40, 200, w).astype(np.uint8)[None, :, None]
    for _ in range(5):
        img[rng.integers(0, h), rng.integers(0, w)] = rng.integers(0, 256, 3)
    return img


def direct_tables(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """The module doc's definitions, computed the slow and obvious way."""
    h, w = rgb.shape[:2]
    n = h * w
    pairs = (h - 1) * w + h * (w - 1)
    out = {k: [] for k in ("qssim", "regions", "speck", "merge", "contrast")}
    for p in PRECISIONS:
        code = [[tuple(int(c) >> (8 - p) for c in rgb[y, x]) for x in range(w)] for y in range(h)]
        # bin mean colours
        sums: dict[tuple, np.ndarray] = {}
        counts: dict[tuple, int] = {}
        for y in range(h):
            for x in range(w):
                k = code[y][x]
                sums[k] = sums.get(k, 0) + rgb[y, x].astype(np.float64)
                counts[k] = counts.get(k, 0) + 1
        mean = {k: sums[k] / counts[k] for k in sums}
        quant = np.array(
            [[np.clip(np.rint(mean[code[y][x]]), 0, 255) for x in range(w)] for y in range(h)]
        ).astype(np.uint8)
        out["qssim"].append(
            structural_similarity(
                luma(rgb, np.float64),
                luma(quant, np.float64),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=255,
            )
        )
        # flood fill
        label = -np.ones((h, w), int)
        sizes = []
        for y in range(h):
            for x in range(w):
                if label[y, x] >= 0:
                    continue
                label[y, x] = len(sizes)
                queue, size = deque([(y, x)]), 0
                while queue:
                    cy, cx = queue.popleft()
                    size += 1
                    for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                        inside = 0 <= ny < h and 0 <= nx < w
                        if inside and label[ny, nx] < 0 and code[ny][nx] == code[cy][cx]:
                            label[ny, nx] = len(sizes)
                            queue.append((ny, nx))
                sizes.append(size)
        out["regions"].append(np.log2(1 + len(sizes)))
        out["speck"].append(
            [sum(s for s in sizes if s < f * f) / n for f in range(MAX_SPECKLE + 1)]
        )
        dists, steps = [], []
        for y in range(h):
            for x in range(w):
                for ny, nx in ((y + 1, x), (y, x + 1)):
                    if ny < h and nx < w and label[ny, nx] != label[y, x]:
                        a, b = mean[code[y][x]], mean[code[ny][nx]]
                        dists.append(np.abs(a - b).sum())
                        steps.append((((a - b) @ np.array([0.299, 0.587, 0.114])) / 255) ** 2)
        dists, steps = np.array(dists), np.array(steps)
        out["merge"].append([(dists < d).sum() / pairs for d in LAYER_KNOTS])
        out["contrast"].append([steps[dists < d].sum() / pairs for d in LAYER_KNOTS])
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tables_match_a_direct_computation(seed):
    rgb = tiny_logo(seed)
    row = compute_tables(rgb)
    assert row.shape == (TABLE_WIDTH,) and row.dtype == np.float32
    got = {k: v[0] for k, v in unpack(row[None]).items()}
    want = direct_tables(rgb)
    for name in ("regions", "speck", "merge", "contrast"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(got["qssim"], want["qssim"], atol=1e-4)  # DESIGN.md's SSIM bound
    assert got["qssim"][-1] == 1.0  # 8 bits: every bin is one colour
    assert (np.diff(got["speck"], axis=1) >= 0).all() and (got["speck"][:, 0] == 0).all()


def test_known_answers_on_a_flat_two_colour_logo():
    rgb = np.full((16, 16, 3), 255, np.uint8)
    rgb[4:8, 4:8] = (250, 240, 230)  # one 16 px square, close to white
    t = {k: v[0] for k, v in unpack(compute_tables(rgb)[None]).items()}
    # Below 4 bits the square falls in white's bin (230 >> 4 = 14, 255 >> 4 = 15): one region
    np.testing.assert_allclose(t["qssim"][3:], 1.0, atol=1e-6)
    assert (t["qssim"][:3] < 0.999).all()
    np.testing.assert_allclose(t["regions"][3:], np.log2(3))  # background + square
    np.testing.assert_allclose(t["regions"][:3], 1.0)
    # the square (16 px) is erased from filter_speckle 5 (25 px) on, the background
    # (240 px) from 16 (256 px) on
    assert t["speck"][7, 4] == 0 and t["speck"][7, 5] == pytest.approx(16 / 256)
    assert t["speck"][7, 15] == pytest.approx(16 / 256) and t["speck"][7, 16] == 1.0
    boundary = 16 / (2 * 15 * 16)  # 16 boundary pairs among 480 adjacent pairs
    dist = 5 + 15 + 25  # at 8 bits the square's colour is exact
    knots = np.array(LAYER_KNOTS)
    np.testing.assert_allclose(t["merge"][7], np.where(knots > dist, boundary, 0.0), rtol=1e-6)
    step = ((np.array([5, 15, 25]) @ [0.299, 0.587, 0.114]) / 255) ** 2
    np.testing.assert_allclose(t["contrast"][7, -1], boundary * step, rtol=1e-5)


def test_lookup_equals_reading_the_tables_row_by_row():
    tables = np.stack([compute_tables(tiny_logo(s)) for s in range(3)])
    u = unpack(tables)
    rng = np.random.default_rng(0)
    n = 40
    raw = np.array([[VTRACER_DEFAULTS[k] for k in PARAM_NAMES]] * n, dtype=np.float64)
    j = {k: PARAM_NAMES.index(k) for k in PARAM_NAMES}
    raw[:, j["color_precision"]] = rng.integers(1, 9, n)
    raw[:, j["filter_speckle"]] = rng.integers(0, 140, n)  # past MAX_SPECKLE: clamped
    raw[:, j["layer_difference"]] = rng.uniform(0, 255, n)
    raw[:3, j["layer_difference"]] = [0, 16, 255]  # on knots, both ends
    logo = rng.integers(0, 3, n)
    got = lookup(tables, logo, raw)
    assert got.shape == (n, len(COND_NAMES)) and got.dtype == np.float32
    for r in range(n):
        p = int(raw[r, j["color_precision"]]) - 1
        f = min(int(raw[r, j["filter_speckle"]]), MAX_SPECKLE)
        d = raw[r, j["layer_difference"]]
        want = [
            u["qssim"][logo[r], p],
            u["regions"][logo[r], p],
            u["speck"][logo[r], p, f],
            np.interp(d, LAYER_KNOTS, u["merge"][logo[r], p]),
            np.interp(d, LAYER_KNOTS, u["contrast"][logo[r], p]),
            *u["qssim"][logo[r]],
        ]
        np.testing.assert_allclose(got[r], want, rtol=1e-6, atol=1e-7)
    # one logo's candidates: the same function, the same values
    mine = logo == 1
    np.testing.assert_array_equal(lookup_one(tables[1], raw[mine]), got[mine])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="uint8"):
        compute_tables(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="TABLE_WIDTH|tables must be"):
        lookup(np.zeros((2, 5), np.float32), np.zeros(1, int), np.zeros((1, 8)))
    with pytest.raises(ValueError, match="outside"):
        lookup(np.zeros((2, TABLE_WIDTH), np.float32), np.array([2]), np.ones((1, 8)))


def test_training_rows_equal_the_torch_free_inference_path(tmp_path):
    """dataset.build_arrays (training) and what a predictor computes from the logo file alone
    (preprocess.load_logo -> compute_tables -> lookup_one, then the spec's standardization)
    give the same vtracer columns, bit for bit."""
    import pandas as pd
    from PIL import Image

    from svg_quality.dataset import LabeledData, build_arrays, make_input_spec
    from svg_quality.logostats import STAT_NAMES, compute_stats
    from svg_quality.preprocess import load_logo

    logos = [tiny_logo(s, 32, 40) for s in range(4)]
    for i, rgb in enumerate(logos):
        Image.fromarray(rgb).save(tmp_path / f"{i}.png")
    rng = np.random.default_rng(1)
    rows = []
    for i in range(4):
        for _ in range(5):
            p = dict(VTRACER_DEFAULTS)
            p.update(
                color_precision=int(rng.integers(1, 9)),
                filter_speckle=int(rng.integers(1, 33)),
                layer_difference=int(rng.integers(1, 193)),
            )
            split = "train" if i < 3 else "test"
            rows.append(
                {
                    "image_id": f"{i}",
                    "logo_type": "simple",
                    "split": split,
                    **p,
                    "ssim": 0.9,
                    "feature_row": i,
                }
            )
    data = LabeledData(
        rows=pd.DataFrame(rows),
        features=np.zeros((4, 2048), np.float32),
        stats=np.stack([compute_stats(r) for r in logos]),
        stat_names=STAT_NAMES,
        feature_meta={"weights": {"used": "random"}},
        tables=np.stack([compute_tables(r) for r in logos]),
    )
    ranges = {n: (0.0, 255.0) for n in PARAM_NAMES}
    spec = make_input_spec(data, "auto", ranges)
    assert spec.inputs == "stats+vtracer" and spec.cond_names == COND_NAMES
    seg = next(s for s in spec.layout() if s["name"] == "vtracer")
    cols = slice(seg["start"], seg["start"] + seg["width"])
    test = data.mask("test")
    trained = build_arrays(data, spec, test).x[:, cols]
    rgb = load_logo(tmp_path / "3.png", 40)  # what the predictor decodes (longest side 40)
    raw = data.rows.loc[test, list(PARAM_NAMES)].to_numpy(dtype=np.float64)
    served = (lookup_one(compute_tables(rgb), raw) - np.float32(spec.cond_mean)) / np.float32(
        spec.cond_std
    )
    np.testing.assert_array_equal(served.astype(np.float32), trained)
