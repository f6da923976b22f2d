"""Rebuild the repository's ``artwork/`` folder (vendored training artwork) from the pins.

``artwork/`` holds a type-balanced sample of each set in ``svg_quality.artsets.VENDORED``,
so ``data.sources: [..., artwork]`` trains on real vector icons without network access.
For each set the pinned npm tarball (``artsets.TRAINING``) is read from the cache folder
(``--tarballs``, default ``~/.cache/svg-quality/npm`` or ``$SVG_QUALITY_CACHE/npm``) or
downloaded into it, its sha512 checked against the pin, and ``--per-set`` icons drawn by
``svg_quality.artwork.sample`` with ``--seed``; they are written as::

    artwork/<set>.json   # svg_quality.artwork.vendored_json: the pin, the seed, the icons
    artwork/README.md    # what the folder is, the sets, their licences and authors

The files are a function of the pins, the count and the seed, so a rebuild gives the same
bytes. The folder is written in a temporary sibling and swapped in whole. ``--check`` writes
nothing: it rebuilds in memory, lists every file that differs, is missing or is extra, and
exits 1 if there is one (0 when the folder matches the pins).

    python scripts/vendor_artwork.py                 # rewrite artwork/ from the pins
    python scripts/vendor_artwork.py --check         # does artwork/ match the pins?
    python scripts/vendor_artwork.py --tarballs /tmp/npm --out /tmp/artwork
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from svg_quality import artsets, artwork, io
from svg_quality.artsets import Package
from svg_quality.config import LOGO_TYPES

PER_SET = 120
SEED = 0
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "artwork"

# What each licence of a vendored set asks of whoever redistributes the files (this
# repository) or pictures rendered from them: (the licence's text, what to do).
LICENCE_TERMS = {
    "CC-BY-4.0": (
        "https://creativecommons.org/licenses/by/4.0/",
        "Credit the author by name, link the licence and say that the files are a sample "
        "of the set (the icon bodies are unchanged)",
    ),
    "Apache-2.0": (
        "https://www.apache.org/licenses/LICENSE-2.0",
        "Give recipients a copy of the licence, keep the authors' copyright notices and say "
        "that the files are a sample of the set (the icon bodies are unchanged)",
    ),
    "MIT": (
        "https://opensource.org/licenses/MIT",
        "Keep each author's copyright notice and the MIT permission notice with the files",
    ),
}


def build(per_set: int, seed: int, tarballs: Path | None) -> dict[str, str]:
    """The folder's files, ``{name: text}``: one ``<set>.json`` per vendored set, README.md."""
    files, sets = {}, []
    for name in artsets.VENDORED:
        pkg = artsets.TRAINING[name]
        # brand logos and national flags of an allowed set are never training data
        icons = artwork.read_icons(pkg, artwork.fetch_tarball(pkg, tarballs))
        icons = artwork.training_icons(icons)
        chosen = artwork.sample(icons, per_set, seed)
        files[f"{name}.json"] = artwork.vendored_json(pkg, chosen, seed)
        sets.append((pkg, len(icons), chosen))
        print(f"{pkg.name}@{pkg.version}: {len(icons)} icons, vendored {len(chosen)}")
    files["README.md"] = readme(sets, per_set, seed)
    return files


def readme(sets: list[tuple[Package, int, list]], per_set: int, seed: int) -> str:
    """``artwork/README.md``: the sets with their pins, types, licences and authors."""
    unknown = sorted({pkg.license for pkg, _, _ in sets} - set(LICENCE_TERMS))
    if unknown:
        raise ValueError(
            f"vendored sets under {unknown}: add what each licence asks to LICENCE_TERMS in "
            "scripts/vendor_artwork.py before vendoring them"
        )
    rows = []
    for pkg, total, chosen in sets:
        by_type = Counter(kind for _, kind in chosen)
        types = ", ".join(f"{kind} {by_type[kind]}" for kind in LOGO_TYPES)
        rows.append(
            f"| `{pkg.short}` | `{pkg.name}@{pkg.version}` | {pkg.license} | {pkg.author} | "
            f"{len(chosen)} of {total} | {types} | `{pkg.integrity}` |"
        )
    terms = []
    for spdx, (url, duty) in LICENCE_TERMS.items():
        held = [pkg for pkg, _, _ in sets if pkg.license == spdx]
        if held:
            names = "; ".join(f"`{pkg.short}` by {pkg.author}" for pkg in held)
            terms.append(f"- **{spdx}** ({url}): {names}. {duty}.")
    transfer = ", ".join(f"`{pkg.short}`" for pkg in artsets.TRANSFER)
    return f"""# Vendored training artwork

Real vector icons for training: `data.sources: [..., artwork]` in params.yaml draws
`data.per_set` icons of each set in `data.artwork` from here (no network needed). Each
`<set>.json` holds a type-balanced sample of {per_set} icons (seed {seed}) of one pinned
Iconify npm package (`svg_quality.artsets.TRAINING`): the pin, the seed and each icon's SVG
body, viewBox and logo type (`svg_quality.artwork.classify`). Prepare refuses a file whose
pin differs from `svg_quality/artsets.py`.

These are never the real-icon folder's sets (`artsets.TRANSFER`:
{transfer}): the model is judged on those, so they are never training data;
brand, logo and flag sets are refused too (`artsets.refused`), and so are the brand logos
and national flags inside the sets below (`artsets.training_icon`: `spotify-logo-2`,
`wechat`, `flag-for-chile`, ...); "of N" counts the icons left after that rule.

Do not edit these files by hand. Rebuild them from the pinned tarballs (sha512-checked,
cached in `~/.cache/svg-quality/npm`, downloaded from the npm registry when missing) with

    python scripts/vendor_artwork.py --per-set {per_set} --seed {seed}

and check that they match the pins with `python scripts/vendor_artwork.py --check`.

| set | package | licence | author | icons vendored | icons per type | integrity |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

## Licences

The icons keep their sets' licences; the repository's own licence does not cover them.
What each asks of whoever redistributes these files or pictures rendered from them:

{chr(10).join(terms)}
"""


def check(out: Path, files: dict[str, str]) -> list[str]:
    """Each difference between ``out`` and ``files``, as ``'<what>: <path>'`` lines."""
    present = {p.name for p in out.iterdir()} if out.is_dir() else set()
    problems = []
    for name, text in files.items():
        path = out / name
        if name not in present:
            problems.append(f"missing: {path}")
        elif not path.is_file() or path.read_bytes() != text.encode("utf-8"):
            problems.append(f"differs: {path}")
    problems += [f"extra: {out / name}" for name in sorted(present - set(files))]
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    ap.add_argument("--per-set", type=int, default=PER_SET, help=f"icons per set ({PER_SET})")
    ap.add_argument("--seed", type=int, default=SEED, help=f"sample seed ({SEED})")
    ap.add_argument(
        "--tarballs",
        type=Path,
        help=f"cache folder of the .tgz files (default {artwork.cache_dir()})",
    )
    ap.add_argument("--check", action="store_true", help="compare with --out, write nothing")
    args = ap.parse_args(argv)
    if args.per_set < 1:
        ap.error(f"--per-set = {args.per_set}; use 1 or more")
    try:
        files = build(args.per_set, args.seed, args.tarballs)
    except artwork.ArtworkError as exc:
        ap.exit(2, f"{ap.prog}: {exc}\n")
    sets = len(files) - 1
    if args.check:
        problems = check(args.out, files)
        for line in problems:
            print(line)
        if problems:
            print(
                f"{args.out} does not match the pins; rebuild it: python scripts/vendor_artwork.py"
            )
            return 1
        print(f"{args.out.name}/: {sets} sets match the pins")
        return 0
    with io.atomic_dir(args.out) as tmp:
        for name, text in files.items():
            (tmp / name).write_bytes(text.encode("utf-8"))
    print(f"{sets} sets -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
