"""Tiny real upstream outputs for the export and predictor tests (the session fixtures
``export_pipeline`` and ``vtracer_export`` in conftest build them once each).

Real synthetic logos, real ResNet-50 features (random weights, as featurize records
them), real labels (VTracer conversions scored by the label contract, in the pipeline's
format), an SSIM model and a size head trained on them by the real trainer (a few
seconds: ``FIXTURE_TRAIN``), and an MLflow run in a sqlite file; then the real export
stage on them. Trained, so the suggestion tests can fail: an untrained model predicted
SSIM 0.483-0.494 for every set, and "never worse than the defaults" passed by keeping
them (issue #30; tests/test_trained_fixture.py checks the model follows the parameters).
The stage exports ResNet-50 to ONNX once (~20 s on 2 cores); every test that needs an
export directory shares that one.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
# Real conversions per logo (the label stage's design, prefix-stable): 16 for the train
# and val logos the model learns from, 4 for the test logos, whose rows the export's
# metrics and their tests count (test_export: 2 logos x 4). ~0.6 s for all.
LABEL_SETS = {"train": 16, "val": 16, "test": 4}
# The real trainer, shortened: one batch per epoch (the 4 train logos' 64 rows) at a rate
# that learns in 30 steps; early stopping off (the val logos are 2, one far outside the
# train SSIMs). Both heads ~1.5 s on one thread: held-out RMSE 0.09, within-logo r 0.8.
FIXTURE_TRAIN = {"epochs": 30, "batch_size": 64, "lr": 0.003, "warmup_epochs": 1, "patience": 0}


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


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread inside: these small batches gain nothing from a second, and on 2
    busy cores two OpenMP threads spin against the load (the fixture's fit took 8-11 s
    with two, 0.3 s with one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def label_rows(
    logos: list[dict[str, Any]], logos_dir: Path, params: Any, sizes: tuple[int, ...] = ()
) -> list[dict[str, Any]]:
    """Real label rows: each logo converted with ``LABEL_SETS[split]`` parameter sets of the
    label stage's design (VTracer's defaults first), rendered and scored by the label contract,
    in process (the label stage's sandboxes add nothing these tests look at). With ``sizes``,
    each logo is also converted at those long sides (``logos_dir/<S>/<id>.png``), with the
    same sets in the view's frame scaled for VTracer (``paramspace.scale_params``), as the
    label stage does."""
    from PIL import Image

    from svg_quality.paramspace import sample_params, scale_params
    from svg_quality.ssim import SSIMReference
    from svg_quality.vectorize import score

    out = []
    view = params.data.image_size
    for r in logos:
        sets = sample_params(
            r["image_id"],
            LABEL_SETS[r["split"]],
            params.vtracer.ranges,
            params.label.seed,
            local_box=params.label.local_box,
            local_share=params.label.local_share,
        )
        for size in (view, *sizes):
            path = logos_dir / r["path"] if size == view else logos_dir / str(size) / r["path"]
            png = path.read_bytes()
            rgb = np.asarray(Image.open(path).convert("RGB"))
            ref = SSIMReference(rgb)
            for p in sets:
                vp = scale_params(p, size / view) if size != view else p
                s = score(rgb, vp, params.vtracer, png_bytes=png, reference=ref)
                out.append(_row(r, size, p, s))
    return out


def _row(logo: dict[str, Any], size: int, p: dict[str, float], s: Any) -> dict[str, Any]:
    return {
        "image_id": logo["image_id"],
        "logo_type": logo["logo_type"],
        "size": size,
        **p,
        "ssim": s.ssim,
        "svg_bytes": s.svg_bytes,
        "n_paths": s.n_paths,
        "convert_ms": s.convert_ms,
        "render_ms": s.render_ms,
        "status": "ok",
        "error": "",
    }


def write_upstream(
    root: Path,
    raw_params: dict[str, Any],
    inputs: str,
    size_head: bool = True,
    sizes: tuple[int, ...] = (),
) -> dict[str, Path]:
    """logos/, logos.csv, features/, labels.parquet (real conversions), model.pt and, with
    ``size_head``, size_model.pt (both trained), run.json, params.yaml. With ``sizes``,
    every logo is also drawn and labelled at those long sides (the model's size input)."""
    from PIL import Image

    from svg_quality import synthetic, tracking, vtables
    from svg_quality.backbone import load_backbone, preprocess
    from svg_quality.config import LOGO_TYPES, parse_params
    from svg_quality.dataset import data_summary, load_labeled, split_arrays
    from svg_quality.features import fingerprints, write_outputs
    from svg_quality.images import normalize, png_bytes
    from svg_quality.io import image_id_for
    from svg_quality.logostats import compute_stats
    from svg_quality.model import model_meta, save_model
    from svg_quality.sizehead import size_meta, train_size_head
    from svg_quality.trainer import fit

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
    raw_params["train"] = {**raw_params["train"], **FIXTURE_TRAIN}
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
            for size in sizes:  # drawn at that size, as prepare does
                big = normalize(synthetic.generate(t, 0, i, size), size)
                (paths["logos_dir"] / str(size)).mkdir(exist_ok=True)
                (paths["logos_dir"] / str(size) / f"{iid}.png").write_bytes(png_bytes(big))
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

    rows = label_rows(logos, paths["logos_dir"], params, sizes)
    pd.DataFrame(rows).to_parquet(paths["labels"])

    # The real trainer on those labels, both heads, shortened (FIXTURE_TRAIN): a model
    # whose predictions follow the parameters, so suggest's tests can fail.
    data = load_labeled(
        paths["labels"], paths["features"], paths["logos_csv"], probe=params.model.uses_probe
    )
    spec, arrays = split_arrays(data, inputs, params.vtracer.ranges)
    with one_thread():
        res = fit(
            arrays["train"],
            arrays["val"],
            params.model,
            params.train,
            progress=False,
            resnet_width=spec.resnet_width,
        )
    meta = model_meta(
        params.model,
        spec,
        {
            "features": data.feature_meta,
            "data": data_summary(data),
            "train": dataclasses.asdict(params.train),
            "best_epoch": res.best_epoch,
        },
    )
    save_model(paths["model"], res.model, meta)

    # The size head beside it, trained the way the train stage trains it.
    if size_head:
        with one_thread():
            size, scale = train_size_head(data, spec, params.model, params.train, progress=False)
        paths["size_model"] = root / "size_model.pt"
        size_file_meta = {**size_meta(meta, scale), "best_epoch": size.best_epoch}
        save_model(paths["size_model"], size.model, size_file_meta)

    import mlflow

    tracking.setup(params.tracking)
    with mlflow.start_run(run_name="train-test") as run:
        tracking.write_run_json(paths["run"], run, os.environ["MLFLOW_TRACKING_URI"])
    return paths


def exported(
    root: Path,
    raw_params: dict[str, Any],
    inputs: str = "resnet+stats",
    size_head: bool = False,
    sizes: tuple[int, ...] = (),
) -> dict[str, Path]:
    """Build the upstream outputs under ``root`` and run the export stage on them
    (``conftest.export_pipeline`` calls this once per session); ``size_head`` exports
    the size head too; ``sizes``: labels also at those long sides (a size input)."""
    root.mkdir(parents=True, exist_ok=True)
    with env_and_cwd(root):
        paths = write_upstream(root, raw_params, inputs, size_head, sizes)
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
