"""Label throughput: the stage's per-sample path vs the original project's naive loop.

Same synthetic 256 px logos and the same VTracer parameter sets, one process each,
interleaved logo by logo so background load hits both alike.

* stage:    svg_quality.labeling.run_sample (PNG bytes -> vtracer.convert_raw_image_to_svg
            -> resvg in memory -> float32 SSIM against a per-logo precomputed reference)
* baseline: temp files and vtracer.convert_image_to_svg_py, cairosvg rendering to a PNG,
            skimage structural_similarity on RGB with default arguments (channel_axis)

    python bench/label_throughput.py [--per-type 3] [--samples 6] [--params params.yaml]
    python bench/label_throughput.py --smoke     # seconds: 1 logo per type, 2 sets each
    python bench/label_throughput.py --json bench/results/label_throughput.json  # the record

Prints samples/s both ways, the per-sample time split, and the ratio last.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchjson import Record
from svg_quality.config import LOGO_TYPES, load_params
from svg_quality.images import to_rgb_on_white
from svg_quality.io import image_id_for
from svg_quality.labeling import Task, run_sample
from svg_quality.paramspace import sample_params
from svg_quality.synthetic import generate
from svg_quality.vectorize import vtracer_kwargs


def naive_sample(png: bytes, params: dict, vtracer_cfg, workdir: Path) -> dict[str, float]:
    """One sample the way the original project did it: the logo and the SVG go through
    temporary files, cairosvg renders, skimage compares RGB with its default arguments."""
    import cairosvg
    import vtracer
    from skimage.metrics import structural_similarity

    with (
        tempfile.NamedTemporaryFile(suffix=".png", dir=workdir) as src,
        tempfile.NamedTemporaryFile(suffix=".svg", dir=workdir) as dst,
    ):
        t0 = time.perf_counter()
        src.write(png)
        src.flush()
        kwargs = vtracer_kwargs(params, vtracer_cfg)
        vtracer.convert_image_to_svg_py(src.name, dst.name, **kwargs)
        t1 = time.perf_counter()
        logo = np.asarray(Image.open(src.name).convert("RGB"))
        h, w = logo.shape[:2]
        rgba = Image.open(
            io.BytesIO(cairosvg.svg2png(url=dst.name, output_width=w, output_height=h))
        )
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rendering = np.asarray(Image.alpha_composite(white, rgba.convert("RGBA")).convert("RGB"))
        t2 = time.perf_counter()
        value = structural_similarity(logo, rendering, channel_axis=-1)
        t3 = time.perf_counter()
    return {"ssim": float(value), "convert": t1 - t0, "render": t2 - t1, "score": t3 - t2}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--per-type", type=int, default=3, help="synthetic logos per logo type")
    ap.add_argument("--samples", type=int, default=6, help="parameter sets per logo")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--json", default=None, help="also write the record here (benchjson)")
    ap.add_argument("--smoke", action="store_true", help="seconds: --per-type 1 --samples 2")
    args = ap.parse_args()
    record = Record(Path(__file__).stem)
    if args.smoke:
        args.per_type, args.samples = 1, 2
    p = load_params(args.params)

    logos = []  # (image_id, png bytes)
    for t in LOGO_TYPES:
        for i in range(args.per_type):
            rgb = to_rgb_on_white(generate(t, seed=0, index=i, size=256))
            buf = io.BytesIO()
            rgb.save(buf, format="PNG")
            logos.append((image_id_for(buf.getvalue()), buf.getvalue()))

    stage = {"convert": [], "render": [], "score": [], "total": 0.0}
    naive = {"convert": [], "render": [], "score": [], "total": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # burn-in: imports, first-call costs
        warm = logos[0]
        run_sample(
            Task(warm[0], 0, sample_params(warm[0], 1, p.vtracer.ranges, 0)[0], warm[1], p.vtracer)
        )
        naive_sample(warm[1], sample_params(warm[0], 1, p.vtracer.ranges, 0)[0], p.vtracer, workdir)

        for image_id, png in logos:
            sets = sample_params(image_id, args.samples, p.vtracer.ranges, p.label.seed)
            t0 = time.perf_counter()
            for i, params in enumerate(sets):
                row = run_sample(Task(image_id, i, params, png, p.vtracer))
                if row["status"] == "ok":
                    stage["convert"].append(row["convert_ms"])
                    stage["render"].append(row["render_ms"])
                    stage["score"].append(row["ssim_ms"])
            stage["total"] += time.perf_counter() - t0

            t0 = time.perf_counter()
            for params in sets:
                r = naive_sample(png, params, p.vtracer, workdir)
                for k in ("convert", "render", "score"):
                    naive[k].append(r[k] * 1e3)
            naive["total"] += time.perf_counter() - t0

    n = len(logos) * args.samples
    title = f"{len(logos)} logos x {args.samples} parameter sets = {n} samples per path"
    print(title)
    rows = []
    for name, d in (("baseline", naive), ("stage", stage)):
        c, r, s = (statistics.fmean(d[k]) for k in ("convert", "render", "score"))
        rows.append(
            {
                "path": name,
                "samples_per_s": n / d["total"],
                "convert_ms": c,
                "render_ms": r,
                "ssim_ms": s,
                "render_ssim_over_convert": (r + s) / c,
            }
        )
        print(
            f"{name:9s} {n / d['total']:7.2f} samples/s | mean ms: convert {c:6.2f}  render {r:6.2f}"
            f"  ssim {s:6.2f}  (render+ssim {r + s:6.2f} vs convert {c:6.2f}: "
            f"{(r + s) / c:.2f}x)"
        )
    ratio = naive["total"] / stage["total"]
    if args.json:
        record.write(args.json, {title: rows}, ratio, "wall time, baseline / stage")
    print(f"ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
