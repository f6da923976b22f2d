"""Input-group ablation: the MLP (and HistGBR on the same rows) with each input group on/off.

    python bench/input_ablation.py                                 # the default configs
    python bench/input_ablation.py --configs stats auto auto+probe --seeds 0 1
    python bench/input_ablation.py --real /tmp/real-project         # + a labelled real folder
    python bench/input_ablation.py --cv 5                          # + grouped CV (slow)
    python bench/input_ablation.py --smoke     # seconds: a tiny labelled project, 2 configs

A config is a ``model.inputs`` request, optionally ``@<input_dropout>`` and
``,key=value`` overrides of ``model.resnet_pca`` (``pca``) and ``model.resnet_dropout``
(``rdrop``), e.g. ``resnet+stats+vtracer@0.5`` or ``resnet+stats+vtracer,pca=32,rdrop=0.3``
(without them a config takes params.yaml's values). Each is trained on the pipeline's train split with params.yaml's
model/train settings (early stopping on val) and scored on val, test and, with
``--real``, every row of another project's labels (a folder run through prepare, label
and featurize: ``<dir>/data/{labels.parquet,features,logos.csv}``), standardized with
the synthetic train split's statistics. Beside r / RMSE it reports the within-logo
ranking that ``suggest`` needs: mean Spearman over logos of predicted vs true SSIM,
top-1 regret (true SSIM of the best labelled set minus that of the set ranked first)
and the share of logos whose top-ranked set beats VTracer's defaults; the same Spearman and
regret over each logo's sets inside ``label.local_box`` (where ``suggest`` picks: close
sets, the hard part of the ranking).
The test split is reported, never used to choose: choose on val / CV / the real folder.
The last line is the val RMSE of the first config over that of the best one (seeds
averaged): what the best inputs buy. ``--smoke`` builds a tiny labelled project
(``bench/smokedata``: 3 logos per type, 6 sets each) in a temporary directory and trains
2 epochs of ``stats`` and ``stats+vtracer+probe`` on it, unless other configs are given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchjson import Record
from svg_quality.config import ModelConfig, Params, load_params
from svg_quality.crossval import cross_validate
from svg_quality.dataset import build_arrays, load_labeled, split_arrays
from svg_quality.metrics import in_box
from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS
from svg_quality.trainer import fit, predict
from svg_quality.validation import SSIM_HEAD

DEFAULT_CONFIGS = ("stats", "vtracer", "stats+vtracer", "stats+vtracer+probe", "stats+probe")
SMOKE_CONFIGS = ("stats", "stats+vtracer+probe")


def ranking(image_id: np.ndarray, y: np.ndarray, pred: np.ndarray, is_default: np.ndarray):
    """Mean within-logo Spearman, mean top-1 regret, share of logos whose pick beats defaults."""
    from scipy.stats import spearmanr

    rhos, regrets, beats = [], [], []
    for i in np.unique(image_id):
        m = image_id == i
        yt, yp = y[m], pred[m]
        if m.sum() < 3:
            continue
        if np.ptp(yt) > 0 and np.ptp(yp) > 0:
            rhos.append(spearmanr(yt, yp).statistic)
        pick = int(np.argmax(yp))
        regrets.append(float(yt.max() - yt[pick]))
        d = is_default[m]
        if d.any():
            beats.append(float(yt[pick] > yt[d][0] + 1e-9))
    return float(np.mean(rhos)), float(np.mean(regrets)), float(np.mean(beats)) if beats else None


def defaults_mask(rows) -> np.ndarray:
    m = np.ones(len(rows), dtype=bool)
    for n in PARAM_NAMES:
        m &= np.isclose(rows[n].to_numpy(dtype=np.float64), VTRACER_DEFAULTS[n])
    return m


def scores(
    y: np.ndarray, pred: np.ndarray, image_id: np.ndarray, rows, box: dict | None = None
) -> dict[str, float]:
    """r, RMSE and the within-logo ranking; with ``box`` also the ranking of each logo's
    sets inside it (``spearman_in_box``, ``box_regret``)."""
    rho, regret, beats = ranking(image_id, y, pred, defaults_mask(rows))
    extra = {}
    if box:
        m = in_box(rows, box)
        rho_b, regret_b, _ = ranking(image_id[m], y[m], pred[m], defaults_mask(rows)[m])
        extra = {"spearman_in_box": rho_b, "box_regret": regret_b}
    return {
        **extra,
        "r": float(np.corrcoef(y, pred)[0, 1]),
        "rmse": float(np.sqrt(np.mean((y - pred) ** 2))),
        "spearman_in_logo": rho,
        "top1_regret": regret,
        "beats_defaults": beats,
    }


def _floats(value: str) -> tuple[float, ...]:
    return tuple(float(v) for v in value.split("-"))


def _ints(value: str) -> tuple[int, ...]:
    return tuple(int(v) for v in value.split("-"))


OVERRIDES = {
    "pca": ("resnet_pca", int),
    "rdrop": ("resnet_dropout", float),
    "hidden": ("hidden", _ints),  # hidden=512-256
    "dropout": ("dropout", _floats),  # dropout=0.1-0.0, one per hidden layer
    "emb": ("embedding", str),  # emb=none | emb=periodic
    "sigma": ("embedding_sigma", float),
    "edim": ("embedding_dim", int),
    "members": ("members", lambda v: v if v == "auto" else int(v)),  # model.members
}
TRAIN_OVERRIDES = {  # train.* overrides: lw=1.0 (logo_weight), rw=0.3 (rank_weight), rt=0.03
    "lw": ("logo_weight", float),
    "rw": ("rank_weight", float),
    "rt": ("rank_tau", float),
}


def train_overrides(config: str) -> dict[str, Any]:
    """The ``train.*`` overrides of ``config`` (its ``lw=``, ``rw=``, ``rt=`` pairs)."""
    out: dict[str, Any] = {}
    for pair in config.split(",")[1:]:
        key, _, value = pair.partition("=")
        if key in TRAIN_OVERRIDES:
            name, kind = TRAIN_OVERRIDES[key]
            out[name] = kind(value)
    return out


def parse_config(config: str, base: ModelConfig) -> ModelConfig:
    """``inputs[@input_dropout][,pca=N][,rdrop=P][,hidden=A-B][,dropout=P-Q][,emb=E]
    [,sigma=S][,edim=D][,members=K|auto]`` as a model config over ``base`` (a changed
    ``hidden`` needs a ``dropout`` of the same length; ``hidden`` is the members' total)."""
    head, *pairs = config.split(",")
    inputs, _, drop = head.partition("@")
    kw: dict[str, Any] = {"inputs": inputs, "probe": False, "input_dropout": float(drop or 0)}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key in TRAIN_OVERRIDES:
            continue
        if key not in OVERRIDES or not value:
            allowed = ", ".join([*OVERRIDES, *TRAIN_OVERRIDES])
            raise SystemExit(f"config {config!r}: {pair!r} is not one of {allowed}")
        name, kind = OVERRIDES[key]
        kw[name] = kind(value)
    return dataclasses.replace(base, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument(
        "--configs", nargs="+", default=None, help="default: " + " ".join(DEFAULT_CONFIGS)
    )
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--real", type=Path, default=None, help="a labelled real-logo project dir")
    ap.add_argument("--epochs", type=int, default=0, help="override train.epochs (0: keep)")
    ap.add_argument("--cv", type=int, default=0, help="grouped CV folds (0: none)")
    ap.add_argument("--no-hgb", action="store_true", help="skip HistGBR on the same inputs")
    ap.add_argument("--json", type=Path, default=None, help="write the record here (benchjson)")
    ap.add_argument("--smoke", action="store_true", help="seconds: a tiny project, 2 epochs")
    args = ap.parse_args()
    record = Record(Path(__file__).stem)
    if args.configs is None:
        args.configs = list(SMOKE_CONFIGS if args.smoke else DEFAULT_CONFIGS)
    if args.smoke:
        args.epochs = args.epochs or 2

    from smokedata import data_dir

    params = load_params(args.root / "params.yaml")
    with data_dir(args.root, args.smoke, "input-ablation-") as data:
        results = run(args, params, data)
    table_and_ratio(args, results, record)


def run(args: argparse.Namespace, params: Params, d: Path) -> list[dict[str, Any]]:
    """Train and score every config and seed on the project data in ``d``; print each
    result as a JSON line and return them."""
    # probe=True for every config: all of them see the same logos (those with a probe)
    data = load_labeled(d / "labels.parquet", d / "features", d / "logos.csv", probe=True)
    real = None
    if args.real is not None:
        r = args.real / "data"
        real = load_labeled(r / "labels.parquet", r / "features", r / "logos.csv", probe=True)
    ranges = params.vtracer.ranges
    box = {n: tuple(v) for n, v in params.label.local_box.items()}
    results = []
    for config in args.configs:
        model_cfg = parse_config(config, params.model)
        inputs = model_cfg.inputs
        preds: dict[str, list[np.ndarray]] = {}  # set -> one prediction per seed
        for seed in args.seeds:
            t0 = time.perf_counter()
            train_cfg = dataclasses.replace(
                params.train, seed=seed, resume=False, **train_overrides(config)
            )
            if args.epochs:
                train_cfg = dataclasses.replace(
                    train_cfg, epochs=args.epochs, warmup_epochs=min(2, args.epochs)
                )
            spec, arrays = split_arrays(data, inputs, ranges)
            res = fit(
                arrays["train"],
                arrays["val"],
                model_cfg,
                train_cfg,
                progress=False,
                resnet_width=spec.resnet_width,
            )
            out = {"config": config, "inputs": spec.inputs, "width": spec.width, "seed": seed}
            out["n_parameters"] = sum(p.numel() for p in res.model.parameters())
            sets = {s: (arrays[s], data.rows[data.mask(s)]) for s in ("val", "test")}
            if real is not None:
                sets["real"] = (build_arrays(real, spec), real.rows)
            for name, (a, rows) in sets.items():
                preds.setdefault(name, []).append(predict(res.model, a.x))
                out[name] = scores(a.y, preds[name][-1], a.image_id, rows, box)
            if not args.no_hgb and seed == args.seeds[0]:
                from sklearn.ensemble import HistGradientBoostingRegressor

                keep = slice(spec.resnet_dim if spec.uses_resnet else 0, None)  # no ResNet
                hgb = HistGradientBoostingRegressor(random_state=0)
                hgb.fit(arrays["train"].x[:, keep], arrays["train"].y)
                for name, (a, rows) in sets.items():
                    p = np.clip(hgb.predict(a.x[:, keep]), 0, 1)
                    out[f"hgb_{name}"] = scores(a.y, p, a.image_id, rows, box)
            if args.cv:
                vcfg = dataclasses.replace(params.validate, cv_folds=args.cv, seed=seed)
                cv = cross_validate(
                    data, SSIM_HEAD, model_cfg, train_cfg, vcfg, ranges, progress=False
                )
                out["cv"] = {
                    "r": cv["summary"]["pearson_mean"],
                    "rmse": cv["summary"]["rmse_mean"],
                    "rmse_std": cv["summary"]["rmse_std"],
                }
            out["best_epoch"] = res.best_epoch
            out["seconds"] = round(time.perf_counter() - t0, 1)
            results.append(out)
            print(json.dumps(out), flush=True)
        if len(args.seeds) > 1:  # the seeds' mean prediction: an ensemble of them
            ens: dict[str, Any] = {"config": config, "inputs": inputs, "seed": "mean"}
            for name, (a, rows) in sets.items():
                ens[name] = scores(a.y, np.mean(preds[name], axis=0), a.image_id, rows, box)
            results.append(ens)
            print(json.dumps(ens), flush=True)
    return results


def table_and_ratio(
    args: argparse.Namespace, results: list[dict[str, Any]], record: Record
) -> None:
    cols = ["val", "test", "real", "cv", "hgb_test", "hgb_real"]
    print("\n| config | seed | " + " | ".join(c for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for out in results:
        cells = []
        for c in cols:
            m = out.get(c)
            if m is None:
                cells.append("")
                continue
            cell = f"{m['r']:.3f} / {m['rmse']:.4f}"
            if "spearman_in_logo" in m:
                cell += f" · ρ {m['spearman_in_logo']:.2f} · reg {m['top1_regret']:.4f}"
            if "spearman_in_box" in m:
                cell += f" · box ρ {m['spearman_in_box']:.2f} · reg {m['box_regret']:.4f}"
            cells.append(cell)
        print(f"| {out['config']} | {out['seed']} | " + " | ".join(cells) + " |")
    val_rmse = {
        c: np.mean([r["val"]["rmse"] for r in results if r["config"] == c and r["seed"] != "mean"])
        for c in args.configs
    }
    best = min(val_rmse, key=val_rmse.get)
    first = args.configs[0]
    ratio = val_rmse[first] / val_rmse[best]
    label = f"val RMSE of {first} / of the best config ({best})"
    if args.json:
        rows = [
            {
                "config": out["config"],
                "seed": out["seed"],
                **{f"{c}_{k}": out[c][k] for c in cols if c in out for k in ("r", "rmse")},
            }
            for out in results
        ]
        record.write(args.json, {"r and RMSE per set": rows}, ratio, label, points=results)
    print(f"\n{label}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
