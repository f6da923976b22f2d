"""Documented bounds on what a user hands the CLI (issue #30, rows 2 and 3): the number of
candidates and of worker processes, and a hostile params file (an alias bomb, megabytes,
deep nesting), each refused in one short line, fast. The real CLI, real files."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from svg_quality import synthetic
from svg_quality.cli import main
from svg_quality.config import parse_params
from svg_quality.paramsfile import MAX_PARAMS_BYTES
from svg_quality.paramspace import MAX_CANDIDATES, sobol_candidates
from tests.conftest import load_repo_params
from tests.export_fixtures import repo_ranges


def one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("svg-quality: error: "), err[:500]
    return err.strip()


# --------------------------------------------------------------------------- row 2: candidates


@pytest.mark.parametrize("n", ["2000000", "65537", "0", "-5"])
@pytest.mark.parametrize("command", ["suggest", "convert"])
def test_candidates_out_of_bounds_are_refused_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture, command: str, n: str
) -> None:
    """2,000,000 was killed by the kernel at 22.8 GB; the bound comes first, so no model
    (here none at all) is loaded and nothing is allocated."""
    args = [str(tmp_path / "logo.png")] if command == "suggest" else [str(tmp_path), "-o", "x"]
    err = one_line_error(
        capsys, [command, *args, "--model", str(tmp_path / "none"), "--candidates", n]
    )
    assert f"--candidates {int(n):,} is invalid; allowed: 1 to 65,536" in err
    assert not (tmp_path / "x").exists()


def test_the_library_refuses_more_candidates_than_the_bound() -> None:
    ranges = repo_ranges()
    assert sobol_candidates(ranges, MAX_CANDIDATES).shape == (MAX_CANDIDATES, 8)
    for n in (MAX_CANDIDATES + 1, 0):
        with pytest.raises(ValueError, match=r"allowed: 1 to 65,536"):
            sobol_candidates(ranges, n)
    raw = load_repo_params()
    raw["export"]["suggest_candidates"] = MAX_CANDIDATES + 1
    with pytest.raises(ValueError, match=r"export.suggest_candidates = 65537 is invalid"):
        parse_params(raw)


# --------------------------------------------------------------------------- row 2: workers


def test_convert_never_forks_more_workers_than_cores_or_logos(
    tmp_path: Path, vtracer_export: dict[str, Path]
) -> None:
    """`--workers 64` on 3 logos: at most min(cores, 3) processes (it was 64 + 1)."""
    import os

    import psutil

    logos = tmp_path / "logos"
    for t in ("simple", "text", "gradient"):
        (logos / t).mkdir(parents=True)
        synthetic.generate(t, 1, 0, 48).save(logos / t / f"{t}.png")
    argv = [sys.executable, "-m", "svg_quality.cli", "convert", str(logos), "-o"]
    argv += [str(tmp_path / "out"), "--model", str(vtracer_export["out"]), "--workers", "64"]
    argv += ["--verify", "1", "--candidates", "64", "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent, most = psutil.Process(proc.pid), 0

    def is_worker(child: psutil.Process) -> bool:  # not multiprocessing's resource tracker
        return "resource_tracker" not in " ".join(child.cmdline())

    while proc.poll() is None:
        try:
            most = max(most, sum(is_worker(c) for c in parent.children()))
        except psutil.NoSuchProcess:  # the batch, or a child between listing and reading
            if proc.poll() is not None:
                break
        time.sleep(0.005)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "3/3 logos ok" in out
    assert 1 <= most <= min(os.cpu_count() or 1, 3), most


# --------------------------------------------------------------------------- row 3: params file


def bomb(levels: int) -> str:
    """The "billion laughs": each level nine aliases of the one before (9**levels strings)."""
    items = ['&l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    items += [f"&l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "data:\n  source:\n" + "".join(f"    - {s}\n" for s in items)


def test_an_alias_bomb_is_refused_at_the_first_alias(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(bomb(6))  # expanded and rendered, it made a 33 MB error message
    t0 = time.perf_counter()
    err = one_line_error(capsys, ["check-params", "--params", str(path)])
    assert time.perf_counter() - t0 < 2
    assert err == (
        f"svg-quality: error: {path}: line 4: YAML aliases (*l0) are not accepted; "
        "write the value out"
    )


def test_a_file_over_the_size_bound_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  source: " + "x" * (MAX_PARAMS_BYTES + 10) + "\n")
    t0 = time.perf_counter()
    err = one_line_error(capsys, ["check-params", "--params", str(path)])
    assert time.perf_counter() - t0 < 2
    assert f"{path}: larger than 1 MB, the most a params file may be" in err


def test_a_long_value_is_cut_short_in_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  per_type: " + "9" * 200_000 + "x\n")  # a 200 kB non-integer
    err = one_line_error(capsys, ["check-params", "--params", str(path)])
    assert len(err) < 250, err
    assert "data.per_type = '99999" in err and "... (200,003 chars) is invalid" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data:\n  source: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 32 levels"),
        ("data:\n  ? [a, b]\n  : 1\n", "line 2: a list as a key; keys are names"),
        ("data:\n  ? " + "k" * 100_000 + "\n  : 1\n", "unknown key 'data.kkkkkkk"),
    ],
    ids=["deep", "list-key", "long-key"],
)
def test_odd_yaml_is_one_short_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture, text: str, message: str
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    err = one_line_error(capsys, ["check-params", "--params", str(path)])
    assert message in err and len(err) < 300, err[:500]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--per-type", "-1"], "--per-type -1 is invalid; allowed: 1 to 10,000"),
        (["--per-type", "0"], "--per-type 0 is invalid"),
        (["--size", "60000"], "--size 60000 is invalid; allowed: 16 to 2048 px"),
        (["--size", "8"], "--size 8 is invalid"),
    ],
)
def test_sample_refuses_counts_and_sizes_out_of_bounds(capsys, tmp_path, argv, expected) -> None:
    """Row 11: `sample --per-type -1` said "wrote -4 logos" (exit 0); `--size 60000` ended
    in a MemoryError traceback. Both are one-line refusals, with nothing written."""
    out = tmp_path / "logos"
    assert expected in one_line_error(capsys, ["sample", str(out), *argv])
    assert not out.exists()


def test_sample_does_not_overwrite_logos_without_force(capsys, tmp_path) -> None:
    out = tmp_path / "logos"
    assert main(["sample", str(out), "--per-type", "1", "--size", "32"]) == 0
    mine = out / "simple" / "simple_000.png"
    mine.write_bytes(b"my own drawing")
    assert "exist already" in one_line_error(capsys, ["sample", str(out), "--per-type", "1"])
    assert mine.read_bytes() == b"my own drawing"
    assert main(["sample", str(out), "--per-type", "1", "--size", "32", "--force"]) == 0
    assert mine.read_bytes().startswith(b"\x89PNG")
