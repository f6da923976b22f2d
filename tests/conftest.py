"""Shared test fixtures: the real params.yaml, shrunk (tiny data, CPU, few steps)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_stage(name: str) -> Any:
    """Import ``stages/<name>.py`` (stage scripts are not a package) to call its ``main``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"{name}_stage", REPO_ROOT / "stages" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


VTRACER_INPUTS = "stats+vtracer+probe"


def load_repo_params() -> dict[str, Any]:
    with (REPO_ROOT / "params.yaml").open() as fh:
        return yaml.safe_load(fh)


def shrink(raw: dict[str, Any]) -> dict[str, Any]:
    """The real config, made tiny: a few logos per type, few samples, few epochs."""
    p = copy.deepcopy(raw)
    p["data"]["per_type"] = 4
    # synthetic only: real artwork goes through prepare, labels and validate in
    # tests/test_artwork_data.py, at a size these fixtures can afford
    p["data"]["sources"] = ["synthetic"]
    p["data"]["image_size"] = 96
    # one logo per type (its train share) also at twice the view: the size input end to end
    p["data"]["sizes"] = [192]
    p["data"]["size_share"] = 0.5
    p["label"]["samples_per_size"] = 3
    p["label"]["samples_per_image"] = 3
    p["label"]["workers"] = 2
    p["features"]["weights"] = "random"
    p["features"]["batch_size"] = 8
    p["features"]["num_workers"] = 0
    p["train"]["epochs"] = 3
    p["train"]["lr"] = 0.001  # fixed here so sweep tests never coincide with the repo default
    p["train"]["batch_size"] = 32
    p["train"]["device"] = "cpu"
    p["validate"]["cv_folds"] = 2
    p["validate"]["cv_epochs"] = 2
    p["validate"]["min_type_examples"] = 2
    p["export"]["latency_repeats"] = 5
    p["export"]["suggest_candidates"] = 64
    return p


@pytest.fixture
def repo_params() -> dict[str, Any]:
    return load_repo_params()


@pytest.fixture
def tiny_params() -> dict[str, Any]:
    return shrink(load_repo_params())


@pytest.fixture(scope="session")
def export_pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny real upstream outputs and the real export stage on them, built once per session
    (``resnet+stats``: every graph, ResNet-50 included) and shared by the export and
    predictor tests."""
    from tests.export_fixtures import exported

    return exported(tmp_path_factory.mktemp("export_pipeline"), shrink(load_repo_params()))


@pytest.fixture(scope="session")
def vtracer_export(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same, for a ``stats+vtracer+probe`` model with its size head, labelled at the
    view and at twice its long side like the default pipeline (``data.sizes``: the size
    input): the VTracer-aware inputs served end to end (real tables, the probe's conversion
    at inference); shared by the serving and convert tests."""
    from tests.export_fixtures import exported

    root = tmp_path_factory.mktemp("vtracer_export")
    raw = shrink(load_repo_params())
    return exported(
        root, raw, inputs=VTRACER_INPUTS, size_head=True, sizes=(2 * raw["data"]["image_size"],)
    )


@pytest.fixture
def sqlite_tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """MLFLOW_TRACKING_URI pointed at a fresh SQLite store in this test's tmp_path."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
