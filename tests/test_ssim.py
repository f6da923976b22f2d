"""SSIM (svg_quality.ssim) agrees with skimage on real logo / VTracer-rendering pairs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from skimage.metrics import structural_similarity

from svg_quality.config import parse_params
from svg_quality.paramspace import VTRACER_DEFAULTS
from svg_quality.ssim import SSIMReference, luma, ssim
from svg_quality.vectorize import convert, render, score
from tests.conftest import load_repo_params


def _reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """DESIGN.md's definition, computed by skimage in float64."""
    return structural_similarity(
        luma(a, np.float64),
        luma(b, np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )


def _logo(kind: str, size: tuple[int, int] = (96, 64)) -> np.ndarray:
    rng = np.random.default_rng(len(kind))
    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    w, h = size
    if kind == "shapes":
        d.ellipse((5, 5, w // 2, h - 5), fill=(200, 30, 40))
        d.rectangle((w // 3, h // 4, w - 4, h - 8), fill=(20, 60, 200))
    elif kind == "text":
        d.text((4, h // 3), "Logo 42", fill=(10, 10, 80), font_size=22)
    else:  # busy: many small overlapping discs
        for _ in range(40):
            x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(2, 12))
            d.ellipse(
                (x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3))
            )
    return np.asarray(im)


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def vtracer_cfg():
    return parse_params(load_repo_params()).vtracer


@pytest.mark.parametrize("kind", ["shapes", "text", "busy"])
def test_agrees_with_skimage_on_vtracer_renderings(kind: str, vtracer_cfg) -> None:
    logo = _logo(kind)
    ref = SSIMReference(logo)
    settings = [
        dict(VTRACER_DEFAULTS),
        {**VTRACER_DEFAULTS, "color_precision": 1},  # flattened: low SSIM
        {**VTRACER_DEFAULTS, "filter_speckle": 20, "splice_threshold": 170},
    ]
    values = []
    for params in settings:
        rendering = render(convert(_png(logo), params, vtracer_cfg), logo.shape[1], logo.shape[0])
        got, want = ref.score(rendering), _reference_ssim(logo, rendering)
        assert abs(got - want) < 1e-4, (params, got, want)
        values.append(got)
    assert values[0] > values[1]  # the renderings really differ, so the check means something


def test_identity_and_symmetry() -> None:
    a, b = _logo("busy"), _logo("shapes")
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-5)
    assert ssim(a, b) == pytest.approx(_reference_ssim(a, b), abs=1e-4)


def test_score_reports_a_consistent_result(vtracer_cfg) -> None:
    logo = _logo("shapes")
    s = score(logo, VTRACER_DEFAULTS, vtracer_cfg)
    assert 0.0 <= s.ssim <= 1.0
    assert s.svg_bytes == len(s.svg.encode()) and s.n_paths == s.svg.count("<path") > 0
    assert min(s.convert_ms, s.render_ms, s.ssim_ms) > 0
    rendering = render(s.svg, logo.shape[1], logo.shape[0])
    assert s.ssim == pytest.approx(_reference_ssim(logo, rendering), abs=1e-4)


def test_bad_shapes_are_refused() -> None:
    ref = SSIMReference(_logo("shapes"))
    with pytest.raises(ValueError, match="logo's own size"):
        ref.score(np.zeros((10, 20, 3), np.uint8) + 255)
    with pytest.raises(ValueError, match="at least 11x11"):
        SSIMReference(np.zeros((8, 40, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        luma(np.zeros((16, 16), np.uint8))
