"""`svg-quality evaluate --out DIR` never deletes or overwrites what evaluate did not write
(issue #30, row 1): the real CLI on a tiny real export and real logo folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from svg_quality import synthetic
from svg_quality.cli import main
from svg_quality.evaluate import MANIFEST, REPORT_FILES


@pytest.fixture(scope="module")
def export_dir(vtracer_export: dict[str, Path]) -> Path:
    return vtracer_export["out"]


def logo_folder(root: Path) -> Path:
    """Two tiny synthetic logos laid out as <type>/<file>."""
    for t in ("simple", "text"):
        (root / t).mkdir(parents=True)
        synthetic.generate(t, 5, 0, 48).save(root / t / f"{t}.png")
    return root


def evaluate(folder: Path, export_dir: Path, out: Path | str, *extra: str) -> int:
    argv = ["evaluate", str(folder), "--model", str(export_dir), "--out", str(out)]
    return main([*argv, "--samples", "1", "--workers", "1", "--no-progress", *extra])


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_out_holding_the_input_the_cwd_or_the_model_is_refused_even_with_force(
    tmp_path: Path, export_dir: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    """Before the fix each of these was replaced whole: the logos, $PWD, the model gone."""
    logos = logo_folder(tmp_path / "user" / "logos")
    before = tree(tmp_path / "user")
    cwd = tmp_path / "project" / "here"
    cwd.mkdir(parents=True)
    (cwd / "notes.txt").write_text("mine")
    monkeypatch.chdir(cwd)
    cases = [
        (logos, "overlaps the input folder"),  # the input folder itself
        (logos.parent, "overlaps the input folder"),  # a folder holding it
        (logos / "simple", "overlaps the input folder"),  # a folder inside it
        (cwd, "holds the working directory"),  # $PWD
        (tmp_path / "project", "holds the working directory"),  # a parent of $PWD
        (export_dir.parent, f"holds the model {export_dir}"),
    ]
    for out, message in cases:
        for force in ([], ["--force"]):
            assert evaluate(logos, export_dir, out, *force) == 2, out
            err = capsys.readouterr().err.strip()
            assert message in err and str(out) in err and "\n" not in err, err
    assert tree(tmp_path / "user") == before
    assert (cwd / "notes.txt").read_text() == "mine"
    assert (export_dir / "metadata.json").is_file()


def test_a_foreign_folder_is_refused_and_force_writes_only_evaluates_names(
    tmp_path: Path, export_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    logos = logo_folder(tmp_path / "logos")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    (mine / "data").mkdir()
    (mine / "data" / "table.csv").write_text("a,b\n")

    assert evaluate(logos, export_dir, mine) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"svg-quality: error: {mine}: exists, is not empty and was not written by evaluate "
        f"(no {MANIFEST}); give --out a new or empty folder, or add --force to write "
        "evaluate's files into it (nothing else there is touched)"
    )
    assert sorted(p.name for p in mine.iterdir()) == ["data", "notes.txt"]

    assert evaluate(logos, export_dir, mine, "--force") == 0
    assert (mine / "notes.txt").read_text() == "keep me"
    assert (mine / "data" / "table.csv").read_text() == "a,b\n"
    assert all((mine / n).is_file() for n in (*REPORT_FILES, MANIFEST))
    # now evaluate's own: a rerun needs no --force, and what the user added stays
    (mine / "later.txt").write_text("added after")
    capsys.readouterr()
    assert evaluate(logos, export_dir, mine) == 0
    assert (mine / "later.txt").read_text() == "added after"
    assert (mine / "notes.txt").read_text() == "keep me"


def test_a_report_from_before_the_manifest_is_still_evaluates(
    tmp_path: Path, export_dir: Path
) -> None:
    """A folder holding exactly the five report files (and .work) was an earlier run's."""
    logos = logo_folder(tmp_path / "logos")
    out = tmp_path / "old_report"
    (out / ".work").mkdir(parents=True)
    for name in REPORT_FILES:
        (out / name).write_text("old")
    assert evaluate(logos, export_dir, out) == 0
    assert (out / "report.md").read_text() != "old" and (out / MANIFEST).is_file()
