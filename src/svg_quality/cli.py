"""The `svg-quality` command line.

Subcommands:
  check-params   validate a params file and print it resolved (defaults filled in)
  sample         write a few synthetic logos of each type to a folder
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


# Later subcommands (predict, suggest) register themselves here.
_EXTRA_COMMANDS: list = []


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"svg-quality: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
