"""Logo statistics on hand-made images with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from svg_quality.logostats import STAT_NAMES, compute_stats


def stats_of(rgb: np.ndarray) -> dict[str, float]:
    s = compute_stats(rgb)
    assert s.dtype == np.float32 and s.shape == (len(STAT_NAMES),)
    assert np.isfinite(s).all()
    return dict(zip(STAT_NAMES, s.tolist(), strict=True))


def canvas(h: int, w: int, color=(255, 255, 255)) -> np.ndarray:
    return np.full((h, w, 3), color, np.uint8)


def two_colour_square(scale: int = 1) -> np.ndarray:
    """64x64 white with a centred 32x32 black square (ink 1/4)."""
    img = canvas(64 * scale, 64 * scale)
    img[16 * scale : 48 * scale, 16 * scale : 48 * scale] = 0
    return img


def test_two_colour_square_known_answers():
    s = stats_of(two_colour_square())
    h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))  # 0.811 bits
    assert s["colors_log2"] == 1.0  # two colours
    assert s["color_entropy"] == pytest.approx(h, abs=1e-6)
    assert s["luma_entropy"] == pytest.approx(h, abs=1e-6)
    assert s["top1_share"] == pytest.approx(0.75)
    assert s["top4_share"] == pytest.approx(1.0)
    assert s["palette_err_4"] == pytest.approx(0.0, abs=1e-7)  # two colours, four allowed
    assert s["background_luma"] == pytest.approx(1.0)
    assert s["ink_coverage"] == pytest.approx(0.25)
    assert s["luma_std"] == pytest.approx(math.sqrt(0.25 * 0.75), rel=1e-4)  # Bernoulli * 255
    # A hard edge lights up the ring of pixels within one pixel of the outline
    assert s["edge_density"] == pytest.approx((34 * 34 - 30 * 30) / 64**2)
    assert s["soft_gradient_share"] == 0.0  # no shading
    assert s["thin_share"] == 0.0 and s["narrow_share"] == 0.0  # a 32 px square is no stroke
    assert s["detail_share"] == 0.0
    assert s["aspect_log2"] == 0.0


def test_palette_error_counts_banding():
    """Four grey levels in equal bands: 4 colours explain it exactly, fewer cannot."""
    img = canvas(16, 64)
    for i, v in enumerate((0, 80, 160, 240)):
        img[:, i * 16 : (i + 1) * 16] = v
    img = np.concatenate([img, img[:, ::-1]], axis=1)  # 8 bands, still 4 colours
    s = stats_of(img)
    assert s["colors_log2"] == 2.0
    assert s["palette_err_4"] == pytest.approx(0.0, abs=1e-7)
    assert s["top4_share"] == pytest.approx(1.0)
    assert s["top1_share"] == pytest.approx(0.25)
    assert s["color_entropy"] == pytest.approx(2.0)


def test_all_white_is_empty():
    s = stats_of(canvas(40, 40))
    assert s["colors_log2"] == 0.0 and s["top1_share"] == 1.0
    assert s["ink_coverage"] == 0.0 and s["thin_share"] == 0.0
    assert s["edge_density"] == 0.0 and s["grad_mean"] == 0.0 and s["luma_std"] == 0.0


def test_thin_lines_are_thin_and_thick_bars_are_not():
    img = canvas(64, 64)
    img[8::8, :] = (200, 0, 0)  # 1 px red lines
    s = stats_of(img)
    assert s["thin_share"] == pytest.approx(1.0)
    assert s["narrow_share"] == pytest.approx(1.0)
    assert s["detail_share"] == pytest.approx((img[..., 1] == 0).mean())  # the lines only

    bars = canvas(64, 64)
    for y in range(4, 60, 10):
        bars[y : y + 4, :] = 0  # 4 px bars: survive a 3x3 opening, not a 5x5 one
    s = stats_of(bars)
    assert s["thin_share"] == 0.0
    assert s["narrow_share"] == pytest.approx(1.0)

    wide = canvas(64, 64)
    wide[10:30, :] = 0
    assert stats_of(wide)["narrow_share"] == 0.0


def test_gradient_is_soft_not_edgy():
    ramp = np.tile(np.linspace(0, 255, 256).round().astype(np.uint8)[None, :, None], (32, 1, 3))
    s = stats_of(ramp)
    assert s["soft_gradient_share"] > 0.95
    assert s["edge_density"] == 0.0
    assert s["colors_log2"] == 4.0  # 16 grey levels at 4 bits
    assert s["palette_err_4"] > 0.05  # four colours band a ramp badly
    assert s["palette_err_16"] < s["palette_err_4"]
    assert s["luma_entropy"] == pytest.approx(8.0, abs=0.01)
    flat = stats_of(two_colour_square())
    assert s["soft_gradient_share"] > flat["soft_gradient_share"]


def test_ink_is_measured_against_the_background():
    """White on dark blue: the background is the border colour, ink is the logo."""
    img = canvas(64, 64, (10, 20, 120))
    img[16:48, 16:48] = 255
    s = stats_of(img)
    assert s["ink_coverage"] == pytest.approx(0.25)
    assert s["background_luma"] == pytest.approx(
        (0.299 * 10 + 0.587 * 20 + 0.114 * 120) / 255, 1e-4
    )


def test_scale_invariant_shares():
    small, big = stats_of(two_colour_square(1)), stats_of(two_colour_square(3))
    for name in (
        "colors_log2",
        "color_entropy",
        "top1_share",
        "top4_share",
        "palette_err_4",
        "ink_coverage",
        "luma_std",
        "luma_entropy",
        "aspect_log2",
        "background_luma",
    ):
        assert big[name] == pytest.approx(small[name], abs=1e-6), name
    # Edge pixels scale with the outline, not the area: 3x the size, a third of the share.
    assert big["edge_density"] == pytest.approx(small["edge_density"] / 3, rel=0.1)


def test_aspect_and_tiny_images():
    assert stats_of(canvas(32, 128))["aspect_log2"] == pytest.approx(2.0)
    assert stats_of(canvas(128, 32))["aspect_log2"] == pytest.approx(-2.0)
    one = stats_of(np.zeros((1, 1, 3), np.uint8))  # degenerate but valid
    assert one["colors_log2"] == 0.0


@pytest.mark.parametrize(
    "bad",
    [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8)],
)
def test_rejects_wrong_arrays(bad):
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        compute_stats(bad)
    with pytest.raises(ValueError, match="empty image"):
        compute_stats(np.zeros((0, 5, 3), np.uint8))


def test_real_synthetic_logos_are_sane():
    """Every statistic stays finite and in range on each generated logo type."""
    from svg_quality import synthetic
    from svg_quality.images import to_rgb_on_white

    shares = [n for n in STAT_NAMES if n.endswith("_share") or n in ("ink_coverage",)]
    for logo_type in ("simple", "text", "gradient", "complex"):
        rgb = np.asarray(to_rgb_on_white(synthetic.generate(logo_type, 0, 1)))
        s = stats_of(rgb)
        for name in shares:
            assert 0.0 <= s[name] <= 1.0, (logo_type, name, s[name])
        assert 0.0 <= s["colors_log2"] <= 12.0
        assert 0.0 <= s["luma_entropy"] <= 8.0
