"""Learning curve: does the MLP want more logos, or more labelled sets per logo?

    python bench/learning_curve.py                      # the default run's data, 2 seeds
    python bench/learning_curve.py --logos 0.25 0.5 1 --samples 4 8 16 --seeds 0 1 2
    python bench/learning_curve.py --smoke     # seconds: a tiny labelled project, 2 epochs

The train split is thinned two ways, with the val and test splits untouched:

* ``logos``: a seeded share of the train *images* (every labelled set of each kept image);
* ``samples``: every train image, but only its first N labelled sets (sample 0 is
  VTracer's defaults; the rest alternate the global and local designs, see
  ``paramspace.sample_params``), so a row budget can be spent on either axis.

Each point trains the MLP with params.yaml's model/train settings (``model.inputs``
resolved as the pipeline does; early stopping on val) and reports val r / RMSE and the
within-logo Spearman. Choose on val; the test split is not reported. The last line is
the RMSE ratio of the smallest to the full training set (how much the data buys).
``--smoke`` builds a tiny labelled project (``bench/smokedata``) in a temporary directory
and trains 2 epochs per point: ``--logos 0.5 1 --samples 2 --seeds 0``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchjson import Record
from svg_quality.config import Params, load_params
from svg_quality.dataset import LabeledData, load_labeled, split_arrays
from svg_quality.metrics import ranking_metrics
from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS
from svg_quality.trainer import fit, predict


def thinned(data: LabeledData, logos: float, samples: int, seed: int) -> LabeledData:
    """``data`` with the train split cut to a share of its images and N sets per image."""
    rows = data.rows
    train = rows["split"] == "train"
    images = np.sort(rows.loc[train, "image_id"].unique())
    keep = np.random.default_rng(seed).permutation(images)[: max(1, round(logos * len(images)))]
    drop = train & ~rows["image_id"].isin(keep)
    if samples:  # labels.parquet is sorted by (image_id, sample): the first N ok sets
        drop |= train & (rows.groupby("image_id").cumcount() >= samples)
    return dataclasses.replace(data, rows=rows.loc[~drop].reset_index(drop=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--logos", nargs="+", type=float, default=[0.25, 0.5, 1.0])
    ap.add_argument("--samples", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--json", type=Path, default=None, help="write the record here (benchjson)")
    ap.add_argument("--epochs", type=int, default=0, help="override train.epochs (0: keep)")
    ap.add_argument("--smoke", action="store_true", help="seconds: a tiny project, 2 epochs")
    args = ap.parse_args()
    record = Record(Path(__file__).stem)
    if args.smoke:
        args.logos, args.samples, args.seeds = [0.5, 1.0], [2], [0]
        args.epochs = args.epochs or 2

    from smokedata import data_dir

    params = load_params(args.root / "params.yaml")
    with data_dir(args.root, args.smoke, "learning-curve-") as data:
        run(args, params, data, record)


def run(args: argparse.Namespace, params: Params, d: Path, record: Record) -> None:
    """Every point and seed on the project data in ``d``; the table and the ratio line."""
    import pandas as pd

    data = load_labeled(d / "labels.parquet", d / "features", d / "logos.csv")
    points = [(f, 0) for f in args.logos] + [(1.0, n) for n in args.samples]
    results = []
    for logos, samples in points:
        for seed in args.seeds:
            t0 = time.perf_counter()
            sub = thinned(data, logos, samples, seed)
            spec, arrays = split_arrays(sub, params.model.requested_inputs, params.vtracer.ranges)
            cfg = dataclasses.replace(params.train, seed=seed, resume=False)
            if args.epochs:
                cfg = dataclasses.replace(
                    cfg, epochs=args.epochs, warmup_epochs=min(2, args.epochs)
                )
            res = fit(
                arrays["train"],
                arrays["val"],
                params.model,
                cfg,
                progress=False,
                resnet_width=spec.resnet_width,
            )
            val = arrays["val"]
            pred = predict(res.model, val.x)
            rows = sub.rows.loc[sub.mask("val"), ["image_id", *PARAM_NAMES]].reset_index(drop=True)
            rank = ranking_metrics(
                pd.concat([rows, pd.DataFrame({"actual": val.y, "predicted": pred})], axis=1),
                VTRACER_DEFAULTS,
            )
            out = {
                "logos": logos,
                "samples": samples or "all",
                "seed": seed,
                "inputs": spec.inputs,
                "train_images": int(sub.rows.loc[sub.mask("train"), "image_id"].nunique()),
                "train_rows": len(arrays["train"]),
                "val_r": float(np.corrcoef(val.y, pred)[0, 1]),
                "val_rmse": float(np.sqrt(np.mean((val.y - pred) ** 2))),
                "val_spearman": rank["spearman_mean"],
                "best_epoch": res.best_epoch,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            results.append(out)
            print(json.dumps(out), flush=True)

    print("\n| train images | sets per image | train rows | val r | val RMSE | val Spearman |")
    print("|---|---|---|---|---|---|")
    rows = []
    for logos, samples in points:
        pts = [r for r in results if r["logos"] == logos and r["samples"] == (samples or "all")]
        mean = {k: float(np.mean([p[k] for p in pts])) for k in ("val_r", "val_rmse")}
        row = {
            "train_images": pts[0]["train_images"],
            "sets_per_image": samples or "all",
            "train_rows": pts[0]["train_rows"],
            **mean,
            "val_rmse_half_spread": float(np.ptp([p["val_rmse"] for p in pts]) / 2),
            "val_spearman": float(np.mean([p["val_spearman"] for p in pts])),
        }
        rows.append(row)
        print(
            f"| {row['train_images']} | {row['sets_per_image']} | {row['train_rows']} | "
            f"{row['val_r']:.3f} | {row['val_rmse']:.4f} (±{row['val_rmse_half_spread']:.4f}) | "
            f"{row['val_spearman']:.3f} |"
        )
    full = np.mean([r["val_rmse"] for r in results if r["logos"] == 1.0 and r["samples"] == "all"])
    small = np.mean([r["val_rmse"] for r in results if r["logos"] == min(args.logos)])
    label = f"val RMSE at {min(args.logos):g} of the train logos / at all of them"
    if args.json:
        title = f"mean over seeds {args.seeds} (± half the RMSE spread)"
        record.write(args.json, {title: rows}, small / full, label, points=results)
    print(f"\n{label}: {small / full:.2f}x")


if __name__ == "__main__":
    main()
