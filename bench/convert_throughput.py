"""Where `svg-quality convert`'s time goes per logo, and a screening path that picks the same.

Issue 34 items 1 and 3: the measurement, convert's path against scoring every verified
set, a screening prototype, and the batch on a local pool against a Dask LocalCluster on
the same cores. Each strategy has convert's settings
(`--objective size --verify 4`: VTracer's defaults, the defaults at path_precision 2 and 0
and the model's 4 best candidates converted at the input's own size, rendered with resvg,
scored by SSIM and mean CIEDE2000), one process, the same logos:

* score-all  verify.suggest as convert called it until it scored smallest first: every
             verified set converted, rendered and scored; then convert_one's tail
             (sized_svg, minify, the traced pixels' PNG), re-done here.
* convert    verify.suggest as convertlogo.convert_one calls it (`score_all=False`: all
             converted, rendered and scored smallest first up to the first that passes);
             the bench stops unless it writes score-all's SVG on every logo.
             `--check-convert N` runs the real run_batch on N logos and stops unless it
             writes the same SVGs byte for byte.
* screen     the same 4 candidates first converted at `--screen-size` px (pixel
             parameters scaled by paramspace.scale_params, as label does; at the model's
             256 px view the probe's conversion is the defaults'), the best `--finalists`
             by the objective there kept (colour-refused last); then the defaults, both
             fallbacks and the finalists at full size, chosen by verify.verify_choice.

`--batch-workers N` (default 2) then converts `--batch-limit` logos with run_batch, in
`--batch-rounds` alternating rounds (the fastest of each kept):
a local pool of N processes and a Dask LocalCluster of N single-thread workers, the same
cores, and stops unless both write the same files and records (cluster / local logos/s).

A screened choice is the verified best of a subset of score-all's verified sets (VTracer is
deterministic), so it can be worse by the objective only where score-all's pick was screened
out: counted, with the worst gap. The bench stops unless the SVG is byte-identical wherever
both pick the same set.

`--breakdown` first runs score-all's path on `--breakdown-limit` logos at each
`--breakdown-sizes` long side (the PNGs resampled with LANCZOS: 2048 px is the 1024 px
icons upsampled), whole, then part by part with the calls suggest makes in its order:
decode (load_full), prepare (Predictor.prepare: view, logostats, vtables, the probe's
conversion; split by timing compute_stats and compute_tables again and by its probe_ms),
score (the model on the candidates, verify_order, the fallbacks), setup (convert_all's
PNG, SSIM and colour references), per verified set VTracer, resvg, SSIM and colour,
choose, and convert_one's tail (minify+png).

    python bench/convert_throughput.py --breakdown --limit 40 --json convert-bench.json
    python bench/convert_throughput.py --smoke   # 2 logos on the tests' tiny export (~1 min)

Strategies take turns going first, logo by logo, so background load hits each alike.
Prints the ratio last: score-all's ms per logo over convert's.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchjson import Record
from svg_quality import objectives
from svg_quality.paramspace import PARAM_NAMES, SPECS, scale_params

STRATEGIES = ("score-all", "convert", "screen")
PARTS = "decode prepare probe stats tables score setup convert render ssim colour choose minify+png"
INSIDE_PREPARE = ("probe", "stats", "tables")  # timed apart, already in prepare's time


@contextlib.contextmanager
def clock(ms: dict[str, float], part: str) -> Iterator[None]:
    """Add the block's wall time (ms) to ``ms[part]``."""
    t0 = time.perf_counter()
    yield
    ms[part] = ms.get(part, 0.0) + (time.perf_counter() - t0) * 1e3


def png_of(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def suggested(predictor: Any, source: Path, s: Any, score_all: bool = False) -> Any:
    """verify.suggest exactly as convertlogo.convert_one calls it; ``score_all``: as it
    did before it scored smallest first (every verified set rendered and scored)."""
    from svg_quality.verify import suggest

    return suggest(
        predictor, source, objective=s.objective, top_k=1, candidates=s.candidates,
        seed=s.seed, min_ssim=s.min_ssim, tolerance=s.tolerance, verify=s.verify,
        max_side=s.max_side, colour_tolerance=s.colour_tolerance, score_all=score_all,
    )  # fmt: skip


def written(res: Any) -> tuple[str, float]:
    """convert_one's tail -> (the SVG it writes, its SSIM): the choice at the input's size,
    minified when it renders the same; the traced pixels' PNG encoded, as it does."""
    from svg_quality.convertlogo import sized_svg
    from svg_quality.minify import minify
    from svg_quality.ssim import SSIMReference

    svg, ssim = sized_svg(res.chosen.svg, res.input_size, res.size), res.chosen.ssim
    small = minify(svg, *res.size)
    if small.changed:
        svg = small.svg
        ssim = float(np.clip(SSIMReference(res.pixels).score(small.rendering), 0, 1))
    png_of(res.pixels)
    return svg, ssim


def verified_pool(predictor: Any, logo: Any, s: Any) -> tuple[Any, list, list]:
    """What suggest verifies for a prepared logo, by its calls in its order: (the ranking
    as Suggestions, the path_precision fallbacks, the K picks in the view's frame). The
    bench stops on a logo where this differs from what score-all's suggest verified."""
    from svg_quality import verify

    key = tuple((n, *map(float, predictor.ranges[n])) for n in PARAM_NAMES)
    raw = verify.candidate_matrix(key, s.candidates, s.seed)
    ssim, lg = predictor.score_candidates(logo, raw)
    kw = {"default": 0, "min_ssim": s.min_ssim, "tolerance": s.tolerance}

    def cand(i: int) -> Any:
        row = zip(PARAM_NAMES, map(float, raw[i]), strict=True)  # verify's rounding:
        params = {n: round(v) if SPECS[n].kind is int else round(v, 4) for n, v in row}
        size = None if lg is None else float(10 ** lg[i])
        return verify.Candidate(params, float(ssim[i]), size, is_default=i == 0)

    r = objectives.rank(ssim, lg, s.objective, **kw)
    base = verify.Suggestions(
        s.objective, r.threshold, [cand(int(r.order[0]))], cand(0), None, len(raw), 0
    )
    seen, picks = {tuple(base.default.params.values())}, []
    for i in objectives.verify_order(ssim, lg, s.objective, **kw):
        c = cand(int(i))
        if len(picks) < s.verify and tuple(c.params.values()) not in seen:
            seen.add(tuple(c.params.values()))
            picks.append(c)
    fb = np.repeat(raw[:1], len(verify.FALLBACK_PRECISIONS), axis=0)
    fb[:, PARAM_NAMES.index("path_precision")] = verify.FALLBACK_PRECISIONS
    return base, verify.fallbacks(base.default, *predictor.score_candidates(logo, fb)), picks


def at(c: Any, factor: float) -> Any:
    """A candidate for a logo ``factor`` x the model's view: suggest scales the model's
    pixel parameters; the defaults and fallbacks are VTracer's own at every size."""
    if c.origin != "model":
        return c
    return dataclasses.replace(c, params=scale_params(c.params, factor))


def screened(
    predictor: Any, source: Path, s: Any, cfg: Any, size: int, finalists: int, fb: bool
) -> tuple[Any, list]:
    """The screening path -> (Suggestions as suggest returns them, the full-size
    candidates before screening, to check against score-all's)."""
    from svg_quality.preprocess import load_full, load_logo
    from svg_quality.verify import colour_ok, convert_all, verify_choice

    full, input_size = load_full(source, s.max_side, predictor.min_size)
    logo = predictor.prepare(full, long_side=max(full.shape[:2]))
    base, extra, picks = verified_pool(predictor, logo, s)
    view, long_side = max(logo.rgb.shape[:2]), max(full.shape[:2])
    if size == view:  # the model's view: the probe has converted the defaults there
        small, done = logo.rgb, {} if logo.probe_score is None else {0: logo.probe_score}
    else:
        small, done = load_logo(full, size, predictor.min_size), {}
    pool = [*extra, *picks] if fb else picks
    got = convert_all(small, [base.default, *(at(c, size / view) for c in pool)], cfg, done)
    ssim = np.array([0.0 if v.error else v.ssim for v in got])
    lg = np.array([math.inf if v.error else math.log10(v.svg_bytes) for v in got])
    kw = {"min_ssim": s.min_ssim, "tolerance": s.tolerance}
    order = objectives.rank(ssim, lg, s.objective, **kw).order
    keep = colour_ok(got, s.colour_tolerance)
    best = sorted((int(i) for i in order if i != 0), key=lambda i: not keep[i])[:finalists]
    # the finalists in suggest's order, so that ties break as they do there
    final = [at(c, long_side / view) for j, c in enumerate(pool) if j + 1 in best]
    same = full.shape == logo.rgb.shape and np.array_equal(full, logo.rgb)
    res = verify_choice(
        base, full, final if fb else [*extra, *final], cfg, colour_tolerance=s.colour_tolerance,
        defaults_score=logo.probe_score if same else None, **kw,
    )  # fmt: skip
    size_wh = (full.shape[1], full.shape[0])
    res = dataclasses.replace(
        res, size=size_wh, input_size=input_size, scale=long_side / view, pixels=full
    )
    return res, [*extra, *(at(c, long_side / view) for c in picks)]


def breakdown_one(predictor: Any, source: Path, s: Any, cfg: Any) -> dict[str, Any]:
    """Today's path on one logo, whole, then part by part -> ms per part and per set."""
    from svg_quality.colour import ColourReference
    from svg_quality.logostats import compute_stats
    from svg_quality.preprocess import load_full
    from svg_quality.ssim import SSIMReference
    from svg_quality.vectorize import convert, render
    from svg_quality.verify import choose
    from svg_quality.vtables import compute_tables

    t0 = time.perf_counter()
    res = suggested(predictor, source, s, score_all=True)
    written(res)
    ms = {"whole": (time.perf_counter() - t0) * 1e3}
    with clock(ms, "decode"):
        full, _ = load_full(source, s.max_side, predictor.min_size)
    with clock(ms, "prepare"):
        logo = predictor.prepare(full, long_side=max(full.shape[:2]))
    ms["probe"] = logo.probe_ms
    if logo.stats is not None:
        with clock(ms, "stats"):
            compute_stats(logo.rgb)
    if logo.tables is not None:
        with clock(ms, "tables"):
            compute_tables(logo.rgb)
    with clock(ms, "score"):
        verified_pool(predictor, logo, s)
    with clock(ms, "setup"):
        png, ref, colour = png_of(full), SSIMReference(full), ColourReference(full)
    reused = full.shape == logo.rgb.shape and np.array_equal(full, logo.rgb)
    sets = []
    for j, v in enumerate(res.verified):
        if v.error is not None:
            continue
        one: dict[str, float] = {}
        if j == 0 and reused:  # convert_all takes the probe's conversion and SSIM
            svg = logo.probe_score.svg
        else:
            with clock(one, "convert"):
                svg = convert(png, v.candidate.params, cfg)
        if svg != v.svg:
            raise RuntimeError(f"{source}: set {j} converts here to another SVG than in suggest")
        with clock(one, "render"):
            shown = render(svg, full.shape[1], full.shape[0])
        if not (j == 0 and reused):
            with clock(one, "ssim"):
                ref.score(shown)
        with clock(one, "colour"):
            colour.delta_e(shown)
        sets.append({"origin": v.candidate.origin, **one})
    for part in ("convert", "render", "ssim", "colour"):
        ms[part] = sum(one.get(part, 0.0) for one in sets)
    with clock(ms, "choose"):
        kw = {"min_ssim": s.min_ssim, "tolerance": s.tolerance}
        choose(res.verified, s.objective, colour_tolerance=s.colour_tolerance, **kw)
    with clock(ms, "minify+png"):
        written(res)
    return {"ms": ms, "sets": sets}


def mean_parts(size: int, logos: list[dict[str, Any]]) -> dict[str, Any]:
    """One breakdown size as a table row: the mean ms of the whole and of each part."""
    parts = ["whole", *PARTS.split()]
    return {"long side": size, "logos": len(logos)} | {
        p: float(np.mean([r["ms"].get(p, 0.0) for r in logos])) for p in parts
    }


def run_breakdown(predictor: Any, jobs: list, s: Any, cfg: Any, sizes: list, tmp: Path) -> dict:
    from PIL import Image

    out: dict[str, list] = {}
    for size in sizes:
        rows = out[str(size)] = []
        for job in jobs:
            path = tmp / f"breakdown-{size}" / Path(job.rel).with_suffix(".png")
            path.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(job.source) as im:
                im = im if im.mode in ("RGB", "RGBA") else im.convert("RGBA")
                f = size / max(im.size)
                im.resize((round(im.width * f), round(im.height * f)), Image.LANCZOS).save(path)
            rows.append({"logo": job.rel, **breakdown_one(predictor, path, s, cfg)})
        mean = mean_parts(size, rows)
        parts = sum(mean[p] for p in PARTS.split() if p not in INSIDE_PREPARE)
        print(f"\n{size} px ({len(rows)} logos): mean ms per logo and share of the whole, "
              f"{mean['whole']:.0f} ms (the parts sum to {parts:.0f}; {', '.join(INSIDE_PREPARE)} "
              "are inside prepare)")  # fmt: skip
        print("  " + "".join(f"{p:>11}" for p in PARTS.split()))
        print("  " + "".join(f"{mean[p]:>11.1f}" for p in PARTS.split()))
        print("  " + "".join(f"{mean[p] / mean['whole']:>11.1%}" for p in PARTS.split()))
        each = ("convert", "render", "ssim", "colour")
        print(f"  {'per verified set, mean ms':<28}" + "".join(f"{p:>9}" for p in each))
        for j, one in enumerate(rows[0]["sets"]):
            got = [r["sets"][j] for r in rows if j < len(r["sets"])]
            vals = [np.mean([g.get(p, 0.0) for g in got]) for p in each]
            print(f"  {j}: {one['origin']:<25}" + "".join(f"{v:>9.1f}" for v in vals))
        for r in rows:
            m = r["ms"]
            print(f"    {r['logo'][:46]:<46} whole {m['whole']:>6.0f}  VTracer {m['convert']:>6.0f}"
                  f"  resvg {m['render']:>5.0f}  SSIM+colour {m['ssim'] + m['colour']:>5.0f}  "
                  f"prepare {m['prepare']:>4.0f}  minify+png {m['minify+png']:>4.0f}")  # fmt: skip
    return out


def record(res: Any, svg: str, ssim: float, ms: float) -> dict[str, Any]:
    """One strategy's figures on one logo (the SVG written and the choice's verification)."""
    d, c = res.verified[0], res.chosen
    return dict(
        params=c.candidate.params, origin=c.candidate.origin, ms=ms, ssim=ssim,
        bytes=len(svg.encode()), delta_e=c.delta_e, default_ssim=d.ssim,
        default_bytes=d.svg_bytes, default_delta_e=d.delta_e, verified=len(res.verified),
    )  # fmt: skip


def gap(t: Any, o: Any, s: Any) -> float | None:
    """How much worse ``o``'s choice is than ``t``'s by the objective, on the verified
    figures (the objective's score: size, log10 bytes); None when the defaults failed."""
    d = t.verified[0]
    if d.error is not None:
        return None
    sims = [d.ssim, t.chosen.ssim, o.chosen.ssim]
    lg = np.log10([d.svg_bytes, t.chosen.svg_bytes, o.chosen.svg_bytes])
    r = objectives.rank(sims, lg, s.objective, min_ssim=s.min_ssim, tolerance=s.tolerance)
    return float(r.score[1] - r.score[2])


def summarize(rs: list[dict[str, Any]], s: Any) -> dict[str, Any]:
    ms = np.array([r["ms"] for r in rs])
    ok = [
        r["ssim"] >= r["default_ssim"] - s.tolerance - 1e-12
        and (r["delta_e"] is None or r["delta_e"] <= r["default_delta_e"] + s.colour_tolerance + 1e-12)
        for r in rs
    ]  # fmt: skip
    out = {
        "logos_per_s": 1e3 / ms.mean(), "ms_per_logo": float(ms.mean()),
        "verified_full_size": float(np.mean([r["verified"] for r in rs])),
        "mean_ssim": float(np.mean([r["ssim"] for r in rs])),
        "median_bytes_ratio": float(np.median([r["bytes"] / r["default_bytes"] for r in rs])),
        "share_ok": float(np.mean(ok)),
    }  # fmt: skip
    if "same_set" in rs[0]:
        worse = [r["gap"] for r in rs if r["gap"] is not None and r["gap"] > 1e-12]
        out.update(
            share_same_set=float(np.mean([r["same_set"] for r in rs])),
            identical=sum(r["same_set"] for r in rs), worse=len(worse),
            worst_gap=max(worse, default=0.0),
        )  # fmt: skip
    return out


def copy_in(jobs: list, folder: Path) -> Path:
    """The logos of ``jobs`` copied into ``folder`` at their relative paths -> ``folder``."""
    for j in jobs:
        (folder / j.rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(j.source, (folder / j.rel).with_suffix(j.source.suffix))
    return folder


def check_convert(jobs: list, svgs: dict[str, str], s: Any, tmp: Path) -> None:
    """svg-quality convert's own batch (run_batch) on ``jobs``: its SVGs must be convert's."""
    from svg_quality.convert import run_batch

    run_batch([copy_in(jobs, tmp / "in")], tmp / "out", s, workers=1, progress=False)
    for j in jobs:
        if (tmp / "out" / j.rel).read_text() != svgs[j.rel]:
            raise RuntimeError(f"{j.source}: svg-quality convert wrote another SVG than convert's")
    print(f"svg-quality convert (run_batch) on {len(jobs)} logos: convert's SVGs, byte for byte")


def batch(jobs: list, s: Any, workers: int, tmp: Path, rounds: int) -> dict[str, Any]:
    """svg-quality convert's batch on the same logos, on the same cores: a local pool of
    ``workers`` processes and a Dask LocalCluster of ``workers`` single-thread worker
    processes (started before the clock, as a user's cluster would be, and stopped after
    its round), alternating for ``rounds`` rounds each, the fastest round of each counted
    (the machine's load drifts);
    each timed from run_batch's call to its report, model loading included. Stops unless
    both write the same SVGs, side files and report records."""
    from distributed import LocalCluster

    from svg_quality.convert import REPORT, run_batch

    src = copy_in(jobs, tmp / "batch-in")
    local, dask = tmp / "batch-local", tmp / "batch-dask"
    local_s, dask_s = [], []
    for _ in range(rounds):
        shutil.rmtree(local, ignore_errors=True)  # each round converts every logo
        t0 = time.perf_counter()
        run_batch([src], local, s, workers=workers, progress=False)
        local_s.append(time.perf_counter() - t0)
        # the cluster runs only for its own round (its idle workers would slow the pool)
        with LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster:
            shutil.rmtree(dask, ignore_errors=True)
            t0 = time.perf_counter()
            run_batch([src], dask, s, cluster=cluster.scheduler_address, progress=False)
            dask_s.append(time.perf_counter() - t0)

    def files_of(out: Path) -> dict[str, bytes]:
        files = sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in (".svg", ".png"))
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in files}

    def records(out: Path) -> list[dict[str, Any]]:
        logos = json.loads((out / REPORT).read_text())["logos"]
        return [{k: v for k, v in r.items() if k != "ms"} for r in logos]

    if files_of(local) != files_of(dask) or records(local) != records(dask):
        raise RuntimeError("the LocalCluster batch wrote other files or records than the local one")
    return {
        "logos": len(jobs), "workers": workers, "cores": len(os.sched_getaffinity(0)),
        "rounds": rounds, "local_s": min(local_s), "cluster_s": min(dask_s),
        "local_logos_per_s": len(jobs) / min(local_s), "cluster_logos_per_s": len(jobs) / min(dask_s),
        "cluster_over_local": min(local_s) / min(dask_s),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="models/export", help="export directory")
    ap.add_argument("--folder", default="/work/real-icons-1024", help="logos (recursive)")
    ap.add_argument("--limit", type=int, default=40, help="logos, spread over the folder (0: all)")
    ap.add_argument("--objective", default="size", choices=objectives.OBJECTIVES)
    ap.add_argument("--verify", type=int, default=4, help="K: model candidates verified")
    ap.add_argument("--candidates", type=int, default=2048)
    ap.add_argument("--screen-size", type=int, default=256, help="long side screened at, px")
    ap.add_argument("--finalists", type=int, default=2, help="screened sets verified at full size")
    ap.add_argument("--check-convert", type=int, default=3, help="logos through run_batch (0: off)")
    ap.add_argument(
        "--batch-workers", type=int, default=2, help="local pool vs LocalCluster workers (0: off)"
    )
    ap.add_argument("--batch-limit", type=int, default=20, help="logos in the batch comparison")
    ap.add_argument("--batch-rounds", type=int, default=2, help="alternating rounds, fastest kept")
    ap.add_argument("--breakdown", action="store_true", help="time score-all's parts first")
    ap.add_argument("--breakdown-limit", type=int, default=10, help="logos timed part by part")
    ap.add_argument("--breakdown-sizes", type=int, nargs="+", default=[256, 1024, 2048])
    ap.add_argument("--json", default=None, help="write every figure here")
    ap.add_argument("--smoke", action="store_true", help="2 logos, the tests' tiny export")
    args = ap.parse_args()
    if not 1 <= args.finalists <= args.verify:
        raise ValueError(f"--finalists {args.finalists} is invalid; allowed: 1 to --verify")

    from svg_quality.convert import Settings, find_jobs
    from svg_quality.serving.predictor import Predictor
    from svg_quality.verify import COLOUR_TOLERANCE, MAX_SIDE, vtracer_config

    tmp_dir = tempfile.TemporaryDirectory()
    tmp = Path(tmp_dir.name)
    if args.smoke:
        from native_resolution import smoke_setup  # bench/: the same tiny export and logos

        model, folder = smoke_setup(tmp, None)
        args.model, args.folder, args.limit, args.candidates = str(model), str(folder), 2, 64
        args.breakdown, args.breakdown_limit, args.breakdown_sizes = True, 1, [96, 128, 192]
        args.check_convert, args.batch_limit, args.batch_rounds = 1, 2, 1
    predictor = Predictor.load(args.model)
    predictor.backend.warm()  # as convert does, before any logo
    args.screen_size = predictor.image_size if args.smoke else args.screen_size
    cfg = vtracer_config(predictor.metadata)
    s = Settings(
        model=args.model, runtime="onnx", objective=args.objective, verify=args.verify,
        candidates=args.candidates, min_ssim=None, tolerance=objectives.DEFAULT_TOLERANCE,
        seed=0, max_side=MAX_SIDE, colour_tolerance=COLOUR_TOLERANCE,
    )  # fmt: skip
    jobs = find_jobs([args.folder])
    jobs = jobs[:: max(1, len(jobs) // args.limit)][: args.limit] if args.limit else jobs
    results = Record(Path(__file__).stem)
    load = {"cores": os.cpu_count(), "start": os.getloadavg()}
    print(f"{len(jobs)} logos from {args.folder}, model {args.model}; {load['cores']} cores, "
          f"load average {' '.join(f'{x:.1f}' for x in load['start'])}", flush=True)  # fmt: skip
    written(suggested(predictor, jobs[0].source, s))  # warm: candidate matrix, imports, sessions
    out: dict[str, Any] = {}
    if args.breakdown:
        bjobs = jobs[:: max(1, len(jobs) // args.breakdown_limit)][: args.breakdown_limit]
        print(f"\nscore-all's path, part by part, on {len(bjobs)} logos resampled (LANCZOS) to "
              f"{', '.join(map(str, args.breakdown_sizes))} px", flush=True)  # fmt: skip
        out["breakdown"] = run_breakdown(predictor, bjobs, s, cfg, args.breakdown_sizes, tmp)
        load["after_breakdown"] = os.getloadavg()

    screen = partial(screened, predictor, s=s, cfg=cfg, size=args.screen_size,
                     finalists=args.finalists)  # fmt: skip
    run = {
        "score-all": lambda src: (suggested(predictor, src, s, score_all=True), None),
        "convert": lambda src: (suggested(predictor, src, s), None),
        "screen": lambda src: screen(src, fb=False),
    }
    rows: dict[str, list[dict[str, Any]]] = {n: [] for n in STRATEGIES}
    svgs, t_start = {}, time.perf_counter()
    for n, job in enumerate(jobs):
        got = {}
        for name in STRATEGIES[n % 3 :] + STRATEGIES[: n % 3]:  # each goes first in turn
            t0 = time.perf_counter()
            res, pool = run[name](job.source)
            svg, ssim = written(res)
            got[name] = (res, svg, pool)
            rows[name].append(
                {"logo": job.rel, **record(res, svg, ssim, (time.perf_counter() - t0) * 1e3)}
            )
        t_res, all_svg, _ = got["score-all"]
        res, svgs[job.rel], _ = got["convert"]  # convert's path must change nothing chosen
        if res.chosen.candidate != t_res.chosen.candidate or svgs[job.rel] != all_svg:
            raise RuntimeError(f"{job.source}: convert chose another set than scoring all")
        rows["convert"][-1].update(same_set=True, gap=gap(t_res, res, s))
        res, svg, pool = got["screen"]
        if [c.params for c in pool] != [v.candidate.params for v in t_res.verified[1:]]:
            raise RuntimeError(f"{job.source}: screen's candidates differ from suggest's")
        same = res.chosen.candidate.params == t_res.chosen.candidate.params
        if same and svg != all_svg:
            raise RuntimeError(f"{job.source}: screen picked the same set but another SVG")
        rows["screen"][-1].update(same_set=same, gap=gap(t_res, res, s))
        if (n + 1) % 10 == 0 or n + 1 == len(jobs):
            print(f"  {n + 1}/{len(jobs)} logos, {time.perf_counter() - t_start:.0f} s", flush=True)
    load["end"] = os.getloadavg()
    if args.check_convert:
        check_convert(jobs[: args.check_convert], svgs, s, tmp)
    if args.batch_workers:
        out["batch"] = batch(
            jobs[: args.batch_limit], s, args.batch_workers, tmp, args.batch_rounds
        )

    print(f"\n{len(jobs)} logos, objective {s.objective}, verify {s.verify}, screened at "
          f"{args.screen_size} px, {args.finalists} finalists; load average at the end "
          f"{' '.join(f'{x:.1f}' for x in load['end'])}; ok: SSIM >= the defaults' - "
          f"{s.tolerance} and colour error <= the defaults' + {s.colour_tolerance}")  # fmt: skip
    print(f"{'strategy':<10}{'logos/s':>8}{'ms/logo':>9}{'scored':>9}{'mean SSIM':>10}"
          f"{'bytes/def':>10}{'ok':>6}{'same set':>9}{'identical':>10}{'worse':>6}{'worst':>9}")  # fmt: skip
    summary = {name: summarize(rs, s) for name, rs in rows.items()}
    for name, m in summary.items():
        line = (f"{name:<10}{m['logos_per_s']:>8.2f}{m['ms_per_logo']:>9.0f}"
                f"{m['verified_full_size']:>9.1f}{m['mean_ssim']:>10.4f}"
                f"{m['median_bytes_ratio']:>10.3f}{m['share_ok']:>6.0%}")  # fmt: skip
        if "worse" in m:
            w = m["worst_gap"]
            worst = f"+{10**w - 1:.1%}" if s.objective == "size" else f"{w:.4f}"
            line += f"{m['share_same_set']:>9.0%}{m['identical']:>10}{m['worse']:>6}{worst:>9}"
        print(line)
    print("(scored: sets rendered and scored at full size; bytes/def: median of the written "
          "SVG's bytes over the defaults'; worse: picks worse than score-all's by the objective, "
          "worst by how much (size: bytes); identical: SVGs byte-identical to score-all's)")  # fmt: skip
    if "batch" in out:
        b = out["batch"]
        print(f"\nbatch of {b['logos']} logos, {b['workers']} workers on {b['cores']} cores, fastest "
              f"of {b['rounds']} alternating rounds (identical SVGs and reports): local pool {b['local_logos_per_s']:.3f} logos/s, "
              f"Dask LocalCluster {b['cluster_logos_per_s']:.3f} logos/s; cluster / local "
              f"{b['cluster_over_local']:.2f}")  # fmt: skip
    ratio = summary["score-all"]["ms_per_logo"] / summary["convert"]["ms_per_logo"]
    if args.json:
        tables = {"per strategy": [{"strategy": k, **v} for k, v in summary.items()]}
        if "batch" in out:
            tables["batch: local pool vs Dask LocalCluster"] = [out["batch"]]
        if "breakdown" in out:
            title = "score-all's path part by part: mean ms per logo at each size"
            tables[title] = [mean_parts(int(n), r) for n, r in out["breakdown"].items()]
        label = "ms per logo at the folder's size, score-all / convert"
        results.write(args.json, tables, ratio, label, args=vars(args), load=load, logos=rows)
    tmp_dir.cleanup()
    print(f"\nms per logo at the folder's size, score-all / convert: {ratio:.2f}x")


if __name__ == "__main__":
    main()
