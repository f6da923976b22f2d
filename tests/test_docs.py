"""The front doors stay short and the docs site builds: README.md and params.yaml within
their line limits, every page in mkdocs.yml's nav present, and a strict MkDocs build
(a broken page link or anchor fails) in a temporary site folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200
PARAMS_MAX_LINES = 110


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def nav_pages(nav: list) -> list[str]:
    """Every page file named in an MkDocs nav (entries are `Title: page.md` or sections)."""
    pages: list[str] = []
    for entry in nav:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_readme_is_short() -> None:
    n = line_count(REPO_ROOT / "README.md")
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move detail into docs/"


def test_params_is_short() -> None:
    n = line_count(REPO_ROOT / "params.yaml")
    assert n <= PARAMS_MAX_LINES, f"params.yaml has {n} lines; measurements go to docs/decisions.md"


def test_every_params_key_says_what_it_is() -> None:
    """One line a key, each but the section headers with a `# what; allowed values` comment."""
    for i, line in enumerate((REPO_ROOT / "params.yaml").read_text().splitlines(), 1):
        if line.startswith(" ") and "#" not in line:
            pytest.fail(f"params.yaml line {i} has no comment: {line.strip()}")


def test_readme_holds_the_commands_ci_runs() -> None:
    """.ci/run runs the README's install and test commands; both stay in its Quick start."""
    readme = (REPO_ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    for command in ('pip install -r requirements.lock -e ".[dev]"', "python -m pytest"):
        assert command in quick, f"the README's Quick start lost {command!r}"
        assert re.search(rf"^(python -m )?{re.escape(command)}$", ci, re.M), command


def test_every_nav_page_exists() -> None:
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    docs = REPO_ROOT / config["docs_dir"]
    pages = nav_pages(config["nav"])
    assert pages, "mkdocs.yml has no nav"
    missing = [p for p in pages if not (docs / p).is_file()]
    assert not missing, f"mkdocs.yml nav names pages that do not exist: {missing}"


def test_docs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is in the dev extra")
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)]
    res = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "index.html").is_file()
