"""Ranking metrics against a direct, hand-worked computation on a tiny table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from svg_quality.metrics import ranking_metrics

DEFAULTS = {"a": 1.0, "b": 2.0}


def _table() -> pd.DataFrame:
    # logo x: defaults row (a=1,b=2) true 0.5; model ranks row 3 first (true 0.7), best is 0.9
    # logo y: ties in the prediction (0.8, 0.8) -> worst tied true 0.2 is the pick
    # logo z: one row, the defaults: no rho, regret 0, does not beat itself
    return pd.DataFrame(
        {
            "image_id": ["x", "x", "x", "y", "y", "y", "z"],
            "a": [1.0, 3.0, 5.0, 1.0, 3.0, 5.0, 1.0],
            "b": [2.0, 2.0, 2.0, 2.0, 9.0, 9.0, 2.0],
            "actual": [0.5, 0.9, 0.7, 0.6, 0.2, 0.4, 0.3],
            "predicted": [0.1, 0.5, 0.6, 0.3, 0.8, 0.8, 0.9],
        }
    )


def test_ranking_metrics_match_direct_computation() -> None:
    m = ranking_metrics(_table(), DEFAULTS)
    # x: ranks true [1,3,2], pred [1,2,3] -> rho = 0.5; y: true [3,1,2], pred [1,2.5,2.5]
    rx = np.corrcoef([1, 3, 2], [1, 2, 3])[0, 1]
    ry = np.corrcoef([3, 1, 2], [1, 2.5, 2.5])[0, 1]
    assert rx == pytest.approx(0.5)
    assert m["spearman_mean"] == pytest.approx((rx + ry) / 2)
    assert m["spearman_logos"] == 2
    # regret: x 0.9-0.7, y 0.6-0.2 (worst of the tied pair), z 0
    assert m["regret_mean"] == pytest.approx((0.2 + 0.4 + 0.0) / 3)
    # beats defaults: x 0.7 > 0.5 yes, y 0.2 > 0.6 no, z 0.3 > 0.3 no
    assert m["beats_defaults_share"] == pytest.approx(1 / 3)
    assert m["defaults_logos"] == 3 and m["logos"] == 3


def test_ranking_metrics_perfect_model_and_no_defaults() -> None:
    t = _table()
    t["predicted"] = t["actual"]
    m = ranking_metrics(t, DEFAULTS)
    assert m["spearman_mean"] == pytest.approx(1.0)
    assert m["regret_mean"] == 0.0
    assert m["beats_defaults_share"] == pytest.approx(1 / 3)  # y and z: the defaults are best
    none = ranking_metrics(t, {"a": 7.0, "b": 2.0})
    assert math.isnan(none["beats_defaults_share"]) and none["defaults_logos"] == 0


def test_ranking_metrics_bad_input_names_the_column() -> None:
    with pytest.raises(ValueError, match="'predicted'"):
        ranking_metrics(_table().drop(columns="predicted"), DEFAULTS)
    with pytest.raises(ValueError, match=r"\['c'\]"):
        ranking_metrics(_table(), {"c": 1.0})
