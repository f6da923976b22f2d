"""The suggestion check: real VTracer conversions of the top suggestion vs VTracer's defaults."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from svg_quality.images import load_rgb

GUARD_MARGIN = 0.01  # predicted SSIM gain over the defaults worth switching for (report only)


def validate_suggestions(
    predictor: Any,
    logos: Sequence[tuple[str, str, Path]],
    vtracer_cfg: Any,
    *,
    candidates: int,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Actual SSIM (real VTracer conversions) of the top suggestion vs VTracer's defaults,
    for each ``(image_id, logo_type, path)``."""
    from tqdm import tqdm

    # lazy: scipy (this module imports with numpy alone)
    from svg_quality.ssim import SSIMReference
    from svg_quality.vectorize import ConversionFailed, RenderFailed, score

    rows = []
    for image_id, logo_type, path in tqdm(logos, desc="suggest", unit="logo", disable=not progress):
        rgb = load_rgb(path)
        png = Path(path).read_bytes()
        res = predictor.suggest(path, top_k=1, candidates=candidates)  # ranked, unverified
        best = res.ranked[0]
        row: dict[str, Any] = {
            "image_id": image_id,
            "logo_type": logo_type,
            "predicted_default": res.default.predicted_ssim,
            "predicted_best": best.predicted_ssim,
            "best_is_default": best.is_default,
            "score_ms": res.score_ms,
            **{f"best_{k}": v for k, v in best.params.items()},
        }
        ref = SSIMReference(rgb)
        try:
            d = score(rgb, res.default.params, vtracer_cfg, png_bytes=png, reference=ref)
            s = (
                d
                if best.is_default
                else score(rgb, best.params, vtracer_cfg, png_bytes=png, reference=ref)
            )
        except (ConversionFailed, RenderFailed) as exc:
            row.update(status="failed", error=str(exc))
            rows.append(row)
            continue
        row.update(
            status="ok",
            error="",
            actual_default=d.ssim,
            actual_best=s.ssim,
            uplift=s.ssim - d.ssim,
            svg_bytes_default=d.svg_bytes,
            svg_bytes_best=s.svg_bytes,
        )
        rows.append(row)
    ok = [r for r in rows if r["status"] == "ok"]
    up = np.array([r["uplift"] for r in ok])
    summary: dict[str, Any] = {
        "logos": len(rows),
        "failed": len(rows) - len(ok),
        "candidates": candidates + 1,
    }
    if ok:
        summary.update(
            mean_ssim_default=float(np.mean([r["actual_default"] for r in ok])),
            mean_ssim_suggested=float(np.mean([r["actual_best"] for r in ok])),
            mean_uplift=float(up.mean()),
            median_uplift=float(np.median(up)),
            share_improved=float((up > 0).mean()),
            share_worse=float((up < 0).mean()),
            share_default_kept=float(np.mean([r["best_is_default"] for r in ok])),
            # Switching only when the model predicts a clear gain (>= GUARD_MARGIN) keeps
            # VTracer's defaults where the predicted differences are within the model's error.
            guard_margin=GUARD_MARGIN,
            guarded_mean_uplift=float(
                np.mean(
                    [
                        r["uplift"]
                        if r["predicted_best"] - r["predicted_default"] >= GUARD_MARGIN
                        else 0.0
                        for r in ok
                    ]
                )
            ),
            guarded_share_switched=float(
                np.mean([r["predicted_best"] - r["predicted_default"] >= GUARD_MARGIN for r in ok])
            ),
            mean_predicted_uplift=float(
                np.mean([r["predicted_best"] - r["predicted_default"] for r in ok])
            ),
            mean_svg_bytes_default=float(np.mean([r["svg_bytes_default"] for r in ok])),
            mean_svg_bytes_suggested=float(np.mean([r["svg_bytes_best"] for r in ok])),
            score_ms_p50=float(np.median([r["score_ms"] for r in ok])),
            by_type={
                t: {
                    "logos": int(sum(r["logo_type"] == t for r in ok)),
                    "mean_uplift": float(np.mean([r["uplift"] for r in ok if r["logo_type"] == t])),
                    "share_improved": float(
                        np.mean([r["uplift"] > 0 for r in ok if r["logo_type"] == t])
                    ),
                }
                for t in sorted({r["logo_type"] for r in ok})
            },
        )
    return summary, rows
