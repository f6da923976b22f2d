"""Validation plots as PNG files (matplotlib, Agg backend: no display needed).

PNGs rather than ``dvc plots show`` HTML, because the HTML loads its renderer from the
internet and a person deciding on the model should be able to just open the files.
Each function draws one figure and writes it atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from svg_quality.io import atomic_path
from svg_quality.metrics import LOWER_IS_BETTER
from svg_quality.validation import ValidationResult, type_order

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOT_FILES = {
    "pred_vs_actual": "plots/pred_vs_actual.png",
    "per_type": "plots/per_type.png",
    "residuals": "plots/residuals.png",
    "training_curves": "plots/training_curves.png",
    "ssim_by_type": "plots/ssim_by_type.png",
}

TYPE_COLORS = {"simple": "#1f77b4", "text": "#d62728", "gradient": "#2ca02c", "complex": "#9467bd"}


def _figure(*, ncols: int = 1, size: tuple[float, float] = (6.0, 5.0)) -> tuple[Figure, np.ndarray]:
    import matplotlib

    matplotlib.use("Agg")  # headless: stages run on servers and in CI
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=size, squeeze=False)
    return fig, axes[0]


def _save(fig: Figure, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def _color(t: str) -> str:
    return TYPE_COLORS.get(t, "#7f7f7f")


def pred_vs_actual(predictions: pd.DataFrame, path: str | Path) -> Path:
    """Scatter of predicted vs actual SSIM, coloured by logo type, with the identity line."""
    fig, (ax,) = _figure(size=(6.0, 6.0))
    for t in type_order(predictions["logo_type"].tolist()):
        sub = predictions[predictions["logo_type"] == t]
        ax.scatter(
            sub["actual"],
            sub["predicted"],
            s=8,
            alpha=0.5,
            color=_color(t),
            label=f"{t} (n={len(sub)})",
        )
    lo = float(min(predictions["actual"].min(), predictions["predicted"].min(), 0.0))
    ax.plot([lo, 1], [lo, 1], "k--", lw=1, label="identity")
    ax.set(
        xlabel="actual SSIM",
        ylabel="predicted SSIM",
        title="Test split: predicted vs actual",
        xlim=(lo, 1.01),
        ylim=(lo, 1.01),
        aspect="equal",
    )
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def per_type_bars(per_type: pd.DataFrame, gates: Mapping[str, float], path: str | Path) -> Path:
    """Pearson r, RMSE and within-0.1 accuracy per logo type, with the gates as lines."""
    metrics = ("pearson", "rmse", "acc_0_1")
    fig, axes = _figure(ncols=len(metrics), size=(13.0, 4.2))
    rep = per_type[per_type["status"] == "reported"]
    for ax, m in zip(axes, metrics, strict=True):
        x = np.arange(len(rep))
        ax.bar(x, rep[m].to_numpy(dtype=float), color=[_color(t) for t in rep["logo_type"]])
        ax.set_xticks(x, [f"{t}\n(n={n})" for t, n in zip(rep["logo_type"], rep["n"], strict=True)])
        gate = gates.get(f"type_{m}", gates.get(m))
        if gate is not None:
            side = "max" if m in LOWER_IS_BETTER else "min"
            ax.axhline(gate, color="k", ls="--", lw=1, label=f"gate {side} {gate:g}")
            ax.legend(fontsize=8)
        if m not in LOWER_IS_BETTER:  # r and accuracy live in [.., 1]: show the whole scale
            ax.set_ylim(min(0.0, float(np.nanmin(rep[m], initial=0.0))), 1.02)
        ax.set_title(m)
    skipped = per_type[per_type["status"] == "skipped"]
    if len(skipped):
        note = ", ".join(
            f"{t} ({n} rows)" for t, n in zip(skipped["logo_type"], skipped["n"], strict=True)
        )
        fig.suptitle(f"skipped (too few test rows): {note}", fontsize=9)
    return _save(fig, path)


def residuals(predictions: pd.DataFrame, path: str | Path) -> Path:
    """Histogram of predicted - actual, with the +-0.05 and +-0.1 tolerance bands."""
    fig, (ax,) = _figure(size=(7.0, 4.5))
    err = (predictions["predicted"] - predictions["actual"]).to_numpy(dtype=float)
    ax.hist(err, bins=60, color="#4c72b0", alpha=0.85)
    for tol, ls in ((0.05, ":"), (0.1, "--")):
        ax.axvline(-tol, color="k", ls=ls, lw=1)
        ax.axvline(tol, color="k", ls=ls, lw=1, label=f"±{tol:g}")
    ax.set(
        xlabel="predicted − actual SSIM",
        ylabel="rows",
        title=f"Test residuals (mean {err.mean():+.4f}, std {err.std():.4f})",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def training_curves(
    history: pd.DataFrame, target_r: float, best_epoch: int | None, path: str | Path
) -> Path:
    """Train/val loss (log scale) and val Pearson r per epoch, with the target r line."""
    fig, (ax1, ax2) = _figure(ncols=2, size=(12.0, 4.5))
    ax1.plot(history["epoch"], history["train_loss"], label="train loss")
    ax1.plot(history["epoch"], history["val_loss"], label="val loss")
    ax1.set(xlabel="epoch", ylabel="MSE", yscale="log", title="Loss")
    ax2.plot(history["epoch"], history["val_pearson"], color="#2ca02c", label="val r")
    ax2.axhline(target_r, color="k", ls="--", lw=1, label=f"target {target_r:g}")
    ax2.set(xlabel="epoch", ylabel="Pearson r", title="Validation Pearson r")
    for ax in (ax1, ax2):
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", ls=":", lw=1, label=f"best epoch {best_epoch}")
        ax.legend(fontsize=8)
    return _save(fig, path)


def ssim_by_type(rows: pd.DataFrame, path: str | Path) -> Path:
    """Distribution of the SSIM labels per logo type (all ok label rows, every split)."""
    fig, (ax,) = _figure(size=(7.0, 4.5))
    types = type_order(rows["logo_type"].tolist())
    data = [rows.loc[rows["logo_type"] == t, "ssim"].to_numpy(dtype=float) for t in types]
    # A box plot, not a violin: a type whose labels are all equal would break the KDE.
    parts = ax.boxplot(data, patch_artist=True, showfliers=True, flierprops={"markersize": 2})
    for box, t in zip(parts["boxes"], types, strict=True):
        box.set_facecolor(_color(t))
        box.set_alpha(0.6)
    ax.set_xticks(
        np.arange(1, len(types) + 1),
        [f"{t}\n(n={len(d)})" for t, d in zip(types, data, strict=True)],
    )
    ax.set(ylabel="SSIM", title="SSIM labels per logo type")
    return _save(fig, path)


def write_plots(
    res: ValidationResult,
    history: pd.DataFrame,
    label_rows: pd.DataFrame,
    gates: Mapping[str, float],
    out_dir: str | Path,
) -> list[Path]:
    """All five validation PNGs under ``out_dir`` (names from :data:`PLOT_FILES`)."""
    out = Path(out_dir)
    f = {k: out / v for k, v in PLOT_FILES.items()}
    return [
        pred_vs_actual(res.predictions, f["pred_vs_actual"]),
        per_type_bars(res.per_type, gates, f["per_type"]),
        residuals(res.predictions, f["residuals"]),
        training_curves(
            history, gates.get("pearson", 0.90), res.convergence["best_epoch"], f["training_curves"]
        ),
        ssim_by_type(label_rows, f["ssim_by_type"]),
    ]
