"""The `svg-quality` command line.

Subcommands:
  check-params   validate a params file and print it resolved (defaults filled in)
  sample         write a few synthetic logos of each type to a folder
  predict        predicted SSIM of VTracer on a logo for given parameters (exported model)
  suggest        the VTracer parameters best for a logo by an objective (--verify K converts)
  convert        write the chosen, verified SVG for logos or folders of logos
  evaluate       label a <type>/<file> folder with VTracer and score the model on it
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from svg_quality import synthetic
from svg_quality.config import LOGO_TYPES, LabelConfig, load_params
from svg_quality.convert import PAGE, Settings, logo_line, printable, run_batch, summary_line
from svg_quality.io import atomic_path
from svg_quality.objectives import DEFAULT_TOLERANCE, OBJECTIVES
from svg_quality.paramspace import MAX_CANDIDATES
from svg_quality.serving.predictor import Predictor
from svg_quality.suggesttext import print_suggestions
from svg_quality.verify import COLOUR_TOLERANCE, MAX_SIDE, suggest


def _check_params(args: argparse.Namespace) -> int:
    import yaml  # lazy: only this command prints YAML

    params = load_params(args.params)
    if args.quiet:
        print(f"{args.params}: ok")
    else:
        print(yaml.safe_dump(params.to_dict(), sort_keys=False), end="")
    return 0


SAMPLE_MAX_PER_TYPE = 10_000
SAMPLE_SIZES = (16, 2048)  # px: drawn at 2x above 512 px (synthetic), so 2048 px is 4096 px


def _sample(args: argparse.Namespace) -> int:
    if not 1 <= args.per_type <= SAMPLE_MAX_PER_TYPE:
        raise ValueError(
            f"--per-type {args.per_type} is invalid; allowed: 1 to {SAMPLE_MAX_PER_TYPE:,}"
        )
    lo, hi = SAMPLE_SIZES
    if not lo <= args.size <= hi:
        raise ValueError(
            f"--size {args.size} is invalid; allowed: {lo} to {hi} px (drawn at "
            f"{synthetic.SS}x, so larger sizes would take gigabytes)"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder; give a folder path (new or existing)")
    files = [(t, i, out / t / f"{t}_{i:03d}.png") for t in LOGO_TYPES for i in range(args.per_type)]
    taken = [f for _, _, f in files if f.exists() or f.is_symlink()]
    if taken and not args.force:
        raise ValueError(
            f"{out}: {len(taken)} of the files sample would write exist already (e.g. "
            f"{taken[0]}); give a new folder, or --force to overwrite them"
        )
    for t, i, path in files:
        with atomic_path(path) as tmp:  # never half a PNG, never through a link
            synthetic.generate(t, args.seed, i, args.size).save(tmp, format="PNG")
    print(f"wrote {len(files)} logos to {out}/<type>/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="svg-quality",
        description="Predict VTracer's vectorization fidelity (SSIM) for a logo and parameters.",
    )
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-params", help="validate params.yaml and print it resolved")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("-q", "--quiet", action="store_true", help="print only 'ok' when valid")
    p.set_defaults(func=_check_params)

    p = sub.add_parser("sample", help="write synthetic logos as a <type>/<file> folder")
    p.add_argument("out", help="output folder")
    p.add_argument("--per-type", type=int, default=4, help="logos per type (1 to 10,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="long side, px (16 to 2048)")
    p.add_argument("--force", action="store_true", help="overwrite logos already there")
    p.set_defaults(func=_sample)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return ap


# --------------------------------------------------------------------------- predict, suggest
# Served from an export directory (models/export) on ONNX Runtime by default: no torch,
# no params.yaml. ONNX Runtime, torch, pandas and scipy load only inside the handlers
# that need them, so `--help` stays fast.


def _parse_param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--param {text!r} is invalid; write name=value, e.g. filter_speckle=8")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise ValueError(f"--param {text!r}: {value!r} is not a number") from None


def _parse_params(texts: Sequence[str]) -> dict[str, float]:
    """``--param`` values as a mapping; a name given twice is refused, not overwritten."""
    given: dict[str, float] = {}
    for text in texts:
        name, value = _parse_param(text)
        if name in given:
            raise ValueError(
                f"--param {name} is given twice ({given[name]:g} and {value:g}); give it once"
            )
        given[name] = value
    return given


def _load_predictor(args: argparse.Namespace) -> Predictor:
    predictor = Predictor.load(args.model, runtime=args.runtime)
    _warn_missed_gates(Path(args.model))
    return predictor


def _warn_missed_gates(export_dir: Path) -> None:
    """Say so when the export stage found the model missed validate's readiness gates
    (``registry.json``, written beside the model): it is served, but not vouched for."""
    path = export_dir / "registry.json"
    if not path.is_file():
        return
    try:
        registry = json.loads(path.read_text())
    except ValueError:
        raise ValueError(f"{path}: not valid JSON; re-export (dvc repro export)") from None
    reasons = registry.get("reasons") or []
    if registry.get("registered") is False and reasons:
        names = ", ".join(str(r).split(" (", 1)[0] for r in reasons)
        print(
            f"svg-quality: warning: this model missed its readiness gates: {names} "
            f"(values in {path}); its predictions are less reliable than the gates require",
            file=sys.stderr,
        )


def _predict(args: argparse.Namespace) -> int:
    given = _parse_params(args.param)
    predictor = _load_predictor(args)
    params = predictor.check_params(given)  # unknown names and bad values fail before the image
    logo = predictor.prepare(args.logo)
    ssim = predictor.predict(logo, params)
    size = predictor.predict_bytes(logo, params) if predictor.has_size_head else None
    if args.json:
        out = {"logo": str(args.logo), "params": params, "predicted_ssim": ssim}
        out["predicted_bytes"] = size
        print(json.dumps(out, indent=2))
        return 0
    changed = ", ".join(f"{k}={v:g}" for k, v in given.items()) or "none"
    extra = f", predicted SVG {size:,.0f} bytes" if size is not None else ""
    print(f"predicted SSIM {ssim:.4f}{extra}  (VTracer defaults; changed: {changed})")
    return 0


def _check_candidates(n: int) -> None:
    """``--candidates``: 1 to MAX_CANDIDATES, refused before anything loads (memory grows
    with it: ~2 GB at the maximum; 2,000,000 was killed by the kernel at 22.8 GB)."""
    if not 1 <= n <= MAX_CANDIDATES:
        raise ValueError(
            f"--candidates {n:,} is invalid; allowed: 1 to {MAX_CANDIDATES:,} (scoring "
            f"{MAX_CANDIDATES:,} sets takes about 2 GB of memory)"
        )


def _suggest(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise ValueError(f"--top-k {args.top_k} is invalid; allowed: at least 1")
    _check_candidates(args.candidates)
    predictor = _load_predictor(args)
    res = suggest(
        predictor,
        args.logo,
        objective=args.objective,
        top_k=args.top_k,
        candidates=args.candidates,
        seed=args.seed,
        min_ssim=args.min_ssim,
        tolerance=args.tolerance,
        pareto=args.pareto,
        verify=args.verify,
        max_side=args.max_side,
        colour_tolerance=args.colour_tolerance,
    )
    if args.json:
        print(json.dumps({"logo": str(args.logo), **res.to_dict()}, indent=2))
        return 0
    print_suggestions(res)
    return 0


def _convert(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ValueError(f"--workers {args.workers} is invalid; allowed: at least 1")
    _check_candidates(args.candidates)
    # The export checked (digests, signatures, self-test) before OUT or its journal exist;
    # one process then converts with this predictor, a pool's or a cluster's workers load
    # their own.
    predictor = _load_predictor(args)
    predictor.backend.warm()
    objective = args.objective
    if objective is None:  # the smallest SVG as good as the defaults, when the model can
        objective = "size" if predictor.has_size_head else "quality"
    settings = Settings(
        model=args.model,
        runtime=args.runtime,
        objective=objective,
        verify=args.verify,
        candidates=args.candidates,
        min_ssim=args.min_ssim,
        tolerance=args.tolerance,
        seed=args.seed,
        max_side=args.max_side,
        colour_tolerance=args.colour_tolerance,
        minify=not args.no_minify,
    )
    on_record = None if args.json else (lambda rec: print(logo_line(rec), flush=True))
    try:
        report = run_batch(
            args.inputs,
            args.output,
            settings,
            workers=args.workers,
            force=args.force,
            progress=not args.no_progress,
            on_record=on_record,
            cluster=args.cluster,
            predictor=predictor,
        )
    except KeyboardInterrupt:
        print(
            "svg-quality: interrupted; the SVGs written so far are kept: rerun the same "
            "command to convert the rest",
            file=sys.stderr,
        )
        return 130
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in report["skipped"]:
            print(f"skipped {printable(line)}")
        print(summary_line(report["summary"]))
        print(f"side by side: {Path(args.output) / PAGE}")
    s = report["summary"]
    return 1 if (s["bad"] or s["failed"]) else 0


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("logo", help="the logo image (PNG, JPEG, ...)")
    p.add_argument("--model", default="models/export", help="export directory (dvc repro export)")
    p.add_argument("--runtime", choices=("onnx", "torch"), default="onnx")


def _register_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predicted SSIM for a logo and VTracer parameters")
    _add_model_args(p)
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a VTracer parameter (repeatable); the others take VTracer's defaults",
    )
    p.add_argument("--json", action="store_true", help="print the prediction as JSON")
    p.set_defaults(func=_predict)


def _add_objective_args(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=default,
        help="quality: highest SSIM; size: smallest SVG with SSIM >= --min-ssim; balanced: "
        "SSIM - 0.01 per doubling of the bytes (vs the defaults)"
        + ("" if default else "; default: size when the model has a size head, else quality"),
    )
    p.add_argument(
        "--min-ssim",
        type=float,
        default=None,
        help="size: the SSIM bar (default: the defaults' SSIM minus --tolerance)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"size: SSIM allowed below the defaults' (default {DEFAULT_TOLERANCE})",
    )
    p.add_argument(
        "--candidates",
        type=int,
        default=2048,
        help="Sobol parameter sets to score (1 to 65,536; memory grows with it: ~2 GB at the most)",
    )
    p.add_argument("--seed", type=int, default=0, help="Sobol scrambling seed")


def _add_native_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-side",
        type=int,
        default=MAX_SIDE,
        help=f"verify at the input's own size, a long side above this resampled (default {MAX_SIDE} px)",
    )
    p.add_argument(
        "--colour-tolerance",
        type=float,
        default=COLOUR_TOLERANCE,
        help="refuse a candidate whose mean CIEDE2000 colour error exceeds the defaults' by "
        f"more than this (default {COLOUR_TOLERANCE})",
    )


def _register_suggest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("suggest", help="the best VTracer parameters for a logo, by the model")
    _add_model_args(p)
    _add_objective_args(p, "quality")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--pareto", action="store_true", help="also list the SSIM/bytes frontier")
    p.add_argument(
        "--verify",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="K",
        help="convert the K best (default 1) and VTracer's defaults with VTracer and return "
        "the best verified set (the defaults when none beats them)",
    )
    _add_native_args(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_suggest)


def _add_cluster_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--cluster",
        default=None,
        metavar="ADDRESS",
        help=f"{what} on the Dask scheduler at ADDRESS (tcp://host:8786), one task per logo, "
        "instead of --workers here; its workers need this project installed (docs/cluster.md)",
    )


def _register_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="write the chosen, verified SVG for each logo (files or folders)"
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="logo files or folders (recursive)")
    p.add_argument("-o", "--output", required=True, help="output folder (relative paths kept)")
    p.add_argument("--model", default="models/export", help="export directory (dvc repro export)")
    p.add_argument("--runtime", choices=("onnx", "torch"), default="onnx")
    _add_objective_args(p, None)
    p.add_argument(
        "--verify", type=int, default=4, metavar="K", help="candidates converted per logo (4)"
    )
    _add_native_args(p)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="parallel worker processes (at least 1; at most the cores and the logos to convert)",
    )
    _add_cluster_arg(p, "convert")
    p.add_argument("--force", action="store_true", help="overwrite existing SVGs")
    p.add_argument(
        "--no-minify",
        action="store_true",
        help="write VTracer's SVG as it is (default: minified by scour when it renders the same)",
    )
    p.add_argument("--json", action="store_true", help="print the JSON report instead of lines")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_convert)


def _evaluate(args: argparse.Namespace) -> int:
    # lazy: evaluate loads pandas and pyarrow, which no other command needs
    from svg_quality.evaluate import evaluate_folder, table

    if args.samples < 1 or args.workers < 0:
        raise ValueError("--samples must be at least 1 and --workers at least 0")
    # The label stage's design (its local box and share) when a params file is at hand.
    design = LabelConfig()
    if args.params is not None or Path("params.yaml").is_file():
        design = load_params(args.params or "params.yaml").label
    _warn_missed_gates(Path(args.model))
    try:
        res = evaluate_folder(
            args.folder,
            args.model,
            args.out,
            runtime=args.runtime,
            samples=args.samples,
            seed=args.seed,
            workers=args.workers,
            timeout_s=args.timeout,
            design=design,
            sizes=None if args.sizes is None else tuple(args.sizes),
            progress=not args.no_progress,
            force=args.force,
            cluster=args.cluster,
        )
    except KeyboardInterrupt:
        print(
            "svg-quality: interrupted; the finished samples are kept: rerun the same command "
            "to continue",
            file=sys.stderr,
        )
        return 130
    for r in res.rejects.itertuples():
        print(f"rejected {r.source}: {r.reason} ({r.detail})", file=sys.stderr)
    print(table(res))
    print(f"wrote {', '.join(p.name for p in res.files)} to {res.files[0].parent}")
    return 0


def _register_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="label a <type>/<file> folder with VTracer and score the model on it"
    )
    p.add_argument("folder", help="logos laid out as <logo_type>/<image file>")
    p.add_argument("--model", default="models/export", help="export directory (dvc repro export)")
    p.add_argument("--runtime", choices=("onnx", "torch"), default="onnx")
    p.add_argument(
        "--out",
        default=None,
        help="report folder (reports/evaluate/<folder name>): new, empty or an earlier "
        "evaluate's; never the input folder or one holding it, the model or the working dir",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write into an existing --out evaluate did not write (only its own file names "
        "are replaced; nothing is deleted)",
    )
    p.add_argument("--samples", type=int, default=8, help="parameter sets per logo and size (8)")
    p.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=None,
        metavar="PX",
        help="also label and score each logo at these long sides, where its source is at least "
        "that large (default: the larger sizes the model was trained at; --sizes alone: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="parameter sampling seed")
    p.add_argument(
        "--workers", type=int, default=0, help="VTracer processes (0: all cores; at most the cores)"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per conversion (60)")
    _add_cluster_arg(p, "label")
    p.add_argument(
        "--params", default=None, help="params.yaml whose label design to use (./params.yaml)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_evaluate)


# Later subcommands register themselves here.
_EXTRA_COMMANDS: list = [
    _register_predict,
    _register_suggest,
    _register_convert,
    _register_evaluate,
]


def _user_error(args: argparse.Namespace, exc: BaseException) -> str | None:
    """The one-line message for an error a user's input or environment causes (a bad
    file, value or path; VTracer failing on the logo), or None for a bug, which keeps
    its traceback."""
    if isinstance(exc, ValueError | OSError):
        return str(exc)
    # Imported only here: vectorize loads scipy, which the cheap subcommands never need.
    from svg_quality.vectorize import ConversionFailed, RenderFailed, _is_panic

    if isinstance(exc, ConversionFailed | RenderFailed) or _is_panic(exc):
        logo = getattr(args, "logo", "the logo")
        return (
            f"{logo}: VTracer could not convert it ({type(exc).__name__}: {exc}); the "
            "predictions stand: rerun without --verify, or report the logo to VTracer"
        )
    return None


def _warning_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """A warning as the CLI's one line (``svg-quality: warning: ...``), not Python's two;
    each message once (a pool's workers load the model again after the check)."""
    text = str(message)
    if text not in _WARNED:
        _WARNED.add(text)
        print(f"svg-quality: warning: {text}", file=sys.stderr)


_WARNED: set[str] = set()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line
            return args.func(args)
    except KeyboardInterrupt:
        print("svg-quality: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:
        message = None if isinstance(exc, SystemExit) else _user_error(args, exc)
        if message is None:
            raise
        print(f"svg-quality: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
