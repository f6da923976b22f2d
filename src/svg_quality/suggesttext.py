"""What ``svg-quality suggest`` prints: the ranked candidates, the Pareto front, the
verified conversions and the choice, one line each (``--json`` prints
:meth:`~svg_quality.verify.Suggestions.to_dict` instead)."""

from __future__ import annotations

from svg_quality.verify import Candidate, Suggestions


def fmt_bytes(v: float | None) -> str:
    """Predicted bytes right-aligned in nine columns, or ``n/a`` without a size head."""
    return "      n/a" if v is None else f"{v:>9,.0f}"


def candidate_line(rank: str, c: Candidate, tag: str = "") -> str:
    """One candidate: its rank, predicted SSIM and bytes, and its parameters."""
    values = " ".join(f"{k}={v:g}" for k, v in c.params.items())
    tag = tag or ("  (VTracer defaults)" if c.is_default else "")
    return (
        f"{rank}. predicted SSIM {c.predicted_ssim:.4f}  bytes {fmt_bytes(c.predicted_bytes)}"
        f"  {values}{tag}"
    )


def print_suggestions(res: Suggestions) -> None:
    """The scored candidates' summary, the ranked sets, the Pareto front when asked for,
    and the verified conversions when there are any."""
    bar = f", SSIM bar {res.threshold:.4f}" if res.threshold is not None else ""
    print(
        f"{res.n_candidates} parameter sets scored in {res.score_ms:.1f} ms (objective "
        f"{res.objective}{bar}); VTracer defaults predict {res.default.predicted_ssim:.4f}"
        + (
            f", {res.default.predicted_bytes:,.0f} bytes"
            if res.default.predicted_bytes is not None
            else ""
        )
    )
    for rank, c in enumerate(res.ranked, 1):
        print(candidate_line(f"{rank:2d}", c))
    if res.pareto is not None:
        print(f"Pareto front (predicted SSIM / bytes), {len(res.pareto)} sets, smallest first:")
        for c in res.pareto:
            print(candidate_line(" -", c))
    if res.verified is not None:
        print_verified(res)


def print_verified(res: Suggestions) -> None:
    """Actual SSIM, bytes, colour error and paths of each verified set, then the choice."""
    where = "the model's view"
    if res.size is not None:
        where = f"{res.size[0]}x{res.size[1]} px"
        if tuple(res.size) != tuple(res.input_size):
            where += f" (the input, {res.input_size[0]}x{res.input_size[1]}, resampled)"
    print(
        f"verified with VTracer at {where} ({len(res.verified)} conversions, "
        f"{res.verify_ms:.0f} ms; pixel parameters x{res.scale:.2f}):"
    )
    names = {"defaults": "defaults ", "fallback": "fallback "}
    for v in res.verified:
        name = names.get(v.candidate.origin, "candidate")
        if v.error:
            print(f"  {name} failed: {v.error}")
            continue
        de = "   n/a" if v.delta_e is None else f"{v.delta_e:6.2f}"
        print(
            f"  {name} actual SSIM {v.ssim:.4f}  dE {de}  {v.svg_bytes:>9,} bytes"
            f"  {v.n_paths:>5} paths  (predicted {v.candidate.predicted_ssim:.4f}, "
            f"{fmt_bytes(v.candidate.predicted_bytes).strip()} bytes)"
        )
    best, default = res.chosen, res.verified[0]
    if default.error is None:
        print(
            f"verified with VTracer: chosen SSIM {best.ssim:.4f} ({best.svg_bytes:,} bytes "
            f"SVG), defaults SSIM {default.ssim:.4f} ({default.svg_bytes:,} bytes SVG), "
            f"uplift {best.ssim - default.ssim:+.4f}"
            + ("; no model candidate won: keeping VTracer's defaults" if res.fell_back else "")
            + (
                f"; {res.colour_refused} better candidate refused for its colour error"
                if res.colour_refused
                else ""
            )
        )
    values = " ".join(f"{k}={v:g}" for k, v in best.candidate.params.items())
    print(f"chosen by {res.objective}: {values}")
