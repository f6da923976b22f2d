"""validate's report: flat metrics, report.md, and every file of ``reports/validate/``.

    ValidationResult (SSIM head, size head, extra sets)
      ──> metrics.json, size.json (flat keys, through tracking.flatten_metrics)
      ──> per_type.csv, predictions.csv, cv.json, baselines.json, gates.json
      ──> report.md (the SSIM head's sections, then the size head's) and plots/*.png

Everything is written once, each file atomically, by :func:`write_reports`; the flat
keys returned by :func:`flat_metrics` and :func:`flat_size_metrics` are also what the
stage logs to MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from svg_quality.metrics import METRIC_NAMES, finite_or_none
from svg_quality.tracking import flatten_metrics

if TYPE_CHECKING:
    import pandas as pd

    from svg_quality.config import ValidateConfig
    from svg_quality.validation import ValidationResult

REPORT_FILES = (
    "metrics.json",
    "per_type.csv",
    "cv.json",
    "baselines.json",
    "gates.json",
    "predictions.csv",
    "report.md",
)
SIZE_FILE = "size.json"


# --------------------------------------------------------------------------- flat metrics


def flat_metrics(res: ValidationResult) -> dict[str, Any]:
    """metrics.json's flat keys: ``test/rmse``, ``test/type/text/pearson``, ``cv/...``,
    ``baseline/...``, ``gates/...``, ``convergence/...`` as they are (ints, bools, NaN),
    then the extra sets' ``extra/<set>/...`` (numbers, as floats)."""
    test: dict[str, Any] = dict(res.overall)
    types: dict[str, Any] = {}
    for _, r in res.per_type.iterrows():
        entry: dict[str, Any] = {"n": int(r["n"])}
        if r["status"] == "reported":
            entry.update({m: float(r[m]) for m in METRIC_NAMES})
        types[r["logo_type"]] = entry
    test.update(
        type=types,
        rank=res.ranking,
        rank_box=res.ranking_box,
        size=res.per_size,
        origin=res.per_origin,
    )
    tree: dict[str, Any] = {"test": test}
    if res.cv is not None:
        tree["cv"] = {**res.cv["summary"], "folds": res.cv["n_folds"]}
    b = res.baselines
    baseline: dict[str, Any] = {
        name: {m: entry["metrics"][m] for m in METRIC_NAMES}
        for name, entry in b["baselines"].items()
    }
    baseline["best"] = {m: b["baselines"][b["best"]]["metrics"][m] for m in METRIC_NAMES}
    baseline["mlp_rmse_reduction_pct"] = b["mlp_rmse_reduction_pct"]
    baseline["mlp_beats_best"] = b["mlp_beats_best"]
    tree["baseline"] = baseline
    g = res.gates
    tree["gates"] = {
        "pass": g["passed"],
        "passed": sum(x["passed"] for x in g["gates"].values()),
        "total": len(g["gates"]),
    }
    c = res.convergence
    keys = ("best_epoch", "epochs_run", "overfitting", "val_pearson_std_last", "stable")
    tree["convergence"] = {k: c[k] for k in keys}
    out = flatten_metrics(tree, numbers_only=False)
    out.update(flatten_metrics({"extra": res.extra}))
    return out


def flat_size_metrics(report: Mapping[str, Any]) -> dict[str, Any]:
    """size.json's flat keys: ``size/test/pearson_log10``,
    ``size/test/type/text/median_abs_ratio_err``, ``size/cv/...``."""
    types = {
        t: {k: v for k, v in m.items() if k != "status"} for t, m in report["per_type"].items()
    }
    cv = report["cv"]["summary"] if report.get("cv") else {}
    tree = {"size": {"test": {**report["test"], "type": types}, "cv": cv}}
    return flatten_metrics(tree, numbers_only=False)


# --------------------------------------------------------------------------- report.md


def _f(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if abs(v) and abs(v) < 10 ** (-digits):
        return f"{v:.1e}"
    return f"{v:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def _ranking_lines(res: ValidationResult) -> list[str]:
    """The within-logo ranking section: what ``suggest`` needs (test split, and CV means)."""
    r = res.ranking
    if not r:
        return []
    rows = [
        [
            "test",
            r["logos"],
            _f(r["spearman_mean"]),
            _f(r["regret_mean"], 5),
            _f(r["beats_defaults_share"], 3),
        ]
    ]
    b = res.ranking_box
    if b:
        rows.append(
            [
                "test, sets inside label.local_box",
                b["logos"],
                _f(b["spearman_mean"]),
                _f(b["regret_mean"], 5),
                _f(b["beats_defaults_share"], 3),
            ]
        )
    if res.cv is not None:
        s = res.cv["summary"]
        rows.append(
            [
                f"CV ({res.cv['n_folds']} folds, mean)",
                res.cv["images"],
                _f(s["rank/spearman_mean_mean"]),
                _f(s["rank/regret_mean_mean"], 5),
                _f(s["rank/beats_defaults_share_mean"], 3),
            ]
        )
    return [
        "",
        "## Ranking within a logo",
        "",
        "Per logo, the labelled parameter sets ranked by predicted SSIM: Spearman rho (mean "
        "over logos with 2+ distinct rows), top-1 regret (best true SSIM minus the true SSIM "
        "of the top-ranked set; ties count the worst), and the share of logos whose top-ranked "
        "set beats VTracer's defaults row. The `label.local_box` row ranks only each logo's "
        "sets inside that box (VTracer's defaults included): close sets, where `suggest` picks.",
        "",
        *_table(["split", "logos", "Spearman", "top-1 regret", "beats defaults"], rows),
        *_size_lines(res),
        *_origin_lines(res),
    ]


def _group_rows(groups: Mapping[Any, Mapping[str, float]], name: Callable[[Any], str]) -> list:
    return [
        [
            name(key),
            int(m["n"]),
            m["n_images"],
            _f(m["pearson"]),
            _f(m["rmse"]),
            _f(m["rank/spearman_mean"]),
            _f(m["rank/regret_mean"], 5),
            _f(m["rank/beats_defaults_share"], 3),
        ]
        for key, m in sorted(groups.items())
    ]


GROUP_HEADER = (
    "rows",
    "images",
    "Pearson r",
    "RMSE",
    "Spearman",
    "top-1 regret",
    "beats defaults",
)


def _origin_lines(res: ValidationResult) -> list[str]:
    """The per-source section (data.sources mixing synthetic logos and real artwork)."""
    if not res.per_origin:
        return []
    return [
        "",
        "## Per source",
        "",
        "The test rows by where the logo came from (`data.sources`: `synthetic` logos, "
        "`artwork` = real vector icons of `data.artwork`, `folder`), at every size; the "
        "ranking columns rank each logo's sets at one size.",
        "",
        *_table(["source", *GROUP_HEADER], _group_rows(res.per_origin, str)),
    ]


def _size_lines(res: ValidationResult) -> list[str]:
    """The per-size section (labels at several long sides; the rows above rank at the view)."""
    if not res.per_size:
        return []
    return [
        "",
        "## Per long side",
        "",
        "The test rows by the long side they were converted at (`data.sizes`; the model's "
        "parameters are in the frame of its view, scaled for VTracer at each size). The "
        "ranking columns rank each logo's sets at one size.",
        "",
        *_table(["long side", *GROUP_HEADER], _group_rows(res.per_size, lambda s: f"{s} px")),
    ]


def render_report(res: ValidationResult, vcfg: ValidateConfig) -> str:
    """``report.md``: one page a person reads to decide whether the model is fit for use
    (the SSIM head's sections, then the size head's when it was validated)."""
    o, g, b, c = res.overall, res.gates, res.baselines, res.convergence
    n_pass = sum(x["passed"] for x in g["gates"].values())
    verdict = "READY" if g["passed"] else "NOT READY"
    failed = [k for k, x in g["gates"].items() if not x["passed"]]
    info = res.model_info
    lines = [
        f"# Validation report: {verdict}",
        "",
        f"**{verdict} for use**: {n_pass} of {len(g['gates'])} readiness gates pass"
        + (f"; missed: {', '.join(failed)}." if failed else "."),
        "",
        f"Model: inputs `{info['inputs']}` ({info['width']} wide), hidden {info['hidden']}, "
        f"best epoch {info['best_epoch']}; MLflow run `{info['run_id']}`.",
        f"Test split: {o['n']} rows from {o['n_images']} images that training never saw "
        "(not for fitting, not for early stopping).",
        "",
        "## Headline (test split)",
        "",
        *_table(
            [
                "Pearson r",
                "p-value",
                "Spearman rho",
                "R²",
                "RMSE",
                "MAE",
                "within 0.1",
                "within 0.05",
                "median err",
                "max err",
            ],
            [
                [
                    _f(o["pearson"]),
                    _f(o["pearson_p"], 2),
                    _f(o["spearman"]),
                    _f(o["r2"]),
                    _f(o["rmse"]),
                    _f(o["mae"]),
                    _f(o["acc_0_1"], 3),
                    _f(o["acc_0_05"], 3),
                    _f(o["median_error"]),
                    _f(o["max_error"]),
                ]
            ],
        ),
        "",
        "## Readiness gates",
        "",
        *_table(
            ["gate", "scope", "value", "rule", "result"],
            [
                [
                    x["gate"],
                    x["scope"],
                    _f(x["value"]),
                    f"{x['op']} {x['threshold']:g}",
                    "pass" if x["passed"] else "**FAIL**",
                ]
                for x in g["gates"].values()
            ],
        ),
        "",
        (
            "A missed gate fails the stage (validate.fail_on_gates: true)."
            if vcfg.fail_on_gates
            else "Gates are advisory here (validate.fail_on_gates: false): a miss is reported, "
            "not fatal."
        ),
        "",
        "## Against baselines (same test rows, fitted on the train split)",
        "",
    ]
    base_rows = [
        [
            "**MLP**",
            *(_f(b["mlp"][m]) for m in ("rmse", "mae", "pearson", "r2")),
            _f(b["mlp"]["acc_0_1"], 3),
        ]
    ]
    for name, entry in b["baselines"].items():
        m = entry["metrics"]
        label = f"{name} ({entry['description']})" + (" — best" if name == b["best"] else "")
        base_rows.append(
            [label, *(_f(m[k]) for k in ("rmse", "mae", "pearson", "r2")), _f(m["acc_0_1"], 3)]
        )
    lines += _table(["model", "RMSE", "MAE", "Pearson r", "R²", "within 0.1"], base_rows)
    lines.append("")
    if b["mlp_beats_best"]:
        lines.append(
            f"The MLP's RMSE is {b['mlp_rmse_reduction_pct']:.1f}% lower than the best "
            f"baseline's ({b['best']}: {_f(b['best_rmse'])})."
        )
    else:
        lines.append(
            f"**The MLP does not beat the best baseline**: {b['best']} has RMSE "
            f"{_f(b['best_rmse'])}, the MLP {_f(b['mlp']['rmse'])} "
            f"({-b['mlp_rmse_reduction_pct']:.1f}% worse). Prefer the baseline, or improve the model."
        )
    lines += ["", "## Per logo type (test split)", ""]
    type_rows = []
    for _, r in res.per_type.iterrows():
        if r["status"] == "skipped":
            type_rows.append(
                [
                    r["logo_type"],
                    r["n"],
                    r["n_images"],
                    f"skipped: {r['n']} rows < validate.min_type_examples {vcfg.min_type_examples}",
                    "",
                    "",
                    "",
                    "",
                ]
            )
        else:
            type_rows.append(
                [
                    r["logo_type"],
                    r["n"],
                    r["n_images"],
                    _f(r["pearson"]),
                    _f(r["spearman"]),
                    _f(r["rmse"]),
                    _f(r["mae"]),
                    _f(r["acc_0_1"], 3),
                ]
            )
    lines += _table(
        ["type", "rows", "images", "Pearson r", "Spearman", "RMSE", "MAE", "within 0.1"], type_rows
    )
    lines += ["", "## Cross-validation (train+val images, grouped by image)", ""]
    if res.cv is None:
        lines.append("Disabled (validate.cv_folds: 0).")
    else:
        cv, s = res.cv, res.cv["summary"]
        lines += [
            f"{cv['n_folds']} folds over {cv['rows']} rows from {cv['images']} images "
            f"(StratifiedGroupKFold by logo type, seed {cv['seed']}); the MLP retrained per "
            f"fold for up to {cv['epochs']} epochs, early-stopped on {cv['val_share']:.0%} of "
            "the fold's training images, statistics standardizer refitted per fold.",
            "",
            f"Pearson r {_f(s['pearson_mean'])} ± {_f(s['pearson_std'])}, "
            f"RMSE {_f(s['rmse_mean'])} ± {_f(s['rmse_std'])}, "
            f"within 0.1 {_f(s['acc_0_1_mean'], 3)} ± {_f(s['acc_0_1_std'], 3)} "
            "(mean ± sample std over folds).",
            "",
            *_table(
                ["fold", "rows", "images", "best epoch", "Pearson r", "RMSE", "within 0.1"],
                [
                    [
                        f["fold"],
                        f["n"],
                        f["images"],
                        f["best_epoch"],
                        _f(f["pearson"]),
                        _f(f["rmse"]),
                        _f(f["acc_0_1"], 3),
                    ]
                    for f in cv["folds"]
                ],
            ),
        ]
    lines += _ranking_lines(res)
    lines += ["", "## Convergence (reports/train/history.csv)", ""]
    rules = c["rules"]
    over = (
        "**yes**: " + "; ".join(c["overfitting_reasons"])
        if c["overfitting"]
        else f"no (val loss rise after best {c['val_loss_rise_after_best']:+.0%}, "
        f"val/train loss ratio {c['val_train_loss_ratio']:.2f})"
    )
    lines += [
        f"- Best epoch {c['best_epoch']} of {c['epochs_run']} run "
        f"(val loss {_f(c['best_val_loss'], 5)}, val r {_f(c['best_val_pearson'])}).",
        f"- Overfitting: {over}. Rule: val loss rises > {rules['overfit_val_rise']:.0%} after "
        f"the best epoch while train loss falls, or val/train loss > {rules['overfit_gap_ratio']}.",
        f"- Val r over the last {c['last_n']} epochs: std {_f(c['val_pearson_std_last'])} -> "
        + ("stable" if c["stable"] else f"**not settled** (>= {rules['stable_std']})")
        + ".",
        "",
        "## Plots",
        "",
        "- [Predicted vs actual, by logo type](plots/pred_vs_actual.png)",
        "- [Per-type metrics against the gates](plots/per_type.png)",
        "- [Residuals](plots/residuals.png)",
        "- [Training curves](plots/training_curves.png)",
        "- [SSIM distribution per logo type](plots/ssim_by_type.png)",
        "",
        "Files: metrics.json, per_type.csv, cv.json, baselines.json, gates.json, "
        "predictions.csv (all in this folder, and in the MLflow run under `validate/`).",
        "",
    ]
    md = "\n".join(lines)
    if res.size is not None:
        md += "\n" + render_size_section(res.size)
    return md


def render_size_section(report: Mapping[str, Any]) -> str:
    """The size head's section of report.md."""
    t = report["test"]
    lines = [
        "## Size head (log10 SVG bytes)",
        "",
        f"Test: r {t['pearson_log10']:.4f} on log10 bytes, RMSE {t['rmse_log10']:.4f}, "
        f"median |predicted/actual bytes - 1| {t['median_abs_ratio_err']:.3f} ({t['n']} rows).",
        "",
        "| logo type | n | r (log10) | median abs ratio err |",
        "|---|---|---|---|",
    ]
    for name, m in report["per_type"].items():
        if m["status"] == "reported":
            lines.append(
                f"| {name} | {m['n']} | {m['pearson_log10']:.4f} | "
                f"{m['median_abs_ratio_err']:.3f} |"
            )
        else:
            lines.append(f"| {name} | {m['n']} | skipped | skipped |")
    cv = report.get("cv")
    if cv:
        s = cv["summary"]
        lines += [
            "",
            f"Grouped CV ({cv['n_folds']} folds): r {s['pearson_log10_mean']:.4f} "
            f"± {s['pearson_log10_std']:.4f}, median abs ratio err "
            f"{s['median_abs_ratio_err_mean']:.3f} ± {s['median_abs_ratio_err_std']:.3f}.",
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- files


def write_reports(
    res: ValidationResult,
    out_dir: str | Path,
    vcfg: ValidateConfig,
    history: pd.DataFrame,
    label_rows: pd.DataFrame,
) -> list[Path]:
    """Every file of ``reports/validate/``, each written once and atomically:
    metrics.json, per_type.csv, cv.json, baselines.json, gates.json, predictions.csv,
    report.md, size.json (when the size head was validated) and the plots; returns their
    paths."""
    from svg_quality.io import atomic_path, write_json, write_text
    from svg_quality.plots import write_plots

    out = Path(out_dir)
    paths = {n: out / n for n in REPORT_FILES}
    write_json(paths["metrics.json"], finite_or_none(flat_metrics(res)))
    for name, df in (("per_type.csv", res.per_type), ("predictions.csv", res.predictions)):
        with atomic_path(paths[name]) as tmp:
            df.to_csv(tmp, index=False, float_format="%.6g")
    cv = {"enabled": False} if res.cv is None else {"enabled": True, **res.cv}
    write_json(paths["cv.json"], finite_or_none(cv))
    write_json(paths["baselines.json"], finite_or_none(res.baselines))
    write_json(
        paths["gates.json"],
        finite_or_none(
            {
                **res.gates,
                "convergence": res.convergence,
                "fail_on_gates": vcfg.fail_on_gates,
            }
        ),
    )
    if res.size is not None:
        paths[SIZE_FILE] = out / SIZE_FILE
        write_json(paths[SIZE_FILE], finite_or_none(flat_size_metrics(res.size)))
    write_text(paths["report.md"], render_report(res, vcfg))
    return [*paths.values(), *write_plots(res, history, label_rows, vcfg.gates, out)]
