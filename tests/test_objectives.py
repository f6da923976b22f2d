"""The suggest objectives on hand-made (SSIM, bytes) tables: ranking, the size bar,
balanced's trade-off, the Pareto front, and the fallback to VTracer's defaults."""

from __future__ import annotations

import numpy as np
import pytest

from svg_quality import objectives

# candidate 0 is VTracer's defaults
SSIM = np.array([0.900, 0.930, 0.899, 0.890, 0.910])
BYTES = np.array([10_000, 40_000, 5_000, 2_000, 9_000], dtype=np.float64)
LG = np.log10(BYTES)


def test_quality_orders_by_ssim_and_breaks_ties_by_bytes():
    r = objectives.rank(SSIM, LG, "quality")
    assert r.order.tolist() == [1, 4, 0, 2, 3]
    tie = objectives.rank(np.array([0.9, 0.9, 0.9]), np.log10([300.0, 100.0, 200.0]), "quality")
    assert tie.order.tolist() == [1, 2, 0]


def test_quality_works_without_a_size_head_and_the_others_say_why_not():
    assert objectives.rank(SSIM, None, "quality").order[0] == 1
    for objective in ("size", "balanced"):
        with pytest.raises(ValueError, match="no size head"):
            objectives.rank(SSIM, None, objective)


def test_size_takes_the_smallest_svg_above_defaults_minus_tolerance():
    r = objectives.rank(SSIM, LG, "size")  # bar 0.898: candidates 0, 1, 2, 4 pass; 3 not
    assert r.threshold == pytest.approx(0.898)
    assert r.eligible.tolist() == [True, True, True, False, True]
    assert r.order.tolist() == [2, 4, 0, 1, 3]  # eligible by bytes, then the rest by SSIM
    # a tighter tolerance drops candidate 2 (0.899 < 0.8995)
    assert objectives.rank(SSIM, LG, "size", tolerance=0.0005).order[0] == 4
    # an explicit --min-ssim replaces the defaults-derived bar
    r = objectives.rank(SSIM, LG, "size", min_ssim=0.85)
    assert r.threshold == 0.85 and r.order[0] == 3


def test_balanced_trades_0_01_ssim_per_halving():
    r = objectives.rank(SSIM, LG, "balanced")
    expected = SSIM - objectives.BALANCE_PER_DOUBLING * np.log2(BYTES / BYTES[0])
    np.testing.assert_allclose(r.score, expected)
    assert r.order[0] == int(np.argmax(expected)) == 3  # 1/5 of the bytes for -0.01 SSIM


def test_pareto_front_is_the_non_dominated_set_smallest_first():
    front = objectives.pareto_front(SSIM, LG).tolist()
    assert front == [3, 2, 4, 1]  # 0 is dominated by 4 (smaller and better)
    for i in front:  # nothing on the front is beaten on both axes
        assert not np.any((SSIM[i] < SSIM) & (BYTES[i] >= BYTES))


def test_best_falls_back_to_the_defaults_when_nothing_beats_them():
    worse = np.array([0.95, 0.90, 0.80])
    big = np.log10([1_000.0, 5_000.0, 9_000.0])
    for objective in objectives.OBJECTIVES:
        assert objectives.best(worse, big, objective) == 0
    # size with an explicit bar nobody reaches keeps the defaults
    assert objectives.best(SSIM, LG, "size", min_ssim=0.99) == 0
    # ... and when something beats them, it wins
    assert objectives.best(SSIM, LG, "quality") == 1
    assert objectives.best(SSIM, LG, "size") == 2


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="objective 'speed' is invalid"):
        objectives.rank(SSIM, LG, "speed")
    with pytest.raises(ValueError, match="tolerance = -0.1"):
        objectives.rank(SSIM, LG, "size", tolerance=-0.1)
    with pytest.raises(ValueError, match="min_ssim = 1.5"):
        objectives.rank(SSIM, LG, "size", min_ssim=1.5)
    with pytest.raises(ValueError, match="5 SSIM values but 2 sizes"):
        objectives.rank(SSIM, LG[:2], "size")
