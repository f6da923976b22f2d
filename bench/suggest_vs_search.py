"""The predictor with verification vs real parameter search, on the same logos.

Per logo and objective (quality: highest SSIM; size: smallest SVG with SSIM >= the
defaults' minus 0.002), every strategy ends with real VTracer conversions scored by the
label contract, and its pick is made by ``objectives.best`` over the sets it converted
(VTracer's defaults are always one of them, so no strategy can end below the defaults):

* defaults            VTracer's defaults (1 conversion)
* preset-poster/photo VTracer's own presets (defaults + preset: 2 conversions)
* random-N            defaults + N-1 uniform random sets (N conversions; N = 4, 16, 32)
* optuna-N            Optuna TPE, defaults enqueued as the first trial (N conversions)
* predictor+verify-K  2048 Sobol sets scored by the model; the K best by the objective,
                      the defaults and their path_precision fallbacks converted (K + 1
                      conversions + one per fallback; K = 1, 4)

Reported per strategy: mean actual SSIM, median bytes / defaults' bytes, share of logos
better than the defaults by the objective, share with SSIM >= defaults - 0.002, and wall
ms per logo (model loading excluded, logo decoding included). Then the predictor's time
split into its parts (conversions, decode + statistics + tables, scoring) and the ratio
the conversions alone would allow. Prints the ratio LAST: wall time of random-32 over
predictor+verify-4 (quality objective).

    python bench/suggest_vs_search.py                        # the default run's test logos
    python bench/suggest_vs_search.py --folder /work/real-icons --limit 60
    python bench/suggest_vs_search.py --smoke   # seconds: 2 logos, 64 candidates, random-4,
                                                # optuna-4, verify-1/2, on a tiny export
                                                # (built here unless --model names one)
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchjson import Record
from svg_quality import objectives
from svg_quality.convert import find_jobs
from svg_quality.inputspec import InputSpec
from svg_quality.paramspace import PARAM_NAMES, SPECS, VTRACER_DEFAULTS, from_unit
from svg_quality.serving.predictor import Predictor
from svg_quality.ssim import SSIMReference
from svg_quality.vectorize import ConversionFailed, RenderFailed, score
from svg_quality.verify import suggest, vtracer_config

TOL = objectives.DEFAULT_TOLERANCE
PRESETS = {  # VTracer's cmdapp presets (config.rs), the parameters we model; colormode color
    "poster": {**VTRACER_DEFAULTS, "color_precision": 8},
    "photo": {
        **VTRACER_DEFAULTS,
        "filter_speckle": 10,
        "color_precision": 8,
        "layer_difference": 48,
        "corner_threshold": 180,
    },
}


class Scorer:
    """Real conversions of one logo with the label contract, timed by the caller."""

    def __init__(self, rgb: np.ndarray, cfg: Any) -> None:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="PNG")
        self.rgb, self.png, self.ref, self.cfg = rgb, buf.getvalue(), SSIMReference(rgb), cfg

    def __call__(self, params: dict[str, float]) -> tuple[float, float]:
        """(SSIM, log10 bytes); a failed conversion scores (0, +inf) and never wins."""
        try:
            s = score(self.rgb, params, self.cfg, png_bytes=self.png, reference=self.ref)
        except (ConversionFailed, RenderFailed):
            return 0.0, math.inf
        return s.ssim, math.log10(s.svg_bytes)


class TorchSizeHead:
    """A predictor whose export has no size head, with one from a size model file
    (``models/size_model.pt``) scored in PyTorch on the same input rows: for runs on
    an export made before the size head was exported."""

    has_size_head = True

    def __init__(self, predictor: Any, path: str) -> None:
        # lazy: torch and pandas, for this PyTorch fallback only
        from svg_quality.model import load_model
        from svg_quality.sizehead import SizeScale

        self.predictor = predictor
        self.mlp, meta = load_model(path)
        self.scale = SizeScale.from_meta(meta["size_scale"])
        self.meta_input = meta["input"]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)

    def score_candidates(self, logo: Any, raw: np.ndarray):
        import torch

        ssim, _ = self.predictor.score_candidates(logo, raw)
        spec = InputSpec.from_meta(self.meta_input)
        n = raw.shape[0]
        feats = self.predictor.image_features(logo)
        x = spec.assemble(
            None if feats is None else np.repeat(feats, n, axis=0),
            None if logo.stats is None else np.repeat(logo.stats[None], n, axis=0),
            np.asarray(raw, dtype=np.float64),
        )
        with torch.inference_mode():
            unit = self.mlp(torch.from_numpy(x)).numpy()
        return ssim, self.scale.to_log10(unit)


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``fn(*args, **kwargs)`` and its wall milliseconds."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - t0) * 1e3


def pick(results: list[tuple[float, float]], objective: str) -> tuple[float, float]:
    """The objective's choice among converted sets; ``results[0]`` is the defaults."""
    s = np.array([r[0] for r in results])
    b = np.array([r[1] for r in results])
    i = objectives.best(s, b, objective, default=0, tolerance=TOL)
    return float(s[i]), float(b[i])


def random_sets(ranges: dict, n: int, rng: np.random.Generator) -> list[dict[str, float]]:
    raw = from_unit(rng.random((n, len(PARAM_NAMES))), ranges)
    return [{k: float(v) for k, v in zip(PARAM_NAMES, row, strict=True)} for row in raw]


def optuna_search(scorer: Scorer, ranges: dict, n: int, objective: str, seed: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results: list[tuple[float, float]] = []

    def trial_value(s: float, b: float) -> float:
        if objective == "quality":
            return s
        bar = results[0][0] - TOL  # the defaults are trial 0
        # feasible: fewer bytes is better; infeasible: ranked below every feasible one
        return -b if s >= bar else -20.0 + s

    def run(trial: optuna.Trial) -> float:
        p = {}
        for name in PARAM_NAMES:
            lo, hi = ranges[name]
            if SPECS[name].kind is int:
                p[name] = trial.suggest_int(name, int(lo), int(hi))
            else:
                p[name] = trial.suggest_float(name, float(lo), float(hi))
        s, b = scorer(p)
        results.append((s, b))
        return trial_value(s, b)

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=3)
    )
    study.enqueue_trial({k: VTRACER_DEFAULTS[k] for k in PARAM_NAMES})
    study.optimize(run, n_trials=n)
    return pick(results, objective)


def logos_of(args: argparse.Namespace) -> list[tuple[str, str, Path]]:
    """(name, type, path) of the logos to run on: a folder, or a split of logos.csv."""
    import pandas as pd

    if args.folder:
        root = Path(args.folder)
        jobs = find_jobs([root])
        out = [(j.rel, Path(j.rel).parts[0] if "/" in j.rel else "-", j.source) for j in jobs]
    else:
        df = pd.read_csv(args.logos_csv, dtype={"image_id": str})
        df = df[df["split"] == args.split]
        out = [(r.image_id, r.logo_type, Path(args.logos_dir) / r.path) for r in df.itertuples()]
    if args.limit:
        step = max(1, len(out) // args.limit)  # spread over the types, not the first few
        out = out[::step][: args.limit]
    return out


def smoke_setup(tmp: Path, model: str | None) -> tuple[str, str, str]:
    """(export dir, logos.csv, logos dir) for ``--smoke``: ``model`` with the default run's
    logos, else the tests' tiny trained export (built here) and its own logos, whose test
    split holds 2 logos at 96 px."""
    if model is not None:
        return model, "data/logos.csv", "data/logos"
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conftest import VTRACER_INPUTS, load_repo_params, shrink
    from tests.export_fixtures import exported

    paths = exported(tmp / "export", shrink(load_repo_params()), VTRACER_INPUTS, size_head=True)
    return str(paths["out"]), str(paths["logos_csv"]), str(paths["logos_dir"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=None, help="export directory (default models/export)")
    ap.add_argument("--logos-csv", default="data/logos.csv")
    ap.add_argument("--logos-dir", default="data/logos")
    ap.add_argument("--split", default="test")
    ap.add_argument("--folder", default=None, help="any folder of logos instead (recursive)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many logos (0: all)")
    ap.add_argument("--objectives", default="quality,size")
    ap.add_argument("--candidates", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--json", default=None, help="also write the record here (benchjson: tables, per-logo rows)"
    )
    ap.add_argument(
        "--size-model",
        default="models/size_model.pt",
        help="size model file, used when the export has no size head",
    )
    ap.add_argument(
        "--smoke", action="store_true", help="seconds: tiny export, 2 logos, fewest strategies"
    )
    args = ap.parse_args()
    record = Record(Path(__file__).stem)
    logging.basicConfig(level=logging.WARNING)
    # conversions per search strategy (random-N, optuna-N) and verified sets (predictor+verify-K)
    searches, verifies = (4, 16, 32), (1, 4)
    tmp = tempfile.TemporaryDirectory()
    if args.smoke:
        args.model, args.logos_csv, args.logos_dir = smoke_setup(Path(tmp.name), args.model)
        args.split, args.folder, args.limit, args.candidates = "test", None, 2, 64
        searches, verifies = (4,), (1, 2)
    args.model = args.model or "models/export"

    predictor = Predictor.load(args.model)
    if not predictor.has_size_head and args.size_model:
        print(f"the export has no size head: sizes from {args.size_model} (PyTorch)")
        predictor = TorchSizeHead(predictor, args.size_model)
    cfg = vtracer_config(predictor.metadata)
    ranges = predictor.ranges
    wanted = [o.strip() for o in args.objectives.split(",") if o.strip()]
    logos = logos_of(args)
    print(f"{len(logos)} logos, objectives {wanted}, model {args.model}", flush=True)
    # per (objective, strategy): list of (ssim, log10 bytes, default ssim, default lg, ms)
    rows: dict[tuple[str, str], list[tuple[float, float, float, float, float]]] = {}
    per_logo: list[dict[str, Any]] = []
    rng = np.random.default_rng(args.seed)

    def add(obj: str, name: str, res: tuple[float, float], dflt, ms: float, meta: dict) -> None:
        rows.setdefault((obj, name), []).append((*res, *dflt, ms))
        meta[f"{obj}/{name}"] = {"ssim": res[0], "bytes": 10 ** res[1], "ms": ms}

    # (objective, K) -> per logo (probe ms, rest of prepare ms, scoring ms, verification ms)
    parts: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {}
    t_start = time.perf_counter()
    for n_done, (name, logo_type, path) in enumerate(logos, 1):
        meta: dict[str, Any] = {"logo": str(name), "type": logo_type}
        try:
            logo = predictor.prepare(path)
        except ValueError as exc:
            print(f"skip {path}: {exc}")
            continue
        if n_done == 1:  # open the ONNX sessions and import scipy.qmc outside the timings
            suggest(predictor, logo, candidates=args.candidates, seed=args.seed)
        scorer = Scorer(logo.rgb, cfg)
        dflt, ms_d = timed(scorer, dict(VTRACER_DEFAULTS))
        for obj in wanted:
            add(obj, "defaults", dflt, dflt, ms_d, meta)
        for preset, params in PRESETS.items():
            res, ms = timed(scorer, params)
            for obj in wanted:
                add(obj, f"preset-{preset}", pick([dflt, res], obj), dflt, ms + ms_d, meta)
        for n in searches:  # one set of conversions serves both objectives' choices
            sets = random_sets(ranges, n - 1, rng)
            res, ms = timed(lambda s: [scorer(p) for p in s], sets)  # noqa: B023
            for obj in wanted:
                add(obj, f"random-{n}", pick([dflt, *res], obj), dflt, ms + ms_d, meta)
        for obj in wanted:
            for n in searches:
                res, ms = timed(optuna_search, scorer, ranges, n, obj, args.seed)
                add(obj, f"optuna-{n}", res, dflt, ms, meta)
            for k in verifies:
                # the whole path a user runs: decode + features + scoring + K+1 conversions,
                # prepare timed apart to split the time into its parts
                prepared, ms_prep = timed(predictor.prepare, path)
                out, ms = timed(
                    suggest,
                    predictor,
                    prepared,
                    objective=obj,
                    top_k=1,
                    candidates=args.candidates,
                    seed=args.seed,
                    tolerance=TOL,
                    verify=k,
                    vtracer_cfg=cfg,
                )
                c = out.chosen
                ms += ms_prep
                add(obj, f"predictor+verify-{k}", (c.ssim, math.log10(c.svg_bytes)), dflt, ms, meta)
                parts.setdefault((obj, k), []).append(
                    (prepared.probe_ms, ms_prep - prepared.probe_ms, out.score_ms, out.verify_ms)
                )
        per_logo.append(meta)
        if n_done % 10 == 0 or n_done == len(logos):
            print(
                f"  {n_done}/{len(logos)} logos, {time.perf_counter() - t_start:.0f} s", flush=True
            )

    order = ["defaults", "preset-poster", "preset-photo"]
    order += [f"random-{n}" for n in searches] + [f"optuna-{n}" for n in searches]
    order += [f"predictor+verify-{k}" for k in verifies]
    summary: dict[str, Any] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    for obj in wanted:
        title = (
            f"objective {obj} ({len(per_logo)} logos; better = "
            + ("higher SSIM" if obj == "quality" else f"smaller SVG with SSIM >= defaults - {TOL}")
            + ")"
        )
        print(f"\n{title}")
        print(
            f"{'strategy':<20} {'mean SSIM':>9} {'med bytes/def':>13} {'better':>7} "
            f"{'>=def-tol':>9} {'ms/logo':>9}"
        )
        for name in order:
            r = np.array(rows[(obj, name)], dtype=np.float64)
            s, lg, ds, dlg, ms = r.T
            ok = s >= ds - TOL - 1e-12
            better = s > ds if obj == "quality" else (lg < dlg) & ok
            line = {
                "mean_ssim": float(s.mean()),
                "median_bytes_ratio": float(np.median(10 ** (lg - dlg))),
                "share_better": float(better.mean()),
                "share_within_tol": float(ok.mean()),
                "ms_per_logo": float(ms.mean()),
            }
            summary[f"{obj}/{name}"] = line
            tables.setdefault(title, []).append({"strategy": name, **line})
            print(
                f"{name:<20} {line['mean_ssim']:>9.4f} {line['median_bytes_ratio']:>13.3f} "
                f"{line['share_better']:>7.0%} {line['share_within_tol']:>9.0%} "
                f"{line['ms_per_logo']:>9.0f}"
            )
    obj = "quality" if "quality" in wanted else wanted[0]
    search, pv = f"random-{max(searches)}", f"predictor+verify-{max(verifies)}"
    ratio = summary[f"{obj}/{search}"]["ms_per_logo"] / summary[f"{obj}/{pv}"]["ms_per_logo"]
    probe, rest, scoring, verification = np.mean(parts[(obj, max(verifies))], axis=0)
    conversions = probe + verification  # the defaults (the probe's) + the verified sets
    cap = summary[f"{obj}/{search}"]["ms_per_logo"] / conversions
    print(
        f"\n{pv} ({obj}) per logo: conversions {conversions:.0f} ms (the probe's "
        f"defaults {probe:.0f} + the verified sets and fallbacks {verification:.0f}), "
        f"decode + statistics + tables {rest:.0f} ms, scoring {scoring:.0f} ms; with the rest "
        f"free, the conversions alone cap the ratio at "
        f"{cap:.2f}x"
    )
    label = f"wall time per logo, {search} / {pv} ({obj})"
    if args.json:
        split = {
            "conversions_ms": conversions,
            "probe_defaults_ms": probe,
            "verified_sets_and_fallbacks_ms": verification,
            "decode_statistics_tables_ms": rest,
            "scoring_ms": scoring,
            "ratio_cap_of_conversions": cap,
        }
        tables[f"{pv} ({obj}): time per logo by part"] = [{k: float(v) for k, v in split.items()}]
        record.write(args.json, tables, ratio, label, summary=summary, logos=per_logo)
    print(f"\n{label}:")
    print(f"ratio {ratio:.2f}x")
    tmp.cleanup()


if __name__ == "__main__":
    main()
