"""svg-quality: predict VTracer's vectorization fidelity (SSIM) for a logo and parameter set."""

# Kept to syntax every Python 3 parses, so an old interpreter gets this message rather
# than a SyntaxError from a submodule. The check is the only work done at import.
import sys

__version__ = "0.1.0"

MIN_PYTHON = (3, 10)


def check_python(version_info: tuple = sys.version_info, executable: str = sys.executable) -> None:
    """Raise ImportError, saying what to do, on a Python older than ``MIN_PYTHON``."""
    if tuple(version_info[:2]) >= MIN_PYTHON:
        return
    have = ".".join(str(v) for v in version_info[:3])
    raise ImportError(
        f"svg-quality needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer; this is Python "
        f"{have} ({executable}). Create a virtual environment with Python 3.10, 3.11 or 3.12 "
        "and install into it: python3.11 -m venv .venv && . .venv/bin/activate && "
        'pip install -r requirements.lock -e ".[dev]"'
    )


check_python()
