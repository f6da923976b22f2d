"""What `svg-quality convert` writes at the input's own size, against VTracer's one-line
tweaks and real search, on a folder of logos at any resolution (e.g. the real-icon
folder at 1024 px: bench/build_real_icons.py --sizes 256 1024).

Every figure is measured at the logo's own size with the label contract (luma SSIM) and
the mean CIEDE2000 colour error (svg_quality.colour). Per logo, on the same pixels:

* defaults, defaults-pp2, defaults-pp0   VTracer's defaults at path_precision 8 / 2 / 0
* size-verify-K                          `suggest --objective size --verify K` (what
                                         convert chooses by default), pixel parameters
                                         scaled to the size
* size-verify-K-minified                 the same SVG minified (svg_quality.minify): what
                                         convert writes
* size-verify-K-unscaled                 the same, the model's pixel parameters unscaled
* size-verify-K-luma                     the same, scaled, colour check off (luma only)
* quality-verify-K                       `--objective quality --verify K`
* random-N (quality)                     the defaults + N-1 uniform random sets, best SSIM

Reported per strategy: mean SSIM, median bytes / the defaults', share with SSIM >= the
defaults' - 0.002, share with colour error <= the defaults' + 0.5, both, and ms per logo;
then how many logos the colour check changed the choice on. The ratio LAST: wall time
per logo of random-N over quality-verify-K (both at full size).

    python bench/native_resolution.py --folder /work/real-icons-1024 --limit 40
    python bench/native_resolution.py --smoke        # 2 logos on a tiny export (built here
                                                     # unless --model names one)
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchjson import Record
from svg_quality import objectives
from svg_quality.colour import ColourReference
from svg_quality.convert import find_jobs
from svg_quality.minify import minify
from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS, from_unit
from svg_quality.preprocess import load_full
from svg_quality.serving.predictor import Predictor
from svg_quality.ssim import SSIMReference
from svg_quality.synthetic import generate
from svg_quality.vectorize import ConversionFailed, RenderFailed, score
from svg_quality.verify import suggest, vtracer_config

TOL = objectives.DEFAULT_TOLERANCE
COLOUR_TOL = 0.5


def measure(rgb: np.ndarray, sets: list[dict[str, float]], cfg: Any) -> list[tuple]:
    """(SSIM, bytes, delta E) of each set converted at the logo's size ((0, inf, inf) on a
    failure, which never wins)."""
    ref, colour = SSIMReference(rgb), ColourReference(rgb)
    out = []
    for p in sets:
        try:
            s = score(rgb, p, cfg, reference=ref, colour=colour)
            out.append((s.ssim, s.svg_bytes, s.delta_e))
        except (ConversionFailed, RenderFailed):
            out.append((0.0, math.inf, math.inf))
    return out


def smoke_setup(tmp: Path, model: str | None) -> tuple[Path, Path]:
    """An export (``model``, else the tests' tiny one, built here in about a minute) and
    2 synthetic logos at 128 px."""
    import sys

    if model is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.conftest import VTRACER_INPUTS, load_repo_params, shrink
        from tests.export_fixtures import exported

        params = shrink(load_repo_params())
        params["train"]["epochs"] = 1
        params["data"]["per_type"] = 2
        model = exported(tmp / "export", params, inputs=VTRACER_INPUTS, size_head=True)["out"]
    folder = tmp / "logos"
    for i, kind in enumerate(("simple", "text")):
        (folder / kind).mkdir(parents=True)
        generate(kind, i, 1, 128).save(folder / kind / f"{kind}.png")
    return Path(model), folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=None, help="export directory (models/export)")
    ap.add_argument("--folder", default="/work/real-icons-1024", help="logos, any size (recursive)")
    ap.add_argument("--limit", type=int, default=40, help="at most this many logos (0: all)")
    ap.add_argument("--verify", type=int, default=4, help="K: model candidates verified")
    ap.add_argument("--random", type=int, default=32, help="N: random search's conversions")
    ap.add_argument("--candidates", type=int, default=2048)
    ap.add_argument("--max-side", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--json", default=None, help="also write the record here (benchjson: table, per-logo rows)"
    )
    ap.add_argument("--smoke", action="store_true", help="seconds: tiny export, 2 logos")
    args = ap.parse_args()
    record = Record(Path(__file__).stem)

    tmp = tempfile.TemporaryDirectory()
    if args.smoke:
        args.model, args.folder = map(str, smoke_setup(Path(tmp.name), args.model))
        args.candidates, args.random, args.verify, args.limit = 64, 4, 2, 2
    predictor = Predictor.load(args.model or "models/export")
    cfg = vtracer_config(predictor.metadata)
    jobs = find_jobs([args.folder])
    if args.limit:
        step = max(1, len(jobs) // args.limit)  # spread over the types, not the first few
        jobs = jobs[::step][: args.limit]
    print(f"{len(jobs)} logos from {args.folder}, model {args.model}", flush=True)
    rng = np.random.default_rng(args.seed)
    k = args.verify
    names = ["defaults", "defaults-pp2", "defaults-pp0", f"size-verify-{k}"]
    names += [f"size-verify-{k}-minified"]
    names += [f"size-verify-{k}-unscaled", f"size-verify-{k}-luma", f"quality-verify-{k}"]
    names += [f"random-{args.random}"]
    rows: dict[str, list[tuple]] = {n: [] for n in names}  # (ssim, bytes, dE, ms, defaults')
    per_logo, sizes, refused = [], set(), 0
    t_start = time.perf_counter()
    for n_done, job in enumerate(jobs, 1):
        rgb, size = load_full(job.source, args.max_side)
        sizes.add(max(size))
        t0 = time.perf_counter()
        base = [dict(VTRACER_DEFAULTS)] + [
            {**VTRACER_DEFAULTS, "path_precision": p} for p in (2, 0)
        ]
        d, pp2, pp0 = measure(rgb, base, cfg)
        ms_d = (time.perf_counter() - t0) * 1e3 / 3
        rec: dict[str, Any] = {"logo": job.rel, "size": list(size)}
        for name, r in (("defaults", d), ("defaults-pp2", pp2), ("defaults-pp0", pp0)):
            rows[name].append((*r, ms_d, d))
            rec[name] = r
        runs = {
            f"size-verify-{k}": {"objective": "size"},
            f"size-verify-{k}-unscaled": {"objective": "size", "scaling": "unscaled"},
            f"size-verify-{k}-luma": {"objective": "size", "colour_tolerance": math.inf},
            f"quality-verify-{k}": {"objective": "quality"},
        }
        for name, kw in runs.items():
            t0 = time.perf_counter()
            res = suggest(
                predictor, job.source, top_k=1, candidates=args.candidates, seed=args.seed,
                verify=k, max_side=args.max_side, **kw,
            )  # fmt: skip
            ms = (time.perf_counter() - t0) * 1e3
            c = res.chosen
            rows[name].append((c.ssim, c.svg_bytes, c.delta_e, ms, d))
            rec[name] = (c.ssim, c.svg_bytes, c.delta_e, c.candidate.origin, c.candidate.params)
            if name == f"size-verify-{k}":
                refused += res.colour_refused
                # what convert writes: the chosen SVG minified (svg_quality.minify), scored
                small = minify(c.svg, rgb.shape[1], rgb.shape[0])
                if small.changed:
                    shown = small.rendering
                    ssim = float(np.clip(SSIMReference(rgb).score(shown), 0, 1))
                    de = ColourReference(rgb).delta_e(shown)
                else:  # kept as VTracer wrote it
                    ssim, de = c.ssim, c.delta_e
                rows[f"size-verify-{k}-minified"].append((ssim, len(small.svg.encode()), de, ms, d))
        t0 = time.perf_counter()
        raw = from_unit(rng.random((args.random - 1, len(PARAM_NAMES))), predictor.ranges)
        sets = [dict(VTRACER_DEFAULTS)] + [
            dict(zip(PARAM_NAMES, map(float, r), strict=True)) for r in raw
        ]
        got = measure(rgb, sets, cfg)
        s = np.array([g[0] for g in got])
        i = objectives.best(s, np.log10([g[1] for g in got]), "quality")
        rows[f"random-{args.random}"].append((*got[i], (time.perf_counter() - t0) * 1e3, d))
        per_logo.append(rec)
        if n_done % 10 == 0 or n_done == len(jobs):
            print(
                f"  {n_done}/{len(jobs)} logos, {time.perf_counter() - t_start:.0f} s", flush=True
            )

    title = (
        f"at the logos' own size (long side {', '.join(map(str, sorted(sizes)))} px); "
        f"ok = SSIM >= defaults' - {TOL} and colour error <= defaults' + {COLOUR_TOL}"
    )
    print(f"\n{title}")
    print(
        f"{'strategy':<24} {'mean SSIM':>9} {'med bytes/def':>13} {'SSIM ok':>8} "
        f"{'colour ok':>9} {'both':>6} {'mean dE':>8} {'ms/logo':>8}"
    )
    summary: dict[str, Any] = {}
    for name in names:
        s, b, de, ms = (np.array([r[i] for r in rows[name]], dtype=float) for i in range(4))
        ds, db, dde = (np.array([r[4][i] for r in rows[name]], dtype=float) for i in range(3))
        s_ok, c_ok = s >= ds - TOL - 1e-12, de <= dde + COLOUR_TOL + 1e-12
        line = {
            "mean_ssim": float(s.mean()),
            "median_bytes_ratio": float(np.median(b / db)),
            "share_ssim_ok": float(s_ok.mean()),
            "share_colour_ok": float(c_ok.mean()),
            "share_both": float((s_ok & c_ok).mean()),
            "mean_delta_e": float(de.mean()),
            "ms_per_logo": float(ms.mean()),
        }
        summary[name] = line
        print(
            f"{name:<24} {line['mean_ssim']:>9.4f} {line['median_bytes_ratio']:>13.3f} "
            f"{line['share_ssim_ok']:>8.0%} {line['share_colour_ok']:>9.0%} "
            f"{line['share_both']:>6.0%} {line['mean_delta_e']:>8.2f} {line['ms_per_logo']:>8.0f}"
        )
    print(
        f"\nsize-verify-{k}: the colour check changed the choice on {refused} of {len(jobs)} logos"
    )
    ratio = (
        summary[f"random-{args.random}"]["ms_per_logo"]
        / summary[f"quality-verify-{k}"]["ms_per_logo"]
    )
    label = f"wall time per logo, random-{args.random} / quality-verify-{k}, at full size"
    if args.json:
        rows = [{"strategy": name, **line} for name, line in summary.items()]
        refusals = f"size-verify-{k}: logos whose choice the colour check changed"
        record.write(
            args.json,
            {title: rows, refusals: [{"changed": refused, "logos": len(jobs)}]},
            ratio,
            label,
            summary=summary,
            logos=per_logo,
        )
    print(f"\n{label}:")
    print(f"ratio {ratio:.2f}x")
    tmp.cleanup()


if __name__ == "__main__":
    main()
