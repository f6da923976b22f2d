"""Checkpoints and resume: where a training run stands, saved after every epoch.

A :class:`ResumeState` holds a run's early-stopping counters and per-epoch history; the
trainer books each finished epoch into it (:meth:`ResumeState.update`) and writes it, with
the weights, optimizer, scheduler, scaler and RNG states, to ``last.pt`` (and ``best.pt``
on improvement). :func:`load_resume` reads ``last.pt`` back, refusing a checkpoint made
with other train settings, model, inputs or data, so ``train.resume`` continues an
interrupted run bit for bit (on CPU). A checkpoint is also a model file
(``state_dict`` + ``meta``): :func:`svg_quality.model.load_model` reads it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from svg_quality.config import TrainConfig
from svg_quality.io import atomic_path
from svg_quality.model import cpu_state

MONITOR_MODE = {"val_loss": "min", "val_rmse": "min", "val_pearson": "max"}
LAST, BEST = "last.pt", "best.pt"
CHECKPOINT_FORMAT = 1


def improved(monitor: str, score: float, best: float | None) -> bool:
    """Whether ``score`` of ``monitor`` beats ``best`` (a non-finite score never does)."""
    if not math.isfinite(score):
        return False
    if best is None:
        return True
    return score < best if MONITOR_MODE[monitor] == "min" else score > best


def _rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any], shuffle: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _resume_config(cfg: TrainConfig) -> dict[str, Any]:
    # Everything that shapes the result must match on resume; `resume` itself may differ.
    d = dataclasses.asdict(cfg)
    d.pop("resume")
    return d


@dataclass
class ResumeState:
    """Where a run stands after its last finished epoch: the early-stopping counters and
    history, plus (after :meth:`from_checkpoint`) the saved weights, optimizer, scheduler,
    scaler and RNG states that :meth:`restore` puts back, so a resumed run continues bit for
    bit (on CPU) where the interrupted one stopped."""

    epoch: int = 0  # epochs done
    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float | None = None
    best_epoch: int = 0  # 0: no epoch had a finite monitor value yet
    bad_epochs: int = 0  # epochs since the last improvement
    finished: bool = False  # the run reached train.epochs or stopped early
    meta: dict[str, Any] = field(default_factory=dict)  # the run's model meta (mlflow_run_id)
    best_weights: dict[str, torch.Tensor] | None = None  # state dict of the best epoch
    saved: dict[str, Any] | None = None  # a checkpoint's object states, for restore()

    def update(self, record: dict[str, float], cfg: TrainConfig) -> bool:
        """Book one finished epoch; True when it is the new best (per ``train.monitor``)."""
        self.history.append(record)
        self.epoch = int(record["epoch"])
        score = record[cfg.monitor]
        better = improved(cfg.monitor, score, self.best_score)
        if better:
            self.best_score, self.best_epoch, self.bad_epochs = score, self.epoch, 0
        else:
            self.bad_epochs += 1
        self.finished = self.stopped_early(cfg) or self.epoch == cfg.epochs
        return better

    def stopped_early(self, cfg: TrainConfig) -> bool:
        return cfg.patience > 0 and self.bad_epochs >= cfg.patience

    def to_checkpoint(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        sched: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        shuffle: torch.Generator,
        cfg: TrainConfig,
    ) -> dict[str, Any]:
        """A ``weights_only``-loadable checkpoint (also a model file: ``state_dict`` + ``meta``)."""
        return {
            "checkpoint_format": CHECKPOINT_FORMAT,
            "state_dict": cpu_state(model.state_dict()),
            "meta": self.meta,
            "train_config": _resume_config(cfg),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": self.epoch,
            "metrics": self.history[-1],
            "history": self.history,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "finished": self.finished,
            "rng": _rng_state(shuffle),
        }

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> ResumeState:
        return cls(
            epoch=ckpt["epoch"],
            history=list(ckpt["history"]),
            best_score=ckpt["best_score"],
            best_epoch=ckpt["best_epoch"],
            bad_epochs=ckpt["bad_epochs"],
            finished=ckpt["finished"],
            meta=dict(ckpt["meta"]),
            saved={k: ckpt[k] for k in ("state_dict", "optimizer", "scheduler", "scaler", "rng")},
        )

    def restore(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        sched: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        shuffle: torch.Generator,
    ) -> None:
        """Load the checkpoint's states into freshly built training objects."""
        if self.saved is None:
            raise ValueError("this resume state holds no checkpoint to restore")
        model.load_state_dict(self.saved["state_dict"])
        opt.load_state_dict(self.saved["optimizer"])
        sched.load_state_dict(self.saved["scheduler"])
        scaler.load_state_dict(self.saved["scaler"])
        _set_rng_state(self.saved["rng"], shuffle)


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint as a dict (tensors and plain values; ``weights_only`` safe)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("checkpoint_format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a checkpoint this code can resume; delete it or retrain")
    return blob


def _check_resumable(ckpt: Mapping[str, Any], cfg: TrainConfig, meta: Mapping[str, Any]) -> None:
    old, new = ckpt["train_config"], _resume_config(cfg)
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            raise ValueError(
                f"train.resume: the last checkpoint was made with train.{key}={old.get(key)!r}, "
                f"now {new.get(key)!r}; restore the value or set train.resume=false to start over"
            )
    for key in ("model", "input", "data"):  # architecture, input layout, data digests
        if key in meta and ckpt["meta"].get(key) != meta[key]:
            raise ValueError(
                f"train.resume: the last checkpoint's {key} settings differ from the current "
                "ones; set train.resume=false to start over"
            )


def load_resume(
    checkpoint_dir: str | Path | None, cfg: TrainConfig, meta: Mapping[str, Any]
) -> ResumeState | None:
    """The state to continue from, or None for a fresh run.

    None unless ``train.resume`` is set and ``checkpoint_dir`` holds ``last.pt``. Raises
    ``ValueError`` naming the setting when the checkpoint was made with other train
    settings, model, inputs or data. Cheap enough to call before anything else, which
    the train stage does: a refused resume must not touch the MLflow run it would continue.
    """
    if checkpoint_dir is None or not cfg.resume or not (Path(checkpoint_dir) / LAST).is_file():
        return None
    ckpt = load_checkpoint(Path(checkpoint_dir) / LAST)
    _check_resumable(ckpt, cfg, meta)
    state = ResumeState.from_checkpoint(ckpt)
    if state.best_epoch:
        state.best_weights = load_checkpoint(Path(checkpoint_dir) / BEST)["state_dict"]
    return state
