"""Grouped K-fold cross-validation of a head (the SSIM MLP or the size MLP) on train+val.

    train+val rows ──StratifiedGroupKFold(by image, validate.seed)──> K folds
    per fold: fit rows ──inner split (validate.cv_val_share, seed + fold)──> fit | stop
              spec fitted on the fit rows ──head.arrays──> trainer.fit ──> head.score(held)
    per-fold metrics ──> mean ± sample std

One loop serves both heads: what differs (the training settings, the target and how the
held-out fold is scored) is the :class:`CVHead` passed in, so both heads see the same
folds, inner splits, epochs and input specs. The test split is never touched.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from svg_quality.config import ModelConfig, TrainConfig, ValidateConfig
    from svg_quality.dataset import Arrays, LabeledData
    from svg_quality.inputspec import InputSpec

log = logging.getLogger(__name__)


def grouped_folds(
    groups: Sequence[str], strata: Sequence[str], n_folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_folds`` (train_idx, test_idx) pairs; every group (image) lies in exactly one test fold.

    StratifiedGroupKFold keeps each logo type's share of images similar across folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_folds < 2:
        raise ValueError(f"validate.cv_folds = {n_folds}: need at least 2 folds (0 disables CV)")
    if n_groups < n_folds:
        raise ValueError(
            f"validate.cv_folds = {n_folds} but only {n_groups} images are in train+val; "
            f"lower validate.cv_folds to at most {n_groups} or add logos"
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    idx = np.arange(len(groups))
    return [(tr, te) for tr, te in splitter.split(idx, np.asarray(strata), groups)]


def _inner_split(
    groups: np.ndarray, strata: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out about ``share`` of the images (stratified by type) for early stopping."""
    n_groups = len(np.unique(groups))
    k = min(max(2, round(1.0 / share)), n_groups)
    return grouped_folds(groups, strata, k, seed)[0]


@dataclass(frozen=True)
class CVFold:
    """One grouped CV fold as boolean masks over ``data.rows``: rows to fit on, rows held
    out of them for early stopping, and the fold's held-out (scored) rows."""

    fit: np.ndarray
    stop: np.ndarray
    held: np.ndarray


def cv_folds(data: LabeledData, vcfg: ValidateConfig) -> list[CVFold]:
    """The grouped K-fold plan over train+val (the test split is never touched)."""
    pool = np.flatnonzero(data.mask("train") | data.mask("val"))  # row indices into data.rows
    images = data.rows["image_id"].to_numpy(dtype=str)
    types = data.rows["logo_type"].to_numpy(dtype=str)

    def mask_of(rows: np.ndarray) -> np.ndarray:
        m = np.zeros(len(data.rows), dtype=bool)
        m[rows] = True
        return m

    plan = []
    for i, (tr, te) in enumerate(
        grouped_folds(images[pool], types[pool], vcfg.cv_folds, vcfg.seed)
    ):
        fit_rows, held_rows = pool[tr], pool[te]
        n_fit = len(np.unique(images[fit_rows]))
        if n_fit < 2:  # else _inner_split asks grouped_folds for 1 fold: a misleading error
            raise ValueError(
                f"cross-validation fold {i + 1} trains on {n_fit} image(s) (train+val hold "
                f"{len(np.unique(images[pool]))} images, validate.cv_folds = {vcfg.cv_folds}); "
                "holding out images for early stopping needs at least 2: add logos to "
                "data.source or set validate.cv_folds: 0"
            )
        a, b = _inner_split(images[fit_rows], types[fit_rows], vcfg.cv_val_share, vcfg.seed + i)
        plan.append(CVFold(mask_of(fit_rows[a]), mask_of(fit_rows[b]), mask_of(held_rows)))
    return plan


def cv_train_config(train_cfg: TrainConfig, vcfg: ValidateConfig) -> TrainConfig:
    """train's settings for one CV fold: ``validate.cv_epochs`` epochs, no resume."""
    return dataclasses.replace(
        train_cfg,
        epochs=vcfg.cv_epochs,
        warmup_epochs=min(train_cfg.warmup_epochs, vcfg.cv_epochs),
        resume=False,
    )


class CVHead(Protocol):
    """What cross-validation needs of a head (``validation.SSIM_HEAD``,
    ``sizehead.SIZE_HEAD``)."""

    name: str  # in log lines
    summary: tuple[str, ...]  # the per-fold metrics averaged over folds

    def train_config(self, train_cfg: TrainConfig) -> TrainConfig:
        """The head's training settings (before the CV epochs are applied)."""
        ...

    def fitted(self, data: LabeledData, fit: np.ndarray) -> CVHead:
        """The head for one fold: its target scaling fitted on the fold's ``fit`` rows."""
        ...

    def arrays(self, data: LabeledData, spec: InputSpec, mask: np.ndarray) -> Arrays:
        """Input rows and the head's training target for the rows of ``mask``."""
        ...

    def score(
        self, data: LabeledData, held: np.ndarray, arrays: Arrays, pred: np.ndarray
    ) -> dict[str, Any]:
        """Metrics of the held-out rows ``held`` from the model's raw output ``pred [n]``."""
        ...

    def describe(self, m: Mapping[str, Any]) -> str:
        """A fold's metrics in a few words, for the log."""
        ...


def cross_validate(
    data: LabeledData,
    head: CVHead,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    vcfg: ValidateConfig,
    ranges: Mapping[str, Sequence[float]],
    progress: bool = True,
) -> dict[str, Any]:
    """Grouped K-fold CV of ``head``'s MLP on the train+val images.

    Per fold: a stratified share ``validate.cv_val_share`` of the fold's training images is
    held out for early stopping, the input spec (statistics standardizer) and the head's
    target scaling are fitted on the rest, the MLP is trained with
    :func:`svg_quality.trainer.fit` for ``validate.cv_epochs`` epochs and scored on the
    fold's held-out images. Returns per-fold metrics and their mean and std.
    """
    from svg_quality.dataset import make_input_spec
    from svg_quality.trainer import fit, predict

    pool = data.mask("train") | data.mask("val")
    folds = cv_folds(data, vcfg)
    cfg = cv_train_config(head.train_config(train_cfg), vcfg)
    results = []
    for i, fold in enumerate(folds):
        spec = make_input_spec(data, model_cfg.requested_inputs, ranges, fit_mask=fold.fit)
        fold_head = head.fitted(data, fold.fit)
        train_xy = fold_head.arrays(data, spec, fold.fit)
        stop_xy = fold_head.arrays(data, spec, fold.stop)
        held_xy = fold_head.arrays(data, spec, fold.held)
        res = fit(
            train_xy, stop_xy, model_cfg, cfg, progress=progress, resnet_width=spec.resnet_width
        )
        m = fold_head.score(data, fold.held, held_xy, predict(res.model, held_xy.x))
        m.update(
            {
                "fold": i + 1,
                "train_rows": len(train_xy),
                "stop_rows": len(stop_xy),
                "images": len(np.unique(held_xy.image_id)),
                "best_epoch": res.best_epoch,
                "epochs_run": res.epochs_run,
            }
        )
        log.info(
            "%s fold %d/%d: %s, best epoch %d",
            head.name,
            i + 1,
            len(folds),
            head.describe(m),
            res.best_epoch,
        )
        results.append(m)

    summary: dict[str, float] = {}
    for name in head.summary:
        vals = np.array([r[name] for r in results], dtype=np.float64)
        summary[f"{name}_mean"] = float(np.mean(vals))
        summary[f"{name}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
    return {
        "folds": results,
        "summary": summary,
        "n_folds": len(folds),
        "epochs": vcfg.cv_epochs,
        "val_share": vcfg.cv_val_share,
        "seed": vcfg.seed,
        "rows": int(pool.sum()),
        "images": int(data.rows.loc[pool, "image_id"].nunique()),
        "model": dataclasses.asdict(model_cfg),
        "std": "sample std over folds (ddof=1)",
    }
