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


# --------------------------------------------------------------------------- with an export
# These share the session's real export (tests/export_fixtures.py: ResNet-50 to ONNX once).
# Each test works on a copy made of symlinks, replacing only the file it damages.


@pytest.fixture(scope="module")
def export_dir(export_pipeline: dict[str, Path]) -> Path:
    return export_pipeline["out"]


def export_copy(export_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in export_dir.iterdir():
        (dest / f.name).symlink_to(f)
    return dest


def replace(path: Path, data: bytes) -> None:
    path.unlink()  # the symlink, not the shared file
    path.write_bytes(data)


def a_logo(tmp_path: Path, size: int = 64) -> str:

    from svg_quality import synthetic

    path = tmp_path / f"logo{size}.png"
    synthetic.generate("simple", 0, 0, size).convert("RGB").resize((size, size)).save(path)
    return str(path)


@pytest.mark.slow
def test_predict_refuses_an_image_prepare_would_reject_as_too_small(export_dir, tmp_path):
    from PIL import Image

    tiny = tmp_path / "one.png"
    Image.new("RGB", (1, 1), "red").save(tiny)
    refused(svg_quality("predict", str(tiny), "--model", str(export_dir)), str(tiny), "1x1")


@pytest.mark.slow
def test_predict_and_suggest_warn_when_the_model_missed_its_gates(export_dir, tmp_path):
    import json

    from svg_quality.tracking import gate_failures

    model = export_copy(export_dir, tmp_path / "export")
    gates = {  # validate's gates.json for a model that missed two gates
        "passed": False,
        "gates": {
            "rmse": {"passed": False, "value": 0.09, "threshold": 0.05},
            "pearson": {"passed": True, "value": 0.93, "threshold": 0.9},
            "type_pearson/text": {"passed": False, "value": 0.7, "threshold": 0.85},
        },
    }
    registry = {"registered": False, "name": "svg-quality", "reasons": gate_failures(gates)}
    replace(model / "registry.json", json.dumps(registry).encode())
    logo = a_logo(tmp_path)
    for command in (["predict", logo], ["suggest", logo, "--candidates", "16"]):
        res = svg_quality(*command, "--model", str(model))
        assert res.returncode == 0, res.stderr
        assert "predicted SSIM" in res.stdout
        assert "warning: this model missed its readiness gates: rmse, type_pearson/text" in (
            res.stderr
        )
    res = svg_quality("predict", logo, "--model", str(export_dir))  # gates passed: no warning
    assert res.returncode == 0 and "warning" not in res.stderr, res.stderr


FIX = ("dvc repro export", "dvc pull")  # each load failure names both ways back


@pytest.mark.slow
@pytest.mark.parametrize("digests", [True, False], ids=["digests", "no-digests"])
@pytest.mark.parametrize(
    ("key", "command", "runtime"),
    [
        ("onnx_e2e", "predict", "onnx"),
        ("onnx_candidates", "suggest", "onnx"),
        ("state_dict", "predict", "torch"),
    ],
)
def test_a_truncated_export_file_is_one_line_naming_it(
    export_dir, tmp_path, key, command, runtime, digests
):
    """Caught by the recorded SHA-256; an export without digests is refused as such."""
    import json

    model = export_copy(export_dir, tmp_path / "export")
    meta = json.loads((export_dir / "metadata.json").read_text())
    if not digests:
        del meta["sha256"]
        replace(model / "metadata.json", json.dumps(meta).encode())
    name = meta["files"][key]
    data = (export_dir / name).read_bytes()
    replace(model / name, data[: len(data) // 2])
    args = [command, a_logo(tmp_path), "--model", str(model), "--runtime", runtime]
    if command == "suggest":
        args += ["--candidates", "16"]
    if not digests:  # the check is never silently off (issue #30)
        refused(svg_quality(*args), str(model / "metadata.json"), "records no SHA-256", *FIX)
        return
    refused(svg_quality(*args), str(model / name), "SHA-256", *FIX)


@pytest.mark.slow
def test_a_changed_export_file_fails_its_recorded_digest(export_dir, tmp_path):
    import json

    meta = json.loads((export_dir / "metadata.json").read_text())
    name = meta["files"]["onnx_candidates"]
    for fname in meta["files"].values():  # every export file's SHA-256 is recorded
        if fname != "metadata.json":
            assert len(meta["sha256"][fname]) == 64, fname
    model = export_copy(export_dir, tmp_path / "export")
    data = bytearray((export_dir / name).read_bytes())
    data[-1] ^= 0xFF  # same size, one byte changed
    replace(model / name, bytes(data))
    res = svg_quality("suggest", a_logo(tmp_path), "--model", str(model), "--candidates", "16")
    refused(res, str(model / name), "SHA-256", *FIX)


@pytest.mark.slow
@pytest.mark.parametrize("text", ["{not json", "[]"], ids=["syntax", "not-a-mapping"])
def test_a_broken_metadata_json_is_one_line_naming_it(export_dir, tmp_path, text):
    model = export_copy(export_dir, tmp_path / "export")
    replace(model / "metadata.json", text.encode())
    res = svg_quality("predict", a_logo(tmp_path), "--model", str(model))
    refused(res, str(model / "metadata.json"), *FIX)


def test_a_vtracer_panic_is_a_user_error_not_a_traceback(repo_params) -> None:
    """`suggest --verify` converts for real; a panic (a BaseException) must reach the CLI's
    one-line report. No in-range parameter set is known to panic VTracer, so the panic is
    provoked with color_precision=0 (what params.yaml refuses) and handed to the CLI."""
    import argparse
    import io

    import numpy as np
    import vtracer
    from PIL import Image

    from svg_quality import cli
    from svg_quality.config import parse_params
    from svg_quality.paramspace import VTRACER_DEFAULTS
    from svg_quality.vectorize import score, vtracer_kwargs

    cfg = parse_params(repo_params).vtracer
    rgb = np.full((32, 32, 3), 255, np.uint8)
    rgb[8:24, 8:24] = (200, 30, 30)
    params = {**VTRACER_DEFAULTS, "color_precision": 0}
    args = argparse.Namespace(logo="logo.png")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    try:
        vtracer.convert_raw_image_to_svg(
            buf.getvalue(), img_format="png", **vtracer_kwargs(params, cfg)
        )
    except BaseException as exc:  # the raw PanicException itself
        assert not isinstance(exc, Exception)  # why catching Exception is not enough
        message = cli._user_error(args, exc)
        assert message and message.startswith("logo.png: VTracer could not convert it")
    else:
        pytest.fail("color_precision=0 no longer panics VTracer")
    with pytest.raises(BaseException) as info:  # what --verify's score() raises
        score(rgb, params, cfg)
    message = cli._user_error(args, info.value)
    assert message and "VTracer could not convert it" in message and "panicked" in message
