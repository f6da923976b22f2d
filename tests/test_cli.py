"""The `svg-quality` command as a user meets it (issue 17): every user-facing error is one
line on stderr and exit status 2, never a traceback. Each test runs the real command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def svg_quality(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    return subprocess.run(
        ["svg-quality", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def refused(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2, one error line naming ``needles``, no traceback."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("svg-quality: error:")]
    assert len(errors) == 1, res.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def params_text(replace: str, by: str) -> str:
    text = (REPO_ROOT / "params.yaml").read_text()
    assert replace in text
    return text.replace(replace, by, 1)


@pytest.mark.parametrize(
    ("replace", "by", "needles"),
    [
        ("  lr: 0.006", "  lr: .nan", ["train.lr = nan is invalid", "a finite number"]),
        (
            "train:\n",
            "train:\n  lr: [0.1\n",
            ["params.yaml: not valid YAML: line", "fix the syntax"],
        ),
        ("train:\n", "train:\n  epochs: 3\n", ["key 'epochs' is given twice"]),
    ],
    ids=["nan", "yaml-syntax", "duplicate-key"],
)
def test_check_params_refuses_bad_files_in_one_line(tmp_path, replace, by, needles) -> None:
    (tmp_path / "params.yaml").write_text(params_text(replace, by))
    refused(svg_quality("check-params", "--quiet", cwd=tmp_path), *needles)


def test_check_params_quiet_accepts_the_repo_file() -> None:
    res = svg_quality("check-params", "--quiet", cwd=REPO_ROOT)
    assert res.returncode == 0 and res.stdout.strip() == "params.yaml: ok", res.stderr


def test_sample_into_an_existing_file_is_refused(tmp_path) -> None:
    target = tmp_path / "logos.png"
    target.write_bytes(b"not a folder")
    refused(svg_quality("sample", str(target)), str(target), "is not a folder")
    assert target.read_bytes() == b"not a folder"


def test_repeated_param_is_refused_not_overwritten(tmp_path) -> None:
    # Checked before the model or the image is read: neither needs to exist.
    res = svg_quality(
        "predict",
        str(tmp_path / "logo.png"),
        "--model",
        str(tmp_path / "export"),
        "--param",
        "filter_speckle=8",
        "--param",
        "filter_speckle=4",
    )
    refused(res, "--param filter_speckle is given twice (8 and 4)")
