"""Install problems a user can act on: an old Python, a missing compiled dependency."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import svg_quality
from svg_quality import vectorize
from svg_quality.config import load_params

from .conftest import REPO_ROOT


def test_old_python_is_refused_with_what_to_do() -> None:
    with pytest.raises(ImportError) as info:
        svg_quality.check_python((3, 9, 18, "final", 0), "/usr/bin/python3.9")
    msg = str(info.value)
    assert "needs Python 3.10 or newer; this is Python 3.9.18 (/usr/bin/python3.9)" in msg
    assert "venv" in msg and "pip install -r requirements.lock" in msg
    svg_quality.check_python((3, 10, 0, "final", 0), "/usr/bin/python3.10")  # no error


@pytest.mark.parametrize("old", ["3.9", "3.8"])
def test_import_on_a_real_old_python(old: str) -> None:
    """The package's own import names the problem, not a SyntaxError in a submodule."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = [shutil.which(f"python{old}"), *map(str, pyenv.glob(f"{old}.*/bin/python{old}"))]
    works = [
        exe
        for exe in found
        if exe and subprocess.run([exe, "-c", "pass"], capture_output=True).returncode == 0
    ]
    if not works:
        pytest.skip(f"no working python{old} on PATH or under {pyenv}")
    exe = works[0]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    res = subprocess.run(
        [exe, "-c", "import svg_quality.vectorize"], capture_output=True, text=True, env=env
    )
    assert res.returncode != 0
    assert f"needs Python 3.10 or newer; this is Python {old}." in res.stderr, res.stderr[-2000:]


def test_missing_compiled_dependency_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_params(REPO_ROOT / "params.yaml").vtracer
    # None in sys.modules makes `import vtracer` fail as if no wheel had been installed.
    monkeypatch.setitem(sys.modules, "vtracer", None)
    with pytest.raises(ImportError) as info:
        vectorize.convert(b"", {}, cfg)
    msg = str(info.value)
    assert "svg-quality needs vtracer, a compiled extension" in msg
    assert "pip install -r requirements.lock" in msg and "https://rustup.rs" in msg
    monkeypatch.setitem(sys.modules, "resvg_py", None)
    with pytest.raises(ImportError, match=r"needs resvg-py, .*`import resvg_py` failed"):
        vectorize.render("<svg/>", 4, 4)
