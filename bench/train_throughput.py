"""Training throughput: the train stage's trainer vs the seed's Dataset/DataLoader loop.

Both train the same MLP (the seed's 2056 -> 1024 -> 512 -> 256 -> 1) for one epoch on
the same synthetic rows (random tensors of the real shapes), in one process:

- naive (the seed's way): a Dataset holding one tensor per row, a DataLoader with batch
  64 and shuffling, each batch copied to the device, AdamW as the seed built it, fp32.
- trainer: ``svg_quality.trainer.fit`` with the stage's settings (``train`` in
  params.yaml: batch size, fused AdamW, grad clipping, the AMP idiom of
  ``svg_quality.accel``: bf16/fp16 on CUDA, fp32 on CPU), rows resident on the device,
  batches sliced by a shuffled index; timed including its setup and validation pass.

On 2 CPU cores both are bound by fp32 matrix multiplies (~180 GFLOP/s here); the seed's
loop loses most of its time in the unfused optimizer step and small batches.
Unless ``--features`` is given, the pair is timed first at the width of the default
``model.inputs`` (informational), then at the seed's 2056, whose ratio is printed last.
Needs only torch, numpy and pyyaml (``PYTHONPATH=src`` on a box without the package):

    python bench/train_throughput.py [--rows 20000] [--device cuda]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from svg_quality.accel import choose_device, configure_cpu_threads
from svg_quality.config import ModelConfig, TrainConfig, load_params
from svg_quality.logostats import STAT_NAMES
from svg_quality.model import RESNET_DIM, InputSpec, build_model
from svg_quality.trainer import fit


class RowDataset(Dataset):
    """The seed's dataset: one (x, y) tensor pair per row, collated per batch."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.rows = [torch.tensor(r) for r in x]
        self.targets = [torch.tensor(v) for v in y]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rows[i], self.targets[i]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def naive_epoch(
    x: np.ndarray, y: np.ndarray, model_cfg: ModelConfig, device: torch.device, batch_size: int
) -> float:
    """One epoch the seed's way; returns seconds (dataset construction excluded)."""
    torch.manual_seed(0)
    model = build_model(model_cfg, x.shape[1]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = DataLoader(RowDataset(x, y), batch_size=batch_size, shuffle=True)
    model.train()
    # burn-in: a few batches so one-time allocation and kernel selection are not timed
    for i, (xb, yb) in enumerate(loader):
        loss = F.mse_loss(model(xb.to(device)), yb.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i == 4:
            break
    sync(device)
    t0 = time.perf_counter()
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)  # [64, 2056], [64]
        loss = F.mse_loss(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _ = loss.item()  # the seed accumulated the running loss each batch
    sync(device)
    return time.perf_counter() - t0


def trainer_epoch(
    x: np.ndarray, y: np.ndarray, model_cfg: ModelConfig, cfg: TrainConfig, val_rows: int
) -> float:
    """One epoch through the stage's trainer; returns the seconds of the whole fit() call."""

    class XY:
        def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
            self.x, self.y = a, b

    device = choose_device(cfg.device)
    # burn-in on a slice, as for the naive loop
    fit(XY(x[:1280], y[:1280]), XY(x[:val_rows], y[:val_rows]), model_cfg, cfg, progress=False)
    sync(device)
    t0 = time.perf_counter()
    fit(XY(x, y), XY(x[:val_rows], y[:val_rows]), model_cfg, cfg, progress=False)
    sync(device)
    return time.perf_counter() - t0


def compare(
    args: argparse.Namespace, model_cfg: ModelConfig, cfg: TrainConfig, width: int, label: str
) -> float:
    """Time both loops on ``args.rows`` random rows ``width`` wide; print and return the ratio."""
    device = choose_device(args.device)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, width), dtype=np.float32)  # [N, width]
    y = rng.random(args.rows, dtype=np.float32)  # [N] SSIM-like targets in [0, 1)
    val_rows = min(1024, args.rows)
    print(f"-- {label}: {args.rows} rows x {width} inputs on {device}")

    naive_s = naive_epoch(x, y, model_cfg, device, args.naive_batch_size)
    naive_sps = args.rows / naive_s
    print(
        f"naive   (Dataset per row, DataLoader batch {args.naive_batch_size}, fp32): "
        f"{naive_s:7.2f} s  {naive_sps:10.0f} samples/s"
    )
    ours_s = trainer_epoch(x, y, model_cfg, cfg, val_rows)
    ours_sps = args.rows / ours_s
    print(
        f"trainer (resident tensors, batch {cfg.batch_size}, amp {cfg.amp}, incl. setup+val): "
        f"{ours_s:7.2f} s  {ours_sps:10.0f} samples/s  ({ours_sps / naive_sps:.2f}x)"
    )
    return ours_sps / naive_sps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000, help="training rows")
    ap.add_argument("--features", type=int, default=2056, help="the seed's input width (2048 + 8)")
    ap.add_argument("--params", default="params.yaml", help="the stage's train/model settings")
    ap.add_argument("--batch-size", type=int, help="the trainer's batch (default: params.yaml)")
    ap.add_argument("--naive-batch-size", type=int, default=64, help="the seed's batch size")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--amp", help="the trainer's amp (default: params.yaml, i.e. fp32 on CPU)")
    args = ap.parse_args()

    params = load_params(args.params)
    cfg = dataclasses.replace(
        params.train,
        epochs=1,
        warmup_epochs=0,
        patience=0,
        resume=False,
        device=args.device,
        batch_size=args.batch_size or params.train.batch_size,
        amp=args.amp or params.train.amp,
    )
    print(f"threads {configure_cpu_threads()}")
    # The width the default model.inputs gives, from the one place the row layout is defined
    # (mean/std are placeholders: only the layout matters here).
    n_stats = len(STAT_NAMES)
    default_width = InputSpec(
        params.model.inputs,
        RESNET_DIM,
        STAT_NAMES,
        (0.0,) * n_stats,
        (1.0,) * n_stats,
        params.vtracer.ranges,
    ).width
    if default_width != args.features:
        compare(
            args, params.model, cfg, default_width, f"default model.inputs={params.model.inputs}"
        )
    ratio = compare(args, params.model, cfg, args.features, "the seed's inputs")
    print(f"ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
