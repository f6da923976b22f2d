"""Tiny real upstream outputs for the export and predictor tests (the session fixture
``export_pipeline`` in conftest builds them once).

Real synthetic logos, real ResNet-50 features (random weights, as featurize records
them), label rows in the pipeline's format, a real (untrained, BN statistics warmed)
model file and an MLflow run in a sqlite file; then the real export stage on them.
The stage exports ResNet-50 to ONNX once (~20 s on 2 cores); every test that needs an
export directory shares that one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from tests.conftest import load_stage

REPO_ROOT = Path(__file__).resolve().parents[1]


def repo_ranges() -> dict[str, tuple[float, float]]:
    """``vtracer.ranges`` from the repo's params.yaml (the real config, not a copy)."""
    with (REPO_ROOT / "params.yaml").open() as fh:
        raw = yaml.safe_load(fh)["vtracer"]["ranges"]
    return {name: (lo, hi) for name, (lo, hi) in raw.items()}


@contextlib.contextmanager
def env_and_cwd(root: Path) -> Iterator[None]:
    """MLflow into ``root`` (sqlite + artifacts), whatever the caller's environment."""
    old_cwd, old_uri = os.getcwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri


def write_upstream(root: Path, raw_params: dict[str, Any], inputs: str) -> dict[str, Path]:
    """logos/, logos.csv, features/, labels.parquet, model.pt, run.json, params.yaml."""
    from PIL import Image

    from svg_quality import synthetic, tracking, vtables
    from svg_quality.backbone import load_backbone, preprocess
    from svg_quality.config import LOGO_TYPES, parse_params
    from svg_quality.dataset import build_arrays, load_labeled, make_input_spec
    from svg_quality.features import fingerprints, write_outputs
    from svg_quality.images import normalize, png_bytes
    from svg_quality.io import image_id_for
    from svg_quality.logostats import compute_stats
    from svg_quality.model import build_model, model_meta, save_model
    from svg_quality.paramspace import sample_params
    from svg_quality.trainer import per_image

    # resnet_pca 2: the few train images here project the ResNet block like params.yaml's
    # 8 does on the default data, so the export and predictor tests serve a projected block
    raw_params = {
        **raw_params,
        "model": {**raw_params["model"], "inputs": inputs, "probe": False, "resnet_pca": 2},
    }
    # Smaller than conftest.shrink: the end-to-end timings run ResNet-50 in eager torch.
    raw_params["export"] = {
        **raw_params["export"],
        "e2e_batch": 2,
        "e2e_repeats": 1,
        "latency_repeats": 5,
        "suggest_candidates": 64,
    }
    params = parse_params(raw_params)
    paths = {
        "params": root / "params.yaml",
        "logos_dir": root / "logos",
        "logos_csv": root / "logos.csv",
        "features": root / "features",
        "labels": root / "labels.parquet",
        "model": root / "model.pt",
        "run": root / "run.json",
        "out": root / "export",
        "gates": root / "gates.json",
    }
    paths["params"].write_text(yaml.safe_dump(raw_params))
    # validate's gates.json, passing, so the stage registers the model
    paths["gates"].write_text(
        '{"passed": true, "gates": {"pearson": {"passed": true, "value": 0.95, "threshold": 0.9}}}'
    )
    paths["logos_dir"].mkdir(parents=True)
    logos, splits = [], ["train", "val", "test"]
    for t in LOGO_TYPES:
        for i in range(2):
            im = normalize(synthetic.generate(t, 0, i, 128), params.data.image_size)
            data = png_bytes(im)
            iid = image_id_for(data)
            (paths["logos_dir"] / f"{iid}.png").write_bytes(data)
            split = "test" if i == 1 and t in ("simple", "text") else splits[i]
            logos.append(
                {
                    "image_id": iid,
                    "path": f"{iid}.png",
                    "logo_type": t,
                    "source": "synthetic",
                    "width": im.width,
                    "height": im.height,
                    "split": split,
                }
            )
    pd.DataFrame(logos).to_csv(paths["logos_csv"], index=False)

    trunk, info = load_backbone("random", seed=params.features.seed)
    rgbs = [
        np.asarray(Image.open(paths["logos_dir"] / f"{r['image_id']}.png").convert("RGB"))
        for r in logos
    ]
    with torch.inference_mode():
        feats = trunk(torch.stack([preprocess(Image.fromarray(r)) for r in rgbs])).numpy()
    stats = np.stack([compute_stats(r) for r in rgbs])
    tables = np.stack([vtables.compute_tables(r) for r in rgbs])
    ids = [r["image_id"] for r in logos]
    write_outputs(paths["features"], ids, feats, stats, info, fingerprints(info), tables=tables)

    rng = np.random.default_rng(0)
    rows = []
    for r in logos:
        for p in sample_params(r["image_id"], 4, params.vtracer.ranges, seed=0):
            rows.append(
                {
                    "image_id": r["image_id"],
                    "logo_type": r["logo_type"],
                    **p,
                    "ssim": float(rng.uniform(0.6, 1.0)),
                    "svg_bytes": 1000,
                    "n_paths": 5,
                    "convert_ms": 1.0,
                    "render_ms": 1.0,
                    "status": "ok",
                    "error": "",
                }
            )
    pd.DataFrame(rows).to_parquet(paths["labels"])

    data = load_labeled(paths["labels"], paths["features"], paths["logos_csv"])
    spec = make_input_spec(data, inputs, params.vtracer.ranges)
    torch.manual_seed(0)
    model = build_model(params.model, spec.width, spec.resnet_width)
    if model.resnet is not None:  # fitted on the train images, as trainer.fit does
        model.resnet.fit(per_image(build_arrays(data, spec, data.mask("train")), spec.resnet_width))
    x = torch.from_numpy(build_arrays(data, spec).x)
    with torch.no_grad():  # BatchNorm statistics of real rows: outputs away from 0 and 1
        model.train()
        for _ in range(20):
            model(x)
    meta = model_meta(
        params.model,
        spec,
        {"features": data.feature_meta, "data": {}, "train": {}, "best_epoch": 1},
    )
    save_model(paths["model"], model.eval(), meta)

    # The size head beside it: same inputs, its own (untrained, BN-warmed) MLP and scale.
    from svg_quality.sizehead import SizeScale, size_meta, svg_bytes_of

    torch.manual_seed(1)
    size = build_model(params.model, spec.width, spec.resnet_width)
    if size.resnet is not None:
        size.resnet.load_state_dict(model.resnet.state_dict())
    with torch.no_grad():
        size.train()
        for _ in range(20):
            size(x)
    paths["size_model"] = root / "size_model.pt"
    scale = SizeScale.fit(svg_bytes_of(data, data.mask("train")))
    save_model(paths["size_model"], size.eval(), size_meta(meta, scale))

    import mlflow

    tracking.setup(params.tracking)
    with mlflow.start_run(run_name="train-test") as run:
        tracking.write_run_json(paths["run"], run, os.environ["MLFLOW_TRACKING_URI"])
    return paths


def exported(
    root: Path, raw_params: dict[str, Any], inputs: str = "resnet+stats", size_head: bool = False
) -> dict[str, Path]:
    """Build the upstream outputs under ``root`` and run the export stage on them
    (``conftest.export_pipeline`` calls this once per session); ``size_head`` exports
    the size head too."""
    root.mkdir(parents=True, exist_ok=True)
    with env_and_cwd(root):
        paths = write_upstream(root, raw_params, inputs)
        load_stage("export").main(
            [
                "--params",
                str(paths["params"]),
                "--model",
                str(paths["model"]),
                "--run",
                str(paths["run"]),
                "--features",
                str(paths["features"]),
                "--labels",
                str(paths["labels"]),
                "--logos-csv",
                str(paths["logos_csv"]),
                "--logos-dir",
                str(paths["logos_dir"]),
                "--out",
                str(paths["out"]),
                "--gates",
                str(paths["gates"]),
                *(["--size-model", str(paths["size_model"])] if size_head else []),
            ]
        )
    return paths
