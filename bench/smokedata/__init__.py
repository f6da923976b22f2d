"""A tiny labelled project for the benchmarks' ``--smoke`` runs (input_ablation,
learning_curve, artwork_curve): the pipeline's data layout in seconds, no ``dvc repro`` needed.

A package, not a module, so ``make bench`` (which runs every ``bench/*.py``) skips it.

    <root>/data/logos/<image_id>.png   synthetic logos (svg_quality.synthetic), normalized
    <root>/data/logos.csv              image_id, logo_type, split (train/val/test in turn);
                                       with ``artwork``, also real icons and an origin column
    <root>/data/labels.parquet         real labels: the label stage's own label_dataset
    <root>/data/features/              the real logo statistics and VTracer tables; random
                                       stand-ins for the ResNet-50 features

The ResNet-50 block is random because a random-init trunk's features carry no signal
either (the default data's ``auto`` inputs leave them out) and running the trunk would
cost more than the rest of a smoke run together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from svg_quality.backbone import FEATURE_DIM, WeightsInfo
from svg_quality.config import LOGO_TYPES, Params, load_params
from svg_quality.dataset import SPLITS
from svg_quality.features import fingerprints, write_outputs
from svg_quality.images import normalize, png_bytes
from svg_quality.io import image_id_for
from svg_quality.labeling import label_dataset
from svg_quality.logostats import compute_stats
from svg_quality.synthetic import generate
from svg_quality.vtables import compute_tables


def tiny_project(
    root: Path,
    params: Params,
    per_type: int = 3,
    samples: int = 6,
    size: int = 96,
    artwork: int = 0,
) -> Path:
    """Write a labelled project of ``per_type`` logos per logo type (``size`` px, logo
    ``i`` of each type in split ``i % 3``), ``samples`` parameter sets each, under
    ``root``; return its data directory (``root / "data"``).

    ``artwork`` > 0 adds that many real icons of the first ``data.artwork`` set (vendored,
    no network; icon ``i`` in split ``i % 3``) and an ``origin`` column (``synthetic`` |
    ``artwork``); 0 leaves logos.csv as it was before ``data.sources``, without the column.
    """
    data = root / "data"
    logos_dir = data / "logos"
    logos_dir.mkdir(parents=True)
    jobs = [
        (t, i, "synthetic", normalize(generate(t, params.data.seed, i, size), size))
        for t in LOGO_TYPES
        for i in range(per_type)
    ]
    if artwork:  # real icons, rendered as prepare renders them (resvg, on white)
        from PIL import Image

        from svg_quality.artwork import render_rgb
        from svg_quality.prepare import artwork_icons

        icons = artwork_icons(params.data.artwork[0], artwork, params.data.seed)
        jobs += [
            (t, i, "artwork", normalize(Image.fromarray(render_rgb(icon, size), "RGB"), size))
            for i, (icon, t) in enumerate(icons)
        ]
    rows, rgbs = [], []
    for t, i, origin, im in jobs:
        png = png_bytes(im)
        image_id = image_id_for(png)
        (logos_dir / f"{image_id}.png").write_bytes(png)
        rows.append(
            {
                "image_id": image_id,
                "path": f"{image_id}.png",
                "logo_type": t,
                "source": origin,
                "width": im.width,
                "height": im.height,
                "split": SPLITS[i % len(SPLITS)],
                **({"origin": origin} if artwork else {}),
            }
        )
        rgbs.append(np.asarray(im))  # [H, W, 3] uint8
    logos = pd.DataFrame(rows)
    logos.to_csv(data / "logos.csv", index=False)

    label_cfg = dataclasses.replace(params.label, samples_per_image=samples, workers=1)
    labels, _ = label_dataset(
        logos, logos_dir, root / "label_work", params.vtracer, label_cfg, progress=False
    )
    labels.to_parquet(data / "labels.parquet", index=False)

    features = np.abs(np.random.default_rng(0).standard_normal((len(rgbs), FEATURE_DIM)))
    info = WeightsInfo("random", "random", "smoke: random stand-ins, no trunk", "smoke", 0)
    write_outputs(
        data / "features",
        list(logos["image_id"]),
        features,  # [n, 2048], ReLU-pooled-like
        np.stack([compute_stats(rgb) for rgb in rgbs]),  # [n, k]
        info,
        fingerprints(info),
        tables=np.stack([compute_tables(rgb) for rgb in rgbs]),  # [n, TABLE_WIDTH]
    )
    return data


@contextlib.contextmanager
def data_dir(root: Path, smoke: bool, prefix: str, artwork: int = 0) -> Iterator[Path]:
    """The data folder a benchmark reads: ``root/data`` (a pipeline run's), or with
    ``smoke`` a tiny labelled project built in a temporary folder for the block's length
    (``artwork``: real icons added, :func:`tiny_project`).
    Sets torch to 2 threads unless ``OMP_NUM_THREADS`` says otherwise."""
    import tempfile

    import torch

    if "OMP_NUM_THREADS" not in os.environ:  # else as the caller set it
        torch.set_num_threads(2)
    if not smoke:
        yield root / "data"
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield tiny_project(Path(tmp), load_params(root / "params.yaml"), artwork=artwork)
