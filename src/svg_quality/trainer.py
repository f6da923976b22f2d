"""The training loop: device-resident tensors, one AMP idiom, checkpoints, early stopping.

Read top to bottom: :func:`fit` moves all rows to the device once, then each epoch
shuffles an index, slices batches out of the resident tensors (no per-row Dataset,
no DataLoader), steps the optimizer and a per-step LR schedule, evaluates on the
validation rows, writes ``last.pt`` (and ``best.pt`` on improvement), and stops when
``train.monitor`` has not improved for ``train.patience`` epochs. The epoch body is
:func:`train_epoch`; where a run stands (counters, history, the states to restore) is a
:class:`~svg_quality.checkpoints.ResumeState`, which
:func:`~svg_quality.checkpoints.load_resume` reads back from ``last.pt``.

Used by the train stage (with checkpoints and an MLflow callback) and by validate's
grouped cross-validation (no checkpoints, no tracking). Imports only torch and numpy
(plus tqdm when ``progress=True``) so the throughput benchmark runs on a bare GPU box.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from svg_quality.accel import (
    Precision,
    choose_device,
    choose_precision,
    deterministic,
    seed_everything,
)
from svg_quality.checkpoints import BEST, LAST, ResumeState, load_resume, save_checkpoint
from svg_quality.config import ModelConfig, TrainConfig
from svg_quality.metrics import pearson
from svg_quality.model import build_model, count_parameters


class XY(Protocol):
    """Anything with model inputs ``x [n, d]`` and targets ``y [n]`` (e.g. dataset.Arrays)."""

    x: np.ndarray
    y: np.ndarray


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf; the message names the epoch and batch."""


@dataclass
class FitResult:
    model: nn.Module  # best weights, eval mode, on the training device
    best_epoch: int
    best: dict[str, float]  # the history record of the best epoch
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    resumed_from: int = 0  # epochs already done when this call started (0 = fresh)
    device: str = "cpu"
    precision: str = "fp32"

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    def summary(self) -> dict[str, Any]:
        """The run's final figures: the best epoch's losses, length, speed and setup."""
        return {
            **{k: self.best[k] for k in ("train_loss", "val_loss", "val_rmse", "val_pearson")},
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "stopped_early": self.stopped_early,
            "n_parameters": count_parameters(self.model),
            "train_seconds": sum(h["epoch_s"] for h in self.history),
            "samples_per_s": sum(h["samples_per_s"] for h in self.history) / self.epochs_run,
            "device": self.device,
            "precision": self.precision,
        }


# --------------------------------------------------------------------------- pieces


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    # Decay only matrices (Linear weights), not biases or BatchNorm scales (as nanoGPT does).
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    # One fused kernel per step instead of a dozen per tensor; PyTorch has fused Adam(W) for
    # CUDA and, since 2.4, for CPU (float32), where it cuts the step from ~9 ms to ~2 ms for
    # the ResNet-only layout's 2.8M-parameter MLP on 2 cores.
    fused = device.type in ("cuda", "cpu")
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=fused)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, fused=fused)
    raise ValueError(f"train.optimizer {cfg.optimizer!r} is invalid; allowed: adamw, adam, sgd")


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier on ``train.lr`` at optimizer step ``step`` (0-based); stepped every batch."""
    if cfg.scheduler == "none":
        return 1.0
    if cfg.scheduler == "step":
        return cfg.gamma ** ((step // steps_per_epoch) // cfg.step_size)
    if cfg.scheduler == "cosine":
        warmup = cfg.warmup_epochs * steps_per_epoch
        if step < warmup:
            return (step + 1) / warmup  # linear warmup
        total = cfg.epochs * steps_per_epoch
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"train.scheduler {cfg.scheduler!r} is invalid; allowed: cosine, step, none")


def make_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(cfg, step, steps_per_epoch)
    )


def batches_per_epoch(n: int, batch_size: int) -> int:
    # A trailing batch of one row is dropped: BatchNorm cannot normalise a single sample.
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= 2 else 0)


@torch.no_grad()
def predict(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    precision: Precision | None = None,
    batch_size: int = 8192,
) -> np.ndarray:
    """Predicted SSIM ``[n]`` float32 for inputs ``x [n, d]``, in eval mode, on the model's device."""
    device = next(model.parameters()).device
    precision = precision or Precision(device, None)
    xt = torch.as_tensor(x, dtype=torch.float32)
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, xt.shape[0], batch_size):
        xb = xt[i : i + batch_size].to(device, non_blocking=True)  # [B, d]
        with precision.autocast():
            out.append(model(xb).float())  # [B]
    model.train(was_training)
    if not out:
        return np.zeros(0, dtype=np.float32)
    return torch.cat(out).cpu().numpy()


def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: Precision
) -> dict[str, float]:
    """``val_loss`` (MSE), ``val_rmse`` and ``val_pearson`` of ``model`` on resident tensors."""
    pred = predict(model, x, precision).astype(np.float64)
    true = y.cpu().numpy().astype(np.float64)
    mse = float(np.mean((pred - true) ** 2))
    return {"val_loss": mse, "val_rmse": math.sqrt(mse), "val_pearson": pearson(true, pred)}


# --------------------------------------------------------------------------- fit


@dataclass
class _Batches:
    """The training rows, resident on the device, cut into ``steps`` batches of ``size``."""

    x: torch.Tensor  # [N, D]
    y: torch.Tensor  # [N]
    size: int
    steps: int
    group: torch.Tensor | None = None  # [N] int64 image index 0..G-1: batches of whole logos

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def order(self, shuffle: torch.Generator) -> torch.Tensor:
        """This epoch's row order ``[N]`` (CPU): shuffled rows, or with ``group`` the rows
        of shuffled logos one logo after another (each batch holds ~size/rows-per-logo
        whole logos), rows shuffled inside each logo."""
        if self.group is None:
            return torch.randperm(self.n, generator=shuffle)
        group = self.group.cpu()
        logo_rank = torch.randperm(int(group.max()) + 1, generator=shuffle)[group]  # [N]
        jitter = torch.rand(self.n, generator=shuffle, dtype=torch.float64)  # [N] in [0, 1)
        return torch.argsort(logo_rank.double() + jitter)

    def sizes(self) -> torch.Tensor:
        """Rows per batch ``[steps]`` (the last one may be short)."""
        sizes = torch.full((self.steps,), float(self.size))
        sizes[-1] = self.n - self.size * (self.steps - 1) if self.n % self.size >= 2 else self.size
        return sizes


def train_epoch(
    model: nn.Module,
    rows: _Batches,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    precision: Precision,
    shuffle: torch.Generator,
    cfg: TrainConfig,
    epoch: int,
) -> dict[str, float]:
    """One pass over the shuffled training rows; ``train_loss`` (row-weighted mean) and ``lr``
    (the rate of the epoch's last step). Raises :class:`NonFiniteLossError` on NaN/inf."""
    model.train()
    device = rows.x.device
    perm = rows.order(shuffle).to(device)  # [N]
    losses = torch.zeros(rows.steps, device=device)  # per-batch loss, read once per epoch
    lr = opt.param_groups[0]["lr"]
    for b in range(rows.steps):
        idx = perm[b * rows.size : (b + 1) * rows.size]  # [B]
        xb, yb = rows.x[idx], rows.y[idx]  # [B, D], [B]
        with precision.autocast():
            pred = model(xb).float()  # [B], or [B, K]: K members, each on its own loss
        target = yb if pred.dim() == 1 else yb.unsqueeze(-1).expand_as(pred)
        loss = F.mse_loss(pred, target)  # fp32 loss whatever autocast chose
        if rows.group is not None and cfg.logo_weight > 0:
            loss = loss + cfg.logo_weight * within_group_mse(pred - target, rows.group[idx])
        if rows.group is not None and cfg.rank_weight > 0:
            rank = within_group_rank(pred, yb, rows.group[idx], cfg.rank_tau)
            loss = loss + cfg.rank_weight * rank
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        lr = opt.param_groups[0]["lr"]
        scaler.step(opt)
        scaler.update()
        sched.step()
        losses[b] = loss.detach()  # no host sync inside the loop
    losses_h = losses.cpu()  # the epoch's one sync
    bad = (~torch.isfinite(losses_h)).nonzero()
    if len(bad):
        b = int(bad[0, 0])
        raise NonFiniteLossError(
            f"training loss is {losses_h[b].item()} at epoch {epoch}, batch {b + 1} "
            f"(of {rows.steps}); check the inputs for NaN/inf, or lower train.lr "
            f"(now {cfg.lr}) / set train.grad_clip"
        )
    sizes = rows.sizes()
    train_loss = float((losses_h.double() * sizes).sum() / sizes.sum())
    return {"train_loss": train_loss, "lr": float(lr)}


def within_group_mse(err: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``(err - mean err of the row's group)^2``: the errors' within-group
    variance, which ignores an error shared by one logo's rows (ranking is blind to it).
    Equals the mean over same-group pairs of ``(err_i - err_j)^2 / 2``, weighted per group."""
    ids, g = torch.unique(group, return_inverse=True)  # [B] -> 0..G-1
    n = err.new_zeros(ids.numel()).index_add_(0, g, torch.ones_like(group, dtype=err.dtype))
    n = n.reshape(-1, *([1] * (err.dim() - 1)))  # [G, 1...]: err may be [B, K] (members)
    mean = err.new_zeros(n.shape[0], *err.shape[1:]).index_add_(0, g, err) / n  # [G(, K)]
    return ((err - mean[g]) ** 2).mean()


def within_group_rank(
    pred: torch.Tensor, target: torch.Tensor, group: torch.Tensor, tau: float
) -> torch.Tensor:
    """Pairwise ranking loss inside each group (RankNet, Burges et al. 2005):
    mean over same-group pairs with ``target_i > target_j`` of
    ``tau * softplus(-(pred_i - pred_j) / tau)``.

    A pair ordered right by a gap much wider than ``tau`` costs ~0, a tie ``tau * ln 2``,
    a wrong order ~ its gap; every pair weighs the same however close their targets,
    which is what the within-logo Spearman counts. ``pred`` ``[B]`` or ``[B, K]``
    (members, each ranked on its own), ``target`` and ``group`` ``[B]``. Blind to a shift
    shared by a group's predictions. Zero (with a gradient) when no pair is ordered.
    """
    better = (group[:, None] == group[None, :]) & (target[:, None] > target[None, :])  # [B, B]
    p = pred if pred.dim() == 2 else pred.unsqueeze(-1)  # [B, K]
    i, j = better.nonzero(as_tuple=True)  # [P] pairs: i ranks above j
    if i.numel() == 0:
        return pred.sum() * 0.0
    return (tau * F.softplus(-(p[i] - p[j]) / tau)).mean()


def fit(
    train: XY,
    val: XY,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    meta: Mapping[str, Any] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: ResumeState | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    model: nn.Module | None = None,
    progress: bool = True,
    resnet_width: int = 0,
) -> FitResult:
    """Train an MLP on ``train`` with early stopping on ``val``; return the best model.

    ``meta`` (plain values, e.g. ``model.model_meta(...)``) is stored in every checkpoint so
    ``best.pt``/``last.pt`` load with :func:`svg_quality.model.load_model`. With a
    ``checkpoint_dir`` and ``train_cfg.resume``, training continues from ``last.pt`` and
    ends with the same weights and history as an uninterrupted run (exactly so on CPU);
    ``resume`` passes a state the caller already loaded with :func:`load_resume`.
    ``on_epoch`` gets each epoch's record (epoch, train_loss, val_loss, val_rmse,
    val_pearson, lr, epoch_s, samples_per_s[, peak_gpu_mem_mb]) after it is checkpointed.
    ``model`` replaces the freshly built one (same architecture expected).
    ``resnet_width`` (``InputSpec.resnet_width``): the rows' leading ResNet columns, whose
    ``model.resnet_pca`` projection is fitted here on ``train``'s images only.
    """
    meta = dict(meta or {})
    device = choose_device(train_cfg.device)
    precision = choose_precision(device, train_cfg.amp)
    n_train, in_features = _check_xy("train", train)
    _, val_features = _check_xy("val", val)
    if val_features != in_features:
        raise ValueError(f"train rows have {in_features} inputs but val rows have {val_features}")
    if n_train < 2:
        raise ValueError(f"need at least 2 training rows (BatchNorm), got {n_train}")
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume is None:
        resume = load_resume(ckpt_dir, train_cfg, meta)

    # Deterministic kernels on CPU make `resume` reproduce an uninterrupted run bit for bit.
    with deterministic(device.type == "cpu"):
        seed_everything(train_cfg.seed)
        if model is None:
            model = build_model(model_cfg, in_features, resnet_width)
            if model.resnet is not None:  # the fixed projection: train images only
                model.resnet.fit(per_image(train, resnet_width))
        model = model.to(device)
        # All rows live on the device for the whole run: a batch is one index_select.
        bs = min(train_cfg.batch_size, n_train)
        rows = _Batches(
            x=torch.as_tensor(train.x, dtype=torch.float32).to(device),  # [N, D]
            y=torch.as_tensor(train.y, dtype=torch.float32).to(device),  # [N]
            size=bs,
            steps=batches_per_epoch(n_train, bs),
            group=_groups(train) if train_cfg.logo_batches else None,
        )
        x_va = torch.as_tensor(val.x, dtype=torch.float32).to(device)  # [M, D]
        y_va = torch.as_tensor(val.y, dtype=torch.float32).to(device)  # [M]
        opt = make_optimizer(model, train_cfg, device)
        sched = make_scheduler(opt, train_cfg, rows.steps)
        scaler = precision.grad_scaler()  # a no-op unless fp16
        shuffle = torch.Generator().manual_seed(train_cfg.seed)  # CPU: same order on any device

        if resume is not None:
            resume.restore(model, opt, sched, scaler, shuffle)
            state = resume
        else:
            state = ResumeState()
            for name in (LAST, BEST) if ckpt_dir is not None else ():
                (ckpt_dir / name).unlink(missing_ok=True)  # no older run's files left behind
        state.meta = meta
        best_weights = state.best_weights or copy.deepcopy(model.state_dict())
        resumed_from = state.epoch

        bar = _progress(range(state.epoch, train_cfg.epochs), progress, state.epoch, train_cfg)
        for epoch in bar if not state.finished else ():
            t0 = time.perf_counter()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            step = train_epoch(
                model, rows, opt, sched, scaler, precision, shuffle, train_cfg, epoch + 1
            )
            train_s = time.perf_counter() - t0

            record: dict[str, float] = {"epoch": epoch + 1, "train_loss": step["train_loss"]}
            record.update(evaluate(model, x_va, y_va, precision))
            record["lr"] = step["lr"]
            record["epoch_s"] = time.perf_counter() - t0
            record["samples_per_s"] = float(rows.sizes().sum()) / max(train_s, 1e-9)
            if device.type == "cuda":
                record["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20

            if state.update(record, train_cfg):
                best_weights = copy.deepcopy(model.state_dict())
            if ckpt_dir is not None:
                ckpt = state.to_checkpoint(model, opt, sched, scaler, shuffle, train_cfg)
                if state.best_epoch == state.epoch:
                    save_checkpoint(ckpt_dir / BEST, ckpt)
                save_checkpoint(ckpt_dir / LAST, ckpt)
            if progress:
                bar.set_postfix(
                    loss=f"{record['train_loss']:.4f}",
                    val_rmse=f"{record['val_rmse']:.4f}",
                    val_r=f"{record['val_pearson']:.3f}",
                )
            if on_epoch is not None:
                on_epoch(record)
            if state.stopped_early(train_cfg):
                break

    if not state.history:
        raise ValueError("no epoch was trained (train.epochs must be at least 1)")
    best_epoch = state.best_epoch
    if best_epoch:  # else the monitor never had a finite value: keep the last weights
        model.load_state_dict(best_weights)
    else:
        best_epoch = int(state.history[-1]["epoch"])
    model.eval()
    best = next(h for h in state.history if h["epoch"] == best_epoch)
    return FitResult(
        model=model,
        best_epoch=best_epoch,
        best=dict(best),
        history=state.history,
        stopped_early=state.stopped_early(train_cfg),
        resumed_from=resumed_from,
        device=str(device),
        precision=precision.name,
    )


def _groups(data: XY) -> torch.Tensor:
    """``data.image_id`` as ``int64 [N]`` indices 0..G-1 (train.logo_weight and
    train.rank_weight need them)."""
    ids = getattr(data, "image_id", None)
    if ids is None:
        raise ValueError(
            "train.logo_weight > 0 or train.rank_weight > 0 needs the rows' image ids "
            "(dataset.Arrays has them); set both to 0 for rows without"
        )
    _, inverse = np.unique(np.asarray(ids), return_inverse=True)
    return torch.as_tensor(inverse.reshape(-1), dtype=torch.int64)


def per_image(data: XY, width: int) -> np.ndarray:
    """The leading ``width`` columns of ``data.x`` once per image ``[n_images, width]``: by
    ``data.image_id`` when it has one (dataset.Arrays), else by distinct rows."""
    block = np.asarray(data.x)[:, :width]
    ids = getattr(data, "image_id", None)
    if ids is None:
        return np.unique(block, axis=0)
    _, first = np.unique(np.asarray(ids), return_index=True)
    return block[np.sort(first)]


def _check_xy(name: str, data: XY) -> tuple[int, int]:
    x, y = np.asarray(data.x), np.asarray(data.y)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: x must be [n, d] and y [n], got {x.shape} and {y.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: no rows")
    return int(x.shape[0]), int(x.shape[1])


def _progress(it: range, enabled: bool, start: int, cfg: TrainConfig) -> Any:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc="train", unit="epoch", initial=start, total=cfg.epochs, dynamic_ncols=True)
