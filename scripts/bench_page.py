"""Fill docs/benchmarks.md's generated sections from the benchmarks' JSON records.

The page is hand-written, except between marker pairs

    <!-- generated: NAME -->
    <!-- end generated: NAME -->

which this script fills from bench/results/NAME.json, the record a benchmark writes with
``--json`` (bench/benchjson: its tables, its ratio line, the command, date, commit and
load). Every record needs its markers on the page and every marker pair its record, so no
figure on the page is typed in by hand and no result is left off it.

    python scripts/bench_page.py            # rewrite the generated sections
    python scripts/bench_page.py --check    # exit 1, naming each stale section, if the
                                            # page differs from what the records give
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SECTION = re.compile(
    r"(?P<start><!-- generated: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)"
    r"(?P<end><!-- end generated: (?P=name) -->)",
    re.DOTALL,
)


def load_record(path: Path) -> dict[str, Any]:
    raw = json.loads(path.read_text())
    if "tables" in raw:
        return raw
    raise ValueError(
        f"{path}: not a benchjson record (no 'tables'); write it with the benchmark's --json"
    )


def cell(key: str, value: Any) -> str:
    """One figure as the page shows it: shares in percent, three or four digits."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if key.startswith("share"):
            return f"{value:.0%}"
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def table(rows: list[dict[str, Any]]) -> list[str]:
    """Rows as a Markdown table, one column per key found in any row (in order of first
    appearance), blank where a row lacks it."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(c.replace("_", " ") for c in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        cells = [cell(c, row[c]) if c in row else "" for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def provenance(rec: dict[str, Any]) -> str:
    """Command, date, commit, the 1-minute load average at the start → the end, cores, and
    the record's note if any; 'not recorded' where the record lacks one."""
    argv = rec.get("argv")
    command = f"`python {shlex.join(argv)}`" if argv else "not recorded"
    date = rec["date"].replace("T", " ").replace("+00:00", " UTC") if rec.get("date") else None
    commit = rec.get("commit")
    if commit and commit.endswith("-dirty"):
        commit = f"{commit.removesuffix('-dirty')} with uncommitted changes"
    start, end = rec.get("load_start"), rec.get("load_end")
    cores = (rec.get("machine") or {}).get("cores")
    load = f"{start[0]:.1f} → {end[0]:.1f} on {cores} cores" if start and end else "not recorded"
    line = (
        f"command: {command}, {date or 'date not recorded'}, "
        f"commit {commit or 'not recorded'}, load {load}"
    )
    return line + (f"; {rec['note']}" if rec.get("note") else "")


def render(rec: dict[str, Any]) -> str:
    """A record's section: each table under its title, the ratio line, the provenance."""
    lines: list[str] = []
    for title, rows in rec["tables"].items():
        lines += [f"*{title}*", "", *table(rows), ""]
    lines += [f"**{rec['ratio_label']}: {rec['ratio']:.3g}x**", "", provenance(rec), ""]
    return "\n".join(lines)


def generate(page: str, results: Path) -> tuple[str, list[str]]:
    """The page with every section filled from ``results``, and the names of the sections
    whose text changed."""
    names = [m["name"] for m in SECTION.finditer(page)]
    files = {p.stem for p in results.glob("*.json")}
    if missing := sorted(set(names) - files):
        raise SystemExit(f"no record for the page's sections {missing} in {results}")
    if unplaced := sorted(files - set(names)):
        raise SystemExit(
            f"{results}: {unplaced} have no section on the page; add "
            "'<!-- generated: NAME -->' and '<!-- end generated: NAME -->' lines where each goes"
        )
    if len(set(names)) != len(names):
        raise SystemExit(f"a section appears twice on the page: {names}")
    stale = []

    def fill(m: re.Match[str]) -> str:
        body = render(load_record(results / f"{m['name']}.json"))
        if body != m["body"]:
            stale.append(m["name"])
        return m["start"] + body + m["end"]

    return SECTION.sub(fill, page), stale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--page", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "results")
    ap.add_argument("--check", action="store_true", help="exit 1 if a section is stale")
    args = ap.parse_args()
    text, stale = generate(args.page.read_text(), args.results)
    if args.check:
        if stale:
            sys.exit(
                f"{args.page}: stale sections {stale} (their records in {args.results} "
                "differ); run python scripts/bench_page.py"
            )
        print(f"{args.page}: every generated section matches {args.results}")
    elif stale:
        args.page.write_text(text)
        print(f"{args.page}: rewrote {stale}")
    else:
        print(f"{args.page}: up to date")


if __name__ == "__main__":
    main()
