"""The export area: every format loads and matches PyTorch; the stage's report and MLflow run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from svg_quality.config import ModelConfig
from svg_quality.model import InputSpec, QualityMLP, load_model, model_meta
from svg_quality.paramspace import PARAM_NAMES
from svg_quality.serving.graphs import (
    MLPForExport,
    candidate_scorer,
    end_to_end,
    rebuild_backbone,
)
from svg_quality.serving.parity import ParityCase, check_parity
from svg_quality.serving.runtime import FILES, ort_session
from svg_quality.serving.writers import load_torchscript, write_formats
from tests.export_fixtures import repo_ranges

RANGES = repo_ranges()
FEAT_DIM, N_STATS = 16, 5


class TinyBackbone(nn.Module):
    """Stands in for ResNet-50 in the fast tests: image [B, 3, 224, 224] -> [B, 16]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, FEAT_DIM, 7, stride=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).relu().mean(dim=(2, 3))


def tiny(
    inputs: str, seed: int = 0, pca: int = 0, emb: str = "none"
) -> tuple[QualityMLP, InputSpec]:
    """A small MLP with real BatchNorm statistics for ``inputs``; with ``pca``, its ResNet
    block projected to ``pca`` components fitted on 40 feature rows (model.resnet_pca);
    ``emb``: model.embedding (periodic: 3 frequencies, 4 dims per column)."""
    uses_stats = inputs != "resnet"
    spec = InputSpec(
        inputs=inputs,
        resnet_dim=FEAT_DIM,
        stat_names=tuple(f"s{i}" for i in range(N_STATS)),
        stats_mean=tuple(np.linspace(1, 2, N_STATS)) if uses_stats else (),
        stats_std=tuple(np.linspace(0.5, 3, N_STATS)) if uses_stats else (),
        ranges=RANGES,
    )
    torch.manual_seed(seed)
    mlp = QualityMLP(
        spec.width,
        (32, 16),
        (0.3, 0.1),
        input_dropout=0.1,
        resnet_width=spec.resnet_width,
        resnet_pca=pca,
        resnet_dropout=0.2 if pca else 0.0,
        **EMB[emb],
    )
    if mlp.resnet is not None:
        rng = np.random.default_rng(seed)
        mlp.resnet.fit(np.abs(rng.normal(size=(40, FEAT_DIM))) * rng.uniform(0.05, 0.5, FEAT_DIM))
    with torch.no_grad():
        mlp.train()
        for _ in range(10):
            mlp(torch.randn(64, spec.width) * 1.5 + 0.3)
    return mlp.eval(), spec


def raw_inputs(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo = np.array([RANGES[p][0] for p in PARAM_NAMES])
    hi = np.array([RANGES[p][1] for p in PARAM_NAMES])
    return {
        "image": rng.normal(size=(n, 3, 224, 224)).astype(np.float32),
        "params": (lo + rng.random((n, 8)) * (hi - lo)).astype(np.float32),
        "stats": (rng.normal(size=(n, N_STATS)) * 2 + 1.5).astype(np.float32),
    }


def meta_for(spec: InputSpec) -> dict[str, Any]:
    return {
        "architecture": {
            "in_features": spec.width,
            "model": {
                "inputs": spec.inputs,
                "hidden": [32, 16],
                "dropout": [0.3, 0.1],
                "input_dropout": 0.1,
            },
        },
        "input": spec.to_meta(),
        "note": "tiny",
    }


EMB: dict[str, dict[str, Any]] = {
    "none": {},
    "periodic": {
        "embedding": "periodic",
        "embedding_frequencies": 3,
        "embedding_dim": 4,
        "embedding_sigma": 0.5,
    },
    "periodic, 2 members": {  # model.members: block-diagonal layers, folded for export
        "embedding": "periodic",
        "embedding_frequencies": 3,
        "embedding_dim": 4,
        "embedding_sigma": 0.5,
        "members": 2,
    },
}


def model_meta_for(spec: InputSpec, pca: int = 0, emb: str = "none") -> dict[str, Any]:
    cfg = ModelConfig(
        inputs=spec.inputs,
        hidden=(32, 16),
        dropout=(0.3, 0.1),
        input_dropout=0.1,
        resnet_pca=pca,
        resnet_dropout=0.2 if pca else 0.0,
        **EMB[emb],
    )
    return model_meta(cfg, spec)


def torch_out(module: nn.Module, *arrays: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        out = module(*[torch.from_numpy(a) for a in arrays])
    return (out[0] if isinstance(out, tuple) else out).reshape(-1).numpy()


@pytest.mark.parametrize(
    ("pca", "emb"), [(0, "none"), (4, "none"), (4, "periodic"), (4, "periodic, 2 members")]
)
def test_mlp_formats_load_and_match(tmp_path: Path, pca: int, emb: str) -> None:
    mlp, spec = tiny("resnet+stats", pca=pca, emb=emb)
    x = np.random.default_rng(0).normal(size=(37, spec.width)).astype(np.float32)
    written = write_formats(
        tmp_path,
        mlp,
        None,
        spec,
        meta_for(spec),
        model_meta=model_meta_for(spec, pca, emb),
        opset=18,
        example_rows=x,
        formats=("state_dict", "torchscript", "onnx_mlp"),
    )
    assert set(written.paths) == {
        "state_dict",
        "torchscript_traced",
        "torchscript_scripted",
        "onnx_mlp",
    }
    ref = torch_out(MLPForExport(mlp), x)

    blob = torch.load(tmp_path / FILES["state_dict"], weights_only=True)  # plain types only
    assert blob["meta"]["export"]["note"] == "tiny" and "net.1.weight" in blob["state_dict"]
    if pca:  # the fixed projection travels as tensors in the file, not in the JSON meta
        assert blob["state_dict"]["resnet.proj"].shape == (FEAT_DIM, pca)
        assert blob["meta"]["model"]["resnet_pca"] == pca
    reloaded, meta = load_model(tmp_path / FILES["state_dict"])  # the model-file format
    assert meta["input"]["layout"] == spec.layout()
    np.testing.assert_array_equal(torch_out(MLPForExport(reloaded), x), ref)

    for key in ("torchscript_traced", "torchscript_scripted"):
        ts = load_torchscript(tmp_path / FILES[key])
        for n in (1, 37):  # traced at batch 4: other batch sizes must work too
            out = ts(torch.from_numpy(x[:n]))
            assert out.shape == (n, 1)
            assert np.abs(out.detach().numpy().reshape(-1) - ref[:n]).max() <= 1e-5, key

    path = tmp_path / FILES["onnx_mlp"]
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["features"]
    assert [o.name for o in model.graph.output] == ["ssim"]
    assert (
        json.loads({p.key: p.value for p in model.metadata_props}["svg_quality"])["note"] == "tiny"
    )
    assert not list(tmp_path.glob("*.data")), "weights must be embedded, no sidecar"
    session = ort_session(path)
    assert session.get_inputs()[0].shape[0] == "batch"
    for n in (1, 37):
        out = session.run(["ssim"], {"features": x[:n]})[0]
        assert out.shape == (n, 1)
        assert np.abs(out.reshape(-1) - ref[:n]).max() <= 1e-5


def test_size_model_file_keeps_the_trained_layout(tmp_path: Path) -> None:
    """The size head's model file holds the module as trained (2 members, a ResNet block),
    not the graphs' plain fold of it, so load_model rebuilds it from its meta."""
    from svg_quality.serving.graphs import size_output

    emb = "periodic, 2 members"
    mlp, spec = tiny("resnet+stats", pca=4, emb=emb)
    size_mlp, _ = tiny("resnet+stats", seed=1, pca=4, emb=emb)
    smeta = {**model_meta_for(spec, 4, emb), "size_scale": {"log10_low": 2.0, "log10_high": 5.0}}
    size = size_output(size_mlp, smeta)
    x = np.random.default_rng(0).normal(size=(9, spec.width)).astype(np.float32)
    write_formats(
        tmp_path,
        mlp,
        None,
        spec,
        meta_for(spec),
        model_meta=model_meta_for(spec, 4, emb),
        opset=18,
        example_rows=x,
        formats=("state_dict",),
        size=size,
        size_meta=smeta,
    )
    back = size_output(*load_model(tmp_path / FILES["size_state_dict"]))
    assert back.trained().members == 2 and back.trained().resnet is not None
    with torch.no_grad():
        torch.testing.assert_close(back(torch.from_numpy(x)), size(torch.from_numpy(x)))


@pytest.mark.parametrize(
    ("inputs", "pca", "emb"),
    [
        ("resnet", 0, "none"),
        ("resnet+stats", 0, "none"),
        ("stats", 0, "none"),
        ("resnet+stats", 4, "none"),
        ("resnet+stats", 4, "periodic"),  # kept ResNet and embedded stats / params
        ("stats", 0, "periodic, 2 members"),
    ],
)
def test_e2e_and_candidates_onnx_match_the_two_step_path(
    tmp_path: Path, inputs: str, pca: int, emb: str
) -> None:
    # With pca the two-step reference is the trained module (projection, then MLP) on
    # training-style rows; the graphs hold it folded into their first Linear. With a
    # periodic embedding the candidate graph embeds the per-logo and per-candidate
    # columns apart (its split first Linear).
    mlp, spec = tiny(inputs, pca=pca, emb=emb)
    backbone = TinyBackbone().eval()
    write_formats(
        tmp_path,
        mlp,
        backbone,
        spec,
        meta_for(spec),
        model_meta=model_meta_for(spec, pca, emb),
        opset=18,
        example_rows=np.zeros((4, spec.width), np.float32),
        formats=("onnx_e2e", "onnx_candidates"),
    )
    raw = raw_inputs(6)
    with torch.inference_mode():
        feats = backbone(torch.from_numpy(raw["image"])).numpy()  # [6, 16]
    rows = spec.assemble(
        feats if spec.uses_resnet else None,
        raw["stats"] if spec.uses_stats else None,
        raw["params"],
    )
    two_step = torch_out(mlp, rows)

    e2e = ort_session(tmp_path / FILES["onnx_e2e"])
    names = [i.name for i in e2e.get_inputs()]
    expected = (
        (["image"] if spec.uses_resnet else [])
        + ["params"]
        + (["stats"] if spec.uses_stats else [])
    )
    assert names == expected
    for n in (1, 6):
        outs = e2e.run(None, {k: raw[k][:n] for k in names})
        assert outs[0].shape == (n, 1)
        assert np.abs(outs[0].reshape(-1) - two_step[:n]).max() <= 1e-5
        if spec.uses_resnet:  # the image features come out too, for one-pass suggestions
            assert np.abs(outs[1] - feats[:n]).max() <= 1e-5
    # The torch module is the same function.
    args = [raw[k] for k in names]
    assert np.abs(torch_out(end_to_end(backbone, mlp, spec), *args) - two_step).max() <= 1e-5

    # Candidates: one logo's image part, many parameter sets.
    cand = ort_session(tmp_path / FILES["onnx_candidates"])
    one = {"image_features": feats[:1], "stats": raw["stats"][:1], "params": raw["params"]}
    rows1 = spec.assemble(
        np.repeat(feats[:1], 6, 0) if spec.uses_resnet else None,
        np.repeat(raw["stats"][:1], 6, 0) if spec.uses_stats else None,
        raw["params"],
    )
    want = torch_out(mlp, rows1)
    cand_names = [i.name for i in cand.get_inputs()]  # the torch forward's argument order
    got = cand.run(["ssim"], {k: one[k] for k in cand_names})[0]
    assert got.shape == (6, 1)
    assert np.abs(got.reshape(-1) - want).max() <= 1e-5
    scorer = candidate_scorer(mlp, spec)
    assert np.abs(torch_out(scorer, *[one[k] for k in cand_names]) - want).max() <= 1e-5


def test_check_parity_names_the_failing_format() -> None:
    ok = ParityCase("onnx_mlp", "onnxruntime", 1e-5, {1: 1e-7, 64: 2e-7})
    bad = ParityCase("onnx_e2e", "onnxruntime", 1e-4, {1: 1e-5, 8: 3e-3})
    check_parity([ok])
    with pytest.raises(RuntimeError, match=r"onnx_e2e \(onnxruntime\): 3\.00e-03 > 1e-04"):
        check_parity([ok, bad])


def test_rebuild_backbone_refuses_other_weights() -> None:
    from svg_quality.backbone import load_backbone

    _, info = load_backbone("random", seed=3)
    _model, used = rebuild_backbone(info.to_dict())
    assert used["digest"] == info.digest
    with pytest.raises(ValueError, match="not the ones featurize used"):
        rebuild_backbone({**info.to_dict(), "seed": 4})
    with pytest.raises(ValueError, match="unknown"):
        rebuild_backbone({"used": "mystery"})


# --------------------------------------------------------------------------- the stage


@pytest.fixture(scope="session")
def stage_outputs(export_pipeline: dict[str, Path]) -> dict[str, Path]:
    return export_pipeline


@pytest.mark.slow
def test_stage_writes_verified_formats_and_report(stage_outputs: dict[str, Path]) -> None:
    out = stage_outputs["out"]
    report = json.loads((out / FILES["report"]).read_text())
    meta = json.loads((out / FILES["metadata"]).read_text())
    formats = {
        "state_dict",
        "torchscript_traced",
        "torchscript_scripted",
        "onnx_mlp",
        "onnx_e2e",
        "onnx_candidates",
    }
    assert set(report["files"]) == formats == set(report["parity"])
    for name, p in report["parity"].items():
        assert p["passed"] and p["max_abs_diff"] <= p["tolerance"], name
        assert set(p["by_batch"]) >= {"1"} and len(p["by_batch"]) == 2, name
    assert report["parity"]["onnx_e2e"]["tolerance"] == 1e-4
    assert report["parity"]["onnx_mlp"]["tolerance"] == 1e-5
    # ResNet-50 is embedded: one ~100 MB file, no external-data sidecar.
    assert report["files"]["onnx_e2e"]["bytes"] > 90e6 and not list(out.glob("*.data"))
    assert report["checks"]["preprocess_numpy_vs_torch_max_abs"] <= 1e-6
    assert report["checks"]["features_vs_featurize_max_abs"] <= 1e-3

    lat = report["latency"]
    assert set(lat["mlp"]) == {
        "torch_eager",
        "torchscript_traced",
        "torchscript_scripted",
        "onnxruntime",
    }
    assert all(set(v) == {"1", "256"} for v in lat["mlp"].values())
    assert set(lat["e2e"]) == {"torch_eager", "onnxruntime"} and set(lat["candidates"]) == set(
        lat["e2e"]
    )
    assert lat["mlp"]["onnxruntime"]["1"]["p95_ms"] >= lat["mlp"]["onnxruntime"]["1"]["p50_ms"] > 0

    sv = report["suggest_validation"]
    assert sv["logos"] == 2 and sv["failed"] == 0 and sv["candidates"] == 65
    assert 0 <= sv["mean_ssim_default"] <= 1 and 0 <= sv["share_improved"] <= 1
    assert sv["mean_uplift"] == pytest.approx(sv["mean_ssim_suggested"] - sv["mean_ssim_default"])
    assert (out / FILES["suggestions"]).read_text().count("\n") == 3

    # Self-describing: layout, ranges, weights, preprocessing, versions, provenance.
    assert meta["input"]["inputs"] == "resnet+stats" and meta["input"]["width"] == 2048 + 17 + 8
    assert [s["name"] for s in meta["input"]["layout"]] == ["resnet", "stats", "params"]
    assert meta["backbone"]["weights"]["used"] == "random"
    assert meta["preprocessing"]["name"] == "letterbox" and meta["logo"]["image_size"] == 96
    assert {"torch", "onnx", "onnxruntime"} <= set(meta["libraries"])
    assert [i["name"] for i in meta["signatures"]["e2e"]["inputs"]] == ["image", "params", "stats"]
    assert meta["metrics"]["test"]["n"] == 8
    card = (out / FILES["card"]).read_text()
    assert "RANDOM weights" in card and "quality_e2e.onnx" in card


@pytest.mark.slow
def test_stage_logs_into_the_training_run(stage_outputs: dict[str, Path]) -> None:
    import mlflow

    from tests.export_fixtures import env_and_cwd

    root = stage_outputs["out"].parent
    run_id = json.loads(stage_outputs["run"].read_text())["run_id"]
    with env_and_cwd(root):
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        client = mlflow.MlflowClient()
        run = client.get_run(run_id)
        artifacts = {a.path for a in client.list_artifacts(run_id, "export")}
        versions = client.search_model_versions("name = 'svg-quality'")
        logged = mlflow.search_logged_models(
            filter_string=f"source_run_id = '{run_id}'", output_format="list"
        )
        info = mlflow.models.get_model_info(logged[0].model_uri) if logged else None
    metrics = run.data.metrics
    assert metrics["export/parity/onnx_e2e/max_abs_diff"] <= 1e-4
    assert "export/latency/mlp/onnxruntime/b1/p50_ms" in metrics
    assert "export/suggest/mean_uplift" in metrics
    assert f"export/{FILES['onnx_e2e']}" in artifacts and f"export/{FILES['card']}" in artifacts
    assert len(versions) == 1 and versions[0].run_id == run_id
    registry = json.loads((stage_outputs["out"] / "registry.json").read_text())
    assert registry["registered"] and registry["version"] == str(versions[0].version)
    assert [m.name for m in logged] == ["quality_mlp_onnx"]
    assert "onnx" in info.flavors and info.saved_input_example_info is not None
    assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 2048 + 17 + 8)


@pytest.mark.parametrize("inputs", ["resnet", "resnet+stats", "stats"])
def test_input_spec_owns_every_graph_interface(inputs: str) -> None:
    _, spec = tiny(inputs)
    resnet, stats = spec.uses_resnet, spec.uses_stats
    assert spec.input_names("mlp") == ["features"]
    assert spec.input_names("e2e") == (["image"] if resnet else []) + ["params"] + (
        ["stats"] if stats else []
    )
    assert spec.input_names("candidates") == (["image_features"] if resnet else []) + ["params"] + (
        ["stats"] if stats else []
    )
    assert spec.output_names("e2e") == ["ssim"] + (["image_features"] if resnet else [])
    # Per-logo blocks go into the candidates model once; the parameter sets are batched.
    shapes = {p.name: p.shape for p in spec.graph_inputs("candidates")}
    assert shapes["params"] == ("batch", 8)
    assert all(s[0] == 1 for n, s in shapes.items() if n != "params")
    sig = spec.signatures(None, None)
    assert [i["name"] for i in sig["e2e"]["inputs"]] == spec.input_names("e2e")
    assert sig["mlp"]["inputs"][0]["shape"] == ["batch", spec.width]
    with pytest.raises(ValueError, match="graph 'nope' is unknown"):
        spec.graph_inputs("nope")
    # The columns split the first layer exactly: per-logo then per-candidate.
    assert spec.columns(per_logo=True) + spec.columns(per_logo=False) == list(range(spec.width))
