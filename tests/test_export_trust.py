"""An edited export is refused, not served (issue #30, rows 5 and 6): metadata.json is
checked as strictly as params.yaml (file names, digests, ranges) and each ONNX graph
against its recorded signature and its self-test. The real CLI on copies of a tiny real
export (symlinks to the shared files; only what a test edits is replaced)."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from svg_quality import synthetic
from svg_quality.cli import main
from svg_quality.io import file_digest
from svg_quality.paramspace import shown
from svg_quality.serving.predictor import Predictor

FIX = "re-export with `dvc repro export`"
CANDIDATES = "quality_candidates.onnx"


@pytest.fixture(scope="module")
def export_dir(vtracer_export: dict[str, Path]) -> Path:
    return vtracer_export["out"]  # stats+vtracer+probe with the size head


@pytest.fixture
def logo(tmp_path: Path) -> str:
    path = tmp_path / "logo.png"
    synthetic.generate("simple", 2, 0, 64).save(path)
    return str(path)


def copy_of(export_dir: Path, dest: Path, edit: Callable[[dict], None] | None = None) -> Path:
    """The export as symlinks, metadata.json a real copy, edited by ``edit``."""
    dest.mkdir()
    for f in export_dir.iterdir():
        (dest / f.name).symlink_to(f)
    meta = json.loads((export_dir / "metadata.json").read_text())
    if edit is not None:
        edit(meta)
    (dest / "metadata.json").unlink()
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


def put(model: Path, name: str, data: bytes) -> None:
    """Replace the export's file ``name`` and record its digest, as an attacker would."""
    (model / name).unlink()
    (model / name).write_bytes(data)
    meta = json.loads((model / "metadata.json").read_text())
    meta["sha256"][name] = file_digest(model / name)
    (model / "metadata.json").write_text(json.dumps(meta))


def refused(capsys: pytest.CaptureFixture, argv: list[str], *parts: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for part in parts:
        assert part in err, err
    return err


# --------------------------------------------------------------------------- row 5: metadata


def test_a_file_name_outside_the_export_folder_is_refused(
    export_dir: Path, tmp_path: Path, logo: str, capsys: pytest.CaptureFixture
) -> None:
    """Before the fix the file outside was loaded and served (its digest recorded)."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(export_dir / CANDIDATES, outside / "x.onnx")
    digest = file_digest(outside / "x.onnx")
    for i, name in enumerate(["../elsewhere/x.onnx", str(outside / "x.onnx")]):

        def edit(meta: dict, name: str = name) -> None:
            meta["files"]["onnx_candidates"] = name
            meta["sha256"]["x.onnx"] = digest

        model = copy_of(export_dir, tmp_path / f"export{i}", edit)
        argv = ["suggest", logo, "--model", str(model), "--candidates", "16"]
        refused(
            capsys,
            argv,
            # shown(): the message cuts a long path (pytest's temp folders vary in length)
            f"{model / 'metadata.json'}: files.onnx_candidates = {shown(name)} is invalid; "
            "allowed: "
            "a plain file name inside the export folder",
            FIX,
        )


def test_a_widened_range_is_refused_not_served(
    export_dir: Path, tmp_path: Path, logo: str, capsys: pytest.CaptureFixture
) -> None:
    """color_precision 9 wraps around in VTracer; an edited bound 8 -> 9 let it through."""

    def edit(meta: dict) -> None:
        meta["param_ranges"]["color_precision"] = [1.0, 9.0]
        meta["input"]["ranges"]["color_precision"] = [1.0, 9.0]

    model = copy_of(export_dir, tmp_path / "export", edit)
    refused(
        capsys,
        ["predict", logo, "--model", str(model), "--param", "color_precision=9"],
        "param_ranges.color_precision = [1.0, 9.0] is outside what VTracer accepts; allowed: "
        "within [1, 8]",
        FIX,
    )


def test_a_deleted_digest_is_refused_not_skipped(
    export_dir: Path, tmp_path: Path, logo: str, capsys: pytest.CaptureFixture
) -> None:
    model = copy_of(export_dir, tmp_path / "export", lambda m: m["sha256"].pop(CANDIDATES))
    refused(
        capsys,
        ["suggest", logo, "--model", str(model), "--candidates", "16"],
        f"sha256 records no SHA-256 for {CANDIDATES!r} (files.onnx_candidates)",
        FIX,
    )


# --------------------------------------------------------------------------- row 6: the graphs


def other_layout() -> bytes:
    """A graph with the candidates model's input names but another width of ``stats``."""
    from onnx import TensorProto, helper

    def port(name: str, shape: list) -> object:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    inputs = [port("params", ["batch", 8]), port("stats", [1, 18])]
    inputs += [port("vtracer", ["batch", 13]), port("probe", [1, 2]), port("long_side", [1, 1])]
    outputs = [port("ssim", ["batch", 1]), port("log10_svg_bytes", ["batch", 1])]
    nodes = [
        helper.make_node("ReduceMean", ["params"], ["ssim"], keepdims=1, axes=[1]),
        helper.make_node("ReduceMean", ["vtracer"], ["log10_svg_bytes"], keepdims=1, axes=[1]),
    ]
    graph = helper.make_graph(nodes, "other", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def wrong_maths(export_dir: Path) -> bytes:
    """The real candidates graph, its SSIM head's last bias shifted: same signature."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(export_dir / CANDIDATES))
    biases = [t for t in model.graph.initializer if t.name.startswith("ssim.") and t.dims == [1]]
    assert biases, [t.name for t in model.graph.initializer]
    t = biases[-1]
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) - np.float32(8.0), t.name))
    return model.SerializeToString()


def test_an_onnx_file_of_another_layout_is_one_line_naming_it(
    export_dir: Path, tmp_path: Path, logo: str, capsys: pytest.CaptureFixture
) -> None:
    """Before the fix: an onnxruntime InvalidArgument traceback."""
    model = copy_of(export_dir, tmp_path / "export")
    put(model, CANDIDATES, other_layout())
    refused(
        capsys,
        ["suggest", logo, "--model", str(model), "--candidates", "16"],
        f"{model / CANDIDATES}: input 'stats' is tensor(float) [1, 18], but metadata.json "
        "records float32 [1, 17] (a model of another layout)",
        FIX,
    )
    names = copy_of(export_dir, tmp_path / "export2")
    put(names, CANDIDATES, (export_dir / "quality_mlp.onnx").read_bytes())
    refused(
        capsys,
        ["suggest", logo, "--model", str(names), "--candidates", "16"],
        f"{names / CANDIDATES}: takes inputs ['features'], but metadata.json records",
        FIX,
    )


def test_a_graph_with_the_right_signature_and_wrong_maths_fails_its_self_test(
    export_dir: Path, tmp_path: Path, logo: str, capsys: pytest.CaptureFixture
) -> None:
    """Before the fix it served SSIM 0.0003 for every parameter set."""
    model = copy_of(export_dir, tmp_path / "export")
    put(model, CANDIDATES, wrong_maths(export_dir))
    err = refused(
        capsys,
        ["suggest", logo, "--model", str(model), "--candidates", "16"],
        f"{model / CANDIDATES}: fails its self-test (candidates graph): ssim is ",
        FIX,
    )
    assert "allowed difference 0.001" in err
    # convert checks the export before it creates OUT: no empty journal left behind
    out = tmp_path / "svgs"
    logos = Path(logo).parent
    refused(capsys, ["convert", str(logos), "-o", str(out), "--model", str(model)], "self-test")
    assert not out.exists()
    # the torch runtime serves the model files, not the ONNX graphs: it still works
    assert main(["predict", logo, "--model", str(model), "--runtime", "torch"]) == 0


def test_an_export_without_a_self_test_loads_with_a_one_line_warning(
    export_dir: Path, tmp_path: Path, logo: str, capsys: pytest.CaptureFixture
) -> None:
    model = copy_of(export_dir, tmp_path / "export", lambda m: m.pop("self_test"))
    with pytest.warns(UserWarning, match="records no self-test"):
        Predictor.load(model)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["predict", logo, "--model", str(model)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"svg-quality: warning: {model}: this export records no self-test")
    assert err.count("\n") == 1 and FIX in err
