"""The two compiled (Rust) dependencies, imported with an error a user can act on.

vtracer and resvg-py ship binary wheels for the common platforms only; elsewhere pip
builds them from source, which needs a Rust toolchain, and an install that skipped or
broke them otherwise surfaces as a bare ``ModuleNotFoundError`` deep inside a stage.
"""

from __future__ import annotations

import importlib
import platform
import sys
from types import ModuleType

# import name -> distribution name on PyPI
DISTRIBUTIONS = {"vtracer": "vtracer", "resvg_py": "resvg-py"}


def require(module: str) -> ModuleType:
    """Import ``module`` (``vtracer`` or ``resvg_py``); on failure say why and what to do."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(missing_message(module, exc)) from exc


def missing_message(module: str, exc: BaseException) -> str:
    dist = DISTRIBUTIONS.get(module, module)
    here = f"Python {platform.python_version()} on {sys.platform} {platform.machine()}"
    return (
        f"svg-quality needs {dist}, a compiled extension, but `import {module}` failed on "
        f"{here}: {exc}. Install the locked version: pip install -r requirements.lock -e . "
        f"If pip then tries to build {dist} from source (no binary wheel for this platform "
        "and Python; PyPI has wheels for CPython 3.10-3.13 on Linux x86_64, macOS arm64 "
        "and Windows x64), either use one of those, or install a Rust toolchain "
        "(https://rustup.rs) so pip can build it, and run the install again."
    )
