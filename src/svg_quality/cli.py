"""The `svg-quality` command line.

Subcommands:
  check-params   validate a params file and print it resolved (defaults filled in)
  sample         write a few synthetic logos of each type to a folder
  predict        predicted SSIM of VTracer on a logo for given parameters (exported model)
  suggest        the VTracer parameters the model predicts best for a logo (--verify converts)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _check_params(args: argparse.Namespace) -> int:
    import yaml

    from svg_quality.config import load_params

    params = load_params(args.params)
    print(yaml.safe_dump(params.to_dict(), sort_keys=False), end="")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from svg_quality import synthetic
    from svg_quality.config import LOGO_TYPES

    out = Path(args.out)
    for t in LOGO_TYPES:
        (out / t).mkdir(parents=True, exist_ok=True)
        for i in range(args.per_type):
            synthetic.generate(t, args.seed, i, args.size).save(out / t / f"{t}_{i:03d}.png")
    print(f"wrote {args.per_type * len(LOGO_TYPES)} logos to {out}/<type>/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="svg-quality",
        description="Predict VTracer's vectorization fidelity (SSIM) for a logo and parameters.",
    )
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-params", help="validate params.yaml and print it resolved")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_check_params)

    p = sub.add_parser("sample", help="write synthetic logos as a <type>/<file> folder")
    p.add_argument("out", help="output folder")
    p.add_argument("--per-type", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    p.set_defaults(func=_sample)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return ap


# --------------------------------------------------------------------------- predict, suggest
# Served from an export directory (models/export) on ONNX Runtime by default: no torch,
# no params.yaml. Heavy imports stay inside the handlers so `--help` is instant.


def _parse_param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--param {text!r} is invalid; write name=value, e.g. filter_speckle=8")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise ValueError(f"--param {text!r}: {value!r} is not a number") from None


def _load_predictor(args: argparse.Namespace):
    from svg_quality.serving.predictor import Predictor

    return Predictor.load(args.model, runtime=args.runtime)


def _predict(args: argparse.Namespace) -> int:
    given = dict(_parse_param(t) for t in args.param)
    predictor = _load_predictor(args)
    params = predictor.check_params(given)  # unknown names and bad values fail before the image
    logo = predictor.prepare(args.logo)
    ssim = predictor.predict(logo, params)
    changed = ", ".join(f"{k}={v:g}" for k, v in given.items()) or "none"
    print(f"predicted SSIM {ssim:.4f}  (VTracer defaults; changed: {changed})")
    return 0


def _suggest(args: argparse.Namespace) -> int:
    predictor = _load_predictor(args)
    if args.top_k < 1 or args.candidates < 1:
        raise ValueError("--top-k and --candidates must be at least 1")
    logo = predictor.prepare(args.logo)
    res = predictor.suggest(logo, top_k=args.top_k, candidates=args.candidates, seed=args.seed)
    print(
        f"{res.n_candidates} parameter sets scored in {res.score_ms:.1f} ms "
        f"(backbone {res.backbone_ms:.0f} ms); VTracer defaults predict {res.default.ssim:.4f}"
    )
    for rank, s in enumerate(res.top, 1):
        tag = "  (VTracer defaults)" if s.is_default else ""
        values = " ".join(f"{k}={v:g}" for k, v in s.params.items())
        print(f"{rank:2d}. predicted SSIM {s.ssim:.4f}  {values}{tag}")
    if args.verify:
        _verify(predictor, logo, res)
    return 0


def _verify(predictor, logo, res) -> None:
    """Convert with VTracer: the best suggestion and the defaults, actual SSIM and SVG size."""
    from svg_quality.config import VtracerConfig
    from svg_quality.vectorize import score

    meta = predictor.metadata
    cfg = VtracerConfig(
        **meta["vtracer"], ranges={k: tuple(v) for k, v in meta["param_ranges"].items()}
    )
    best = score(logo.rgb, res.top[0].params, cfg)
    default = score(logo.rgb, res.default.params, cfg)
    print(
        f"verified with VTracer: suggestion SSIM {best.ssim:.4f} ({best.svg_bytes:,} bytes SVG), "
        f"defaults SSIM {default.ssim:.4f} ({default.svg_bytes:,} bytes SVG), "
        f"uplift {best.ssim - default.ssim:+.4f}"
    )


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
    p.set_defaults(func=_predict)


def _register_suggest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("suggest", help="the best VTracer parameters for a logo, by the model")
    _add_model_args(p)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--candidates", type=int, default=2048, help="Sobol parameter sets to score")
    p.add_argument("--seed", type=int, default=0, help="Sobol scrambling seed")
    p.add_argument(
        "--verify",
        action="store_true",
        help="convert with VTracer (best suggestion and defaults) and print actual SSIM",
    )
    p.set_defaults(func=_suggest)


# Later subcommands register themselves here.
_EXTRA_COMMANDS: list = [_register_predict, _register_suggest]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"svg-quality: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
