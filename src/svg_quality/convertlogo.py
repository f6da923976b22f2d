"""One logo's conversion, as `svg-quality convert` does it wherever it runs (a local
worker process or a Dask worker): suggest and verify at the input's own size, pick,
minify, and return the record and what to write (:func:`convert_one`).

Nothing here writes a file: the batch (:mod:`svg_quality.convert`) does, in one process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svg_quality.io import file_digest, json_digest
from svg_quality.minify import minify
from svg_quality.verify import suggest


@dataclass(frozen=True)
class Job:
    source: Path
    rel: str  # output path relative to OUT (the input's relative path, suffix .svg)


@dataclass(frozen=True)
class Settings:
    model: str
    runtime: str
    objective: str
    verify: int
    candidates: int
    min_ssim: float | None
    tolerance: float
    seed: int
    max_side: int = 2048
    colour_tolerance: float = 0.5
    minify: bool = True

    def key(self) -> str:
        """What decides the output besides the input: these settings and the model's
        metadata (its digests name every model file)."""
        meta = Path(self.model) / "metadata.json"
        model = file_digest(meta) if meta.is_file() else self.model
        return json_digest(
            {**{k: v for k, v in self.__dict__.items() if k != "model"}, "model": model}
        )


@dataclass(frozen=True)
class Output:
    """What one logo's conversion writes: the chosen SVG, and the page's side files."""

    svg: str = ""
    defaults_svg: str = ""
    png: bytes = b""  # the pixels VTracer traced


def sized_svg(svg: str, size: tuple[int, int], traced: tuple[int, int]) -> str:
    """VTracer's SVG (``width``/``height`` of the ``traced`` pixels) shown at the input's
    own ``size``: when they differ (a resampled input), a viewBox of the traced size and
    the input's width and height on the root element."""
    import re

    if tuple(size) == tuple(traced):
        return svg
    root = re.search(r"<svg\b[^>]*>", svg)
    if root is None:
        raise ValueError("VTracer's output has no <svg> element")
    tag = re.sub(r'\s(width|height|viewBox)="[^"]*"', "", root.group(0))
    tag = tag[:-1].rstrip("/") + (
        f' width="{size[0]}" height="{size[1]}" viewBox="0 0 {traced[0]} {traced[1]}">'
    )
    return svg[: root.start()] + tag + svg[root.end() :]


def convert_one(job: Job, settings: Settings, predictor: Any) -> tuple[dict[str, Any], Output]:
    """Suggest, verify and pick one logo's SVG at its own size, minified unless
    ``settings.minify`` is off -> (record, output); never raises for a bad image (status
    ``bad``) or a failed conversion (status ``failed``). ``predictor``: the loaded
    :class:`~svg_quality.serving.predictor.Predictor` of the process it runs in."""
    from svg_quality.ssim import SSIMReference  # lazy: scipy, which `--help` need not load

    rec: dict[str, Any] = {"source": str(job.source), "output": job.rel}
    t0 = time.perf_counter()
    try:
        res = suggest(
            predictor,
            job.source,
            objective=settings.objective,
            top_k=1,
            candidates=settings.candidates,
            seed=settings.seed,
            min_ssim=settings.min_ssim,
            tolerance=settings.tolerance,
            verify=settings.verify,
            max_side=settings.max_side,
            colour_tolerance=settings.colour_tolerance,
            score_all=False,  # the same choice; sets larger than it are not rendered
        )
    except (ValueError, FileNotFoundError) as exc:  # unreadable image, named by load_logo
        rec.update(status="bad", error=str(exc), ms=(time.perf_counter() - t0) * 1e3)
        return rec, Output()
    except RuntimeError as exc:  # VTracer failed on every candidate
        rec.update(status="failed", error=str(exc), ms=(time.perf_counter() - t0) * 1e3)
        return rec, Output()
    chosen, default = res.chosen, res.verified[0]
    size, traced = res.input_size, res.size
    rgb = res.pixels  # what VTracer traced
    svg = written = sized_svg(chosen.svg, size, traced)
    ssim = chosen.ssim
    if settings.minify:
        small = minify(svg, *traced)
        if small.changed:  # the figures of what is written, at the size traced
            written = small.svg
            ssim = float(np.clip(SSIMReference(rgb).score(small.rendering), 0, 1))
    rec.update(
        status="ok",
        objective=res.objective,
        params=chosen.candidate.params,
        origin=chosen.candidate.origin,
        is_default=chosen.candidate.is_default,
        fell_back=res.fell_back,
        width=size[0],
        height=size[1],
        traced_width=traced[0],
        traced_height=traced[1],
        resampled=tuple(size) != tuple(traced),
        scale=res.scale,
        predicted_ssim=chosen.candidate.predicted_ssim,
        predicted_bytes=chosen.candidate.predicted_bytes,
        ssim=ssim,
        svg_bytes=len(written.encode()),
        vtracer_bytes=len(svg.encode()),
        minified=written is not svg,
        delta_e=chosen.delta_e,
        n_paths=chosen.n_paths,
        default_predicted_ssim=default.candidate.predicted_ssim,
        default_predicted_bytes=default.candidate.predicted_bytes,
        default_ssim=default.ssim,
        default_svg_bytes=default.svg_bytes,
        default_delta_e=default.delta_e,
        verified=len(res.verified),
        colour_refused=res.colour_refused,
        ms=(time.perf_counter() - t0) * 1e3,
    )
    return rec, Output(
        svg=written,
        defaults_svg="" if default.error else sized_svg(default.svg, size, traced),
        png=_png(rgb),
    )


def _png(rgb: np.ndarray) -> bytes:
    """The pixels VTracer traced, as PNG (the page's original)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()
