"""Artwork curve: how much real artwork should the default mix train on?

    python bench/artwork_curve.py                         # the default run's data, seed 0
    python bench/artwork_curve.py --real 0 0.5 1 --seeds 0 1 --json curve.json
    python bench/artwork_curve.py --smoke        # seconds: a tiny labelled project, 2 epochs

The default run's data (``data.sources: [synthetic, artwork]``) with the artwork logos
thinned in the train AND val splits, the synthetic ones and the test split untouched:

* ``--real F``: a seeded share F of the artwork images of train and of val (nested: the
  0.25 set lies inside the 0.5 set, inside all of them); F = 0 is synthetic only;
* ``--real-only`` (on by default, off with ``--smoke``): all the artwork, no synthetic.

Each point trains the SSIM head with params.yaml's model/train settings as the train stage
does (``model.inputs`` resolved by ``split_arrays``, early stopping on the thinned val) and
scores it as validate would, through the model's own input spec (``predict_split``): the
test rows by origin (synthetic and artwork apart), and the real-icon folder (``--folder``,
every icon, no split; labelled and featurized once with the stage scripts into
``--folder-work``, resumable). Each gets Pearson r, RMSE and the within-logo ranking
(Spearman, top-1 regret, share beating VTracer's defaults; each logo's sets at one size), at
every size and at the view only (the smallest size, ``data.image_size``). Nothing is chosen
on the folder or the test rows here: the curve only measures. The last line is the folder
RMSE with no artwork over that with the full mix (what the artwork buys on real icons).
``--smoke`` builds a tiny labelled project with a few real icons (``bench/smokedata``),
trains 2 epochs at ``--real 0 1`` and scores its own test split in the folder's place.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchjson import Record
from svg_quality.config import Params, load_params
from svg_quality.dataset import LabeledData, load_labeled, split_arrays
from svg_quality.metrics import RANK_METRIC_NAMES
from svg_quality.validation import per_group_metrics

ARTWORK = "artwork"
REAL_ONLY = "real-only"
FOLDER_SAMPLES = 16  # label.samples_per_image of the folder: as data/labels at the view
SCORES = ("pearson", "rmse", *(f"rank/{k}" for k in RANK_METRIC_NAMES))
SCOPES = (("test", "synthetic"), ("test", ARTWORK), ("folder", "folder"))  # (group, origin)
# the digits of a table column, by the end of its name
DIGITS = (("_r", 3), ("_rmse", 4), ("_spearman", 3), ("_regret", 5), ("_defaults", 3), ("_s", 1))


def with_artwork(data: LabeledData, real: float | str, seed: int) -> LabeledData:
    """``data`` with a seeded share ``real`` of the artwork images kept in train and in val
    (the other origins there untouched), or with ``real-only`` no other origin there; the
    test split as it is. Shares of one seed are nested (prefixes of one permutation)."""
    rows = data.rows
    art = (rows["origin"] == ARTWORK).to_numpy()
    fitted = rows["split"].isin(("train", "val")).to_numpy()
    if real == REAL_ONLY:
        drop = fitted & ~art
    else:
        drop = np.zeros(len(rows), dtype=bool)
        for i, split in enumerate(("train", "val")):
            in_split = art & (rows["split"] == split).to_numpy()
            images = np.sort(rows.loc[in_split, "image_id"].unique())
            keep = np.random.default_rng([seed, i]).permutation(images)
            keep = keep[: round(float(real) * len(images))]
            drop |= in_split & ~rows["image_id"].isin(keep).to_numpy()
    return dataclasses.replace(data, rows=rows.loc[~drop].reset_index(drop=True))


def scores(pred: pd.DataFrame, column: str, view: int) -> dict[str, dict[str, Any]]:
    """Per value of ``column`` of ``pred`` (``predict_split``'s table): every metric and the
    within-logo ranking at every size (``<value>/all``) and at the view (``<value>/view``)."""
    out = {f"{k}/all": m for k, m in per_group_metrics(pred, column).items()}
    at_view = pred[pred["size"] == view]
    if len(at_view):
        out.update({f"{k}/view": m for k, m in per_group_metrics(at_view, column).items()})
    return out


# --------------------------------------------------------------------------- the folder


def folder_params(params_yaml: Path, folder: Path) -> str:
    """params.yaml pointed at ``folder`` alone, at the view only, 16 sets per icon."""
    import yaml

    d = yaml.safe_load(params_yaml.read_text())
    d["data"]["sources"] = [str(folder)]
    d["data"]["sizes"] = []
    d["label"]["samples_per_image"] = FOLDER_SAMPLES
    return yaml.safe_dump(d, sort_keys=False)


def folder_work(root: Path, folder: Path, work: Path) -> Path:
    """Label and featurize ``folder`` with the pipeline's own stage scripts into ``work``
    once (steps whose outputs exist are skipped; label resumes from its shards), every icon
    in the test split; return ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    params = work / "params.yaml"
    text = folder_params(root / "params.yaml", folder)
    if params.is_file() and params.read_text() != text:
        raise ValueError(
            f"{params} differs from params.yaml pointed at {folder}: the cached labels and "
            f"features were made with other settings; delete {work} (or pass another "
            "--folder-work) to rebuild them"
        )
    params.write_text(text)
    logos_csv, logos_dir, reports = work / "logos.csv", work / "logos", work / "reports"
    steps = [
        (
            "prepare",
            reports / "prepare" / "summary.json",
            ["--logos-dir", logos_dir, "--logos-csv", logos_csv, "--reports", reports / "prepare"],
        ),
        (
            "label",
            work / "labels.parquet",
            [
                *("--logos-csv", logos_csv, "--logos-dir", logos_dir),
                *("--out", work / "labels.parquet", "--reports", reports / "label"),
                *("--work-dir", work / "label_work"),
            ],
        ),
        (
            "featurize",
            work / "features" / "meta.json",
            [
                *("--logos-csv", logos_csv, "--logos-dir", logos_dir),
                *("--out", work / "features", "--report", reports / "featurize.json"),
                *("--work-dir", work / "features_work"),
            ],
        ),
    ]
    for stage, done, argv in steps:
        if not done.is_file():
            t0 = time.perf_counter()
            cmd = [sys.executable, str(root / "stages" / f"{stage}.py"), "--params", str(params)]
            subprocess.run([*cmd, *map(str, argv)], cwd=root, check=True)
            print(f"folder {stage}: {time.perf_counter() - t0:.0f} s", flush=True)
        if stage == "prepare":  # every icon is transfer data: no train or val rows
            logos = pd.read_csv(logos_csv, dtype={"image_id": str})
            if (logos["split"] != "test").any():
                logos.assign(split="test").to_csv(logos_csv, index=False)
    return work


def check_same_features(data: LabeledData, folder: LabeledData, where: Path) -> None:
    """The folder's features must come from the same backbone weights, statistics and
    tables as the training data's, or the model reads other columns than it learnt."""
    keys = ("features_fingerprint", "stats_fingerprint", "tables_fingerprint")
    a, b = data.feature_meta, folder.feature_meta
    if differ := [k for k in keys if a.get(k) != b.get(k)]:
        raise ValueError(
            f"{where}/features: {', '.join(differ)} differ from the training data's "
            f"({[b.get(k) for k in differ]} vs {[a.get(k) for k in differ]}); rebuild it with "
            "the same features settings (delete the features folder there)"
        )


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--real", nargs="+", type=float, default=[0.0, 0.25, 0.5, 1.0])
    ap.add_argument(
        "--real-only",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also a point with all the artwork and no synthetic (default: on, off with --smoke)",
    )
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--folder", type=Path, default=Path("/work/real-icons-256"))
    ap.add_argument(
        "--folder-work", type=Path, default=None, help="default /work/curve-work/<folder name>"
    )
    ap.add_argument("--json", type=Path, default=None, help="write the record here (benchjson)")
    ap.add_argument("--epochs", type=int, default=0, help="override train.epochs (0: keep)")
    ap.add_argument("--smoke", action="store_true", help="seconds: a tiny project, 2 epochs")
    args = ap.parse_args()
    record = Record(Path(__file__).stem)
    if args.smoke:
        args.real, args.seeds = [0.0, 1.0], [0]
        args.epochs = args.epochs or 2
    if not all(0.0 <= f <= 1.0 for f in args.real) or not {0.0, 1.0} <= set(args.real):
        raise ValueError(
            f"--real {args.real}: each share must lie in [0, 1], and 0 and 1 must be among "
            "them (the ratio line compares them)"
        )
    if args.real_only is None:
        args.real_only = not args.smoke

    from smokedata import data_dir

    params = load_params(args.root / "params.yaml")
    with data_dir(args.root, args.smoke, "artwork-curve-", artwork=6) as d:
        data = load_labeled(
            d / "labels.parquet",
            d / "features",
            d / "logos.csv",
            probe=params.model.uses_probe,
        )
        if not (data.rows["origin"] == ARTWORK).any():
            raise ValueError(
                f"{d}/logos.csv has no artwork logos (origins: "
                f"{sorted(data.rows['origin'].unique())}); run the pipeline with "
                "data.sources: [synthetic, artwork]"
            )
        if args.smoke:  # no /work paths: the tiny project's own test split stands in
            folder, name = data, "the smoke project's test split (no real-icon folder)"
        else:
            work = args.folder_work or Path("/work/curve-work") / args.folder.name
            folder_work(args.root, args.folder, work)
            folder = load_labeled(
                work / "labels.parquet",
                work / "features",
                work / "logos.csv",
                probe=params.model.uses_probe,
            )
            check_same_features(data, folder, work)
            name = f"{args.folder} (every icon; labels and features in {work})"
        run(args, params, data, folder, name, record)


def run(
    args: argparse.Namespace,
    params: Params,
    data: LabeledData,
    folder: LabeledData,
    name: str,
    record: Record,
) -> None:
    """Every point and seed; the tables, the JSON and the ratio line."""
    from svg_quality.model import model_meta
    from svg_quality.trainer import fit
    from svg_quality.validation import predict_split

    view = data.sizes[0]  # the model's view (data.image_size), the smallest long side
    points: list[float | str] = [*args.real, *([REAL_ONLY] if args.real_only else [])]
    n_folder = folder.rows.loc[folder.mask("test"), "image_id"].nunique()
    print(f"folder: {name}; {n_folder} logos", flush=True)
    if folder.left_out:
        print(f"folder: {len(folder.left_out)} logos left out (no probe)", flush=True)
    results = []
    for real in points:
        for seed in args.seeds:
            t0 = time.perf_counter()
            sub = with_artwork(data, real, seed)
            spec, arrays = split_arrays(sub, params.model.requested_inputs, params.vtracer.ranges)
            meta = model_meta(params.model, spec)
            cfg = dataclasses.replace(params.train, seed=seed, resume=False)
            if args.epochs:
                cfg = dataclasses.replace(
                    cfg, epochs=args.epochs, warmup_epochs=min(cfg.warmup_epochs, args.epochs)
                )
            with tempfile.TemporaryDirectory(prefix="artwork-curve-ckpt-") as ckpt:
                res = fit(
                    arrays["train"],
                    arrays["val"],
                    params.model,
                    cfg,
                    meta=meta,
                    checkpoint_dir=ckpt,
                    progress=False,
                    resnet_width=spec.resnet_width,
                )
            seconds = time.perf_counter() - t0
            test = predict_split(sub, res.model, meta, split="test")
            on_folder = predict_split(folder, res.model, meta, split="test")
            fitted = sub.rows[sub.rows["split"].isin(("train", "val"))]
            logos = fitted.drop_duplicates("image_id").groupby(["split", "origin"]).size()
            out = {
                "real": real,
                "seed": seed,
                "inputs": spec.inputs,
                "logos": {f"{s}/{o}": int(n) for (s, o), n in logos.items()},
                "train_rows": len(arrays["train"]),
                "val_rows": len(arrays["val"]),
                "best_epoch": res.best_epoch,
                "epochs_run": res.epochs_run,
                "train_seconds": round(seconds, 1),
                "test": scores(test, "origin", view),
                "folder": scores(on_folder.assign(origin="folder"), "origin", view),
            }
            results.append(out)
            brief = {
                k: round(out[g][f"{o}/all"]["rmse"], 4)
                for k, g, o in (
                    ("test_synthetic_rmse", "test", "synthetic"),
                    ("test_artwork_rmse", "test", ARTWORK),
                    ("folder_rmse", "folder", "folder"),
                )
                if f"{o}/all" in out[g]
            }
            print(json.dumps({"real": real, "seed": seed, **out["logos"], **brief}), flush=True)

    tables = {title: table_rows(results, points, at) for at, title in titles(results, view)}
    print_tables(tables)
    rmse = {p: mean_of(results, p, "folder", "folder/all", "rmse") for p in (0.0, 1.0)}
    label = "folder RMSE with no artwork in train/val / with all of it"
    if args.json:
        info = {"folder": name, "view": view, "seeds": args.seeds, "smoke": args.smoke}
        record.write(args.json, tables, rmse[0.0] / rmse[1.0], label, **info, points=results)
    print(f"\n{label}: ratio {rmse[0.0] / rmse[1.0]:.3f}x")


def mean_of(results: list[dict], point: float | str, group: str, key: str, metric: str) -> float:
    """The mean of one figure over the seeds of ``point`` (NaN when the scope is empty)."""
    vals = [r[group][key][metric] for r in results if r["real"] == point and key in r[group]]
    return float(np.mean(vals)) if vals else float("nan")


def titles(results: list[dict], view: int) -> list[tuple[str, str]]:
    """(scope, title) of the two tables: every size; the view only."""
    seeds = sorted({r["seed"] for r in results})
    return [
        ("all", f"every size (mean over seeds {seeds})"),
        ("view", f"the view ({view} px) only (mean over seeds {seeds})"),
    ]


def table_rows(results: list[dict], points: list[float | str], at: str) -> list[dict[str, Any]]:
    """One row per point, seeds averaged, at every size (``at="all"``) or the view only."""
    rows = []
    for p in points:
        n = next(r for r in results if r["real"] == p)["logos"]
        row: dict[str, Any] = {
            "point": "real only" if p == REAL_ONLY else f"artwork {p:g}",
            "train_logos_syn/art": f"{n.get('train/synthetic', 0)} / {n.get(f'train/{ARTWORK}', 0)}",
            "val_logos_syn/art": f"{n.get('val/synthetic', 0)} / {n.get(f'val/{ARTWORK}', 0)}",
        }
        for group, origin in SCOPES:
            for metric, column in zip(SCORES[:4], ("r", "rmse", "spearman", "regret"), strict=True):
                row[f"{origin}_{column}"] = mean_of(results, p, group, f"{origin}/{at}", metric)
        row["folder_beats_defaults"] = mean_of(results, p, "folder", f"folder/{at}", SCORES[4])
        row["train_s"] = float(np.mean([r["train_seconds"] for r in results if r["real"] == p]))
        rows.append(row)
    return rows


def print_tables(tables: dict[str, list[dict[str, Any]]]) -> None:
    """The tables as Markdown, each figure at its column's digits."""

    def cell(key: str, v: str | float) -> str:
        if isinstance(v, str):
            return v
        digits = next(d for suffix, d in DIGITS if key.endswith(suffix))
        return "n/a" if not np.isfinite(v) else f"{v:.{digits}f}"

    for title, rows in tables.items():
        print(f"\n### {title}\n")
        head = ["point", "train logos syn / art", "val logos syn / art"]
        for _, origin in SCOPES:
            head += [f"{origin} r", "RMSE", "Spearman", "regret"]
        head += ["folder beats defaults", "train s"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in rows:
            print("| " + " | ".join(cell(k, v) for k, v in row.items()) + " |")


if __name__ == "__main__":
    main()
