"""The real rows the export verifies and times on: the test split (val, then train, when
a tiny dataset has no test rows), as model rows and as the raw blocks the graphs take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from svg_quality.inputspec import InputSpec
from svg_quality.paramspace import PARAM_NAMES


@dataclass(frozen=True)
class TestSet:
    """Model rows, their raw parts, and the logos they come from."""

    split: str
    x: np.ndarray  # [n, width] model rows
    y: np.ndarray  # [n] labelled SSIM
    raw_params: np.ndarray  # [n, 8]
    feature_rows: np.ndarray  # [n] rows of the per-logo tables
    image_ids: np.ndarray  # [n]
    logo_types: np.ndarray  # [n]
    # graph input name -> per-logo table (features.npy, stats.npy, the probe), and
    # "vtables": the VTracer tables (tables.npy) the vtracer block is looked up in
    tables: dict[str, np.ndarray | None]

    def logo_blocks(self, spec: InputSpec, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The per-logo raw blocks of the logos at table ``rows`` (``[len(rows), w]`` each),
        keyed by graph input name: what the candidates and end-to-end graphs take; with the
        vtracer segment also their ``vtables`` (:meth:`InputSpec.complete` looks it up).
        A size input is fed the largest trained long side, so the checks run its
        arithmetic away from the view (where its value is 0)."""
        names = [s.raw for s in spec.segments() if s.per_logo and s.name != "size"]
        names += ["vtables"] if spec.uses_vtracer else []
        out = {n: _rows(self.tables[n], rows, n) for n in names}
        if spec.uses_size:
            out["long_side"] = np.full((len(rows), 1), float(spec.sizes[-1]), np.float32)
        return out


def _rows(table: np.ndarray | None, rows: np.ndarray, name: str) -> np.ndarray:
    if table is None:
        raise ValueError(f"the model's inputs need {name}, which the labelled data lacks")
    return np.ascontiguousarray(table[rows], dtype=np.float32)


def load_test_set(data: Any, spec: InputSpec) -> TestSet:
    """The test split's ok rows (val, then train, when a tiny dataset has no test rows)."""
    from svg_quality.dataset import build_arrays  # lazy: torch and pandas

    for split in ("test", "val", "train"):
        mask = data.mask(split)
        if mask.any():
            break
    else:
        raise ValueError("the labels have no ok rows in any split; nothing to verify on")
    rows = data.rows.loc[mask]
    arrays = build_arrays(data, spec, mask)
    return TestSet(
        split=split,
        x=arrays.x,
        y=arrays.y,
        raw_params=rows[list(PARAM_NAMES)].to_numpy(dtype=np.float32),
        feature_rows=rows["feature_row"].to_numpy(),
        image_ids=arrays.image_id,
        logo_types=arrays.logo_type,
        tables={
            "image_features": data.features,
            "stats": data.stats,
            "probe": data.probe,
            "vtables": data.tables,
        },
    )
