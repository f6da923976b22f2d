"""Training throughput: the train stage's trainer vs the seed's Dataset/DataLoader loop.

Both train the same MLP (2056 -> 1024 -> 512 -> 256 -> 1) for one epoch on the same
synthetic rows (random tensors of the real shapes), in one process:

- naive (the seed's way): a Dataset holding one tensor per row, a DataLoader with batch
  64 and shuffling, each batch copied to the device, fp32.
- trainer: ``svg_quality.trainer.fit`` - rows resident on the device, batches sliced by a
  shuffled index, the AMP idiom of ``svg_quality.accel`` (bf16/fp16 on CUDA), batch 256.

Prints samples/s of each and the ratio last. Needs only torch and numpy (run with
``PYTHONPATH=src`` on a box where the package is not installed):

    python bench/train_throughput.py --rows 20000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from svg_quality.accel import choose_device, configure_cpu_threads
from svg_quality.config import ModelConfig, TrainConfig
from svg_quality.model import build_model
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


def naive_epoch(x: np.ndarray, y: np.ndarray, device: torch.device, batch_size: int) -> float:
    """One epoch the seed's way; returns seconds (dataset construction excluded)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(), x.shape[1]).to(device)
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


def trainer_epoch(x: np.ndarray, y: np.ndarray, cfg: TrainConfig, val_rows: int) -> float:
    """One epoch through the stage's trainer; returns the seconds of the whole fit() call."""

    class XY:
        def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
            self.x, self.y = a, b

    device = choose_device(cfg.device)
    # burn-in on a slice, as for the naive loop
    fit(XY(x[:1280], y[:1280]), XY(x[:val_rows], y[:val_rows]), ModelConfig(), cfg, progress=False)
    sync(device)
    t0 = time.perf_counter()
    fit(XY(x, y), XY(x[:val_rows], y[:val_rows]), ModelConfig(), cfg, progress=False)
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000, help="training rows")
    ap.add_argument("--features", type=int, default=2056, help="input width (2048 + 8)")
    ap.add_argument("--batch-size", type=int, default=256, help="the trainer's batch size")
    ap.add_argument("--naive-batch-size", type=int, default=64, help="the seed's batch size")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"))
    args = ap.parse_args()

    threads = configure_cpu_threads()
    device = choose_device(args.device)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.features), dtype=np.float32)  # [N, 2056]
    y = rng.random(args.rows, dtype=np.float32)  # [N] SSIM-like targets in [0, 1)
    val_rows = min(1024, args.rows)
    cfg = TrainConfig(
        epochs=1,
        batch_size=args.batch_size,
        warmup_epochs=0,
        patience=0,
        device=args.device,
        amp=args.amp,
    )
    print(f"device {device} threads {threads} rows {args.rows} x {args.features}")

    naive_s = naive_epoch(x, y, device, args.naive_batch_size)
    naive_sps = args.rows / naive_s
    print(
        f"naive   (Dataset per row, DataLoader batch {args.naive_batch_size}, fp32): "
        f"{naive_s:7.2f} s  {naive_sps:10.0f} samples/s"
    )

    ours_s = trainer_epoch(x, y, cfg, val_rows)
    ours_sps = args.rows / ours_s
    print(
        f"trainer (resident tensors, batch {args.batch_size}, amp {args.amp}, incl. setup+val): "
        f"{ours_s:7.2f} s  {ours_sps:10.0f} samples/s"
    )
    print(f"ratio {ours_sps / naive_sps:.2f}x")


if __name__ == "__main__":
    main()
