"""Training throughput: the train stage's trainer vs the original Dataset/DataLoader loop.

Both train the same MLP for one epoch on the same synthetic rows (random tensors of the
real shapes, in logos of ``label.samples_per_image`` sets), in one process:

- naive (the original project's way): a Dataset holding one tensor per row, a DataLoader
  with batch 64 and shuffling, each batch copied to the device, AdamW as the original
  project built it, fp32, plain MSE (each member on its own loss, as the trainer does,
  when the MLP has several).
- trainer: ``svg_quality.trainer.fit`` with the stage's settings (``train`` in
  params.yaml: batch size, fused AdamW, grad clipping, whole-logo batches and the ranking
  loss of ``train.rank_weight``, the AMP idiom of ``svg_quality.accel``: bf16/fp16 on
  CUDA, fp32 on CPU), rows resident on the device, batches sliced by a shuffled index;
  timed including its setup and validation pass.

The pair is timed first on the default model (``model.inputs`` resolved as on the default
data, whose trunk is random-init offline; the members and periodic embedding of
params.yaml), informational, then on the ResNet-only layout's MLP (``model.inputs:
resnet``, 2056 -> 1024 -> 512 -> 256 -> 1; ``--features`` sets its width), whose ratio is
printed last. On 2 CPU cores both are bound by fp32 matrix multiplies (~180 GFLOP/s here);
the naive loop loses most of its time in the unfused optimizer step and small batches.
Needs only torch, numpy and pyyaml (``PYTHONPATH=src`` on a box without the package):

    python bench/train_throughput.py [--rows 20000] [--device cuda]
    python bench/train_throughput.py --smoke     # seconds: 1024 rows, the same code paths
    python bench/train_throughput.py --json bench/results/train_throughput.json  # the record
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from benchjson import Record
from svg_quality.accel import choose_device, configure_cpu_threads
from svg_quality.config import ModelConfig, Params, TrainConfig, load_params
from svg_quality.inputgroups import resolve_inputs
from svg_quality.logostats import STAT_NAMES
from svg_quality.model import RESNET_DIM, InputSpec, build_model
from svg_quality.paramspace import PARAM_NAMES
from svg_quality.probe import PROBE_NAMES
from svg_quality.trainer import fit, per_image
from svg_quality.vtables import COND_NAMES, table_meta

RESNET_ONLY_WIDTH = RESNET_DIM + len(PARAM_NAMES)  # model.inputs=resnet: 2048 features + 8 params
SMOKE_ROWS = 1024


@dataclasses.dataclass(frozen=True)
class Rows:
    """Training rows ``x [N, D]``, targets ``y [N]`` and the logo of each row ``image_id
    [N]`` (the trainer's whole-logo batches need it): what ``trainer.fit`` reads."""

    x: np.ndarray
    y: np.ndarray
    image_id: np.ndarray

    def head(self, n: int) -> Rows:
        return Rows(self.x[:n], self.y[:n], self.image_id[:n])


def synthetic_rows(n: int, width: int, sets_per_logo: int, seed: int = 0) -> Rows:
    """``n`` random rows of the real shape, in logos of ``sets_per_logo`` consecutive rows."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, width), dtype=np.float32)  # [N, width]
    y = rng.random(n, dtype=np.float32)  # [N] SSIM-like targets in [0, 1)
    return Rows(x, y, np.arange(n) // max(1, sets_per_logo))


def resnet_only_model_config(cfg: ModelConfig) -> ModelConfig:
    """The ResNet-only layout's MLP at ``cfg``'s widths (2056 -> 1024 -> 512 -> 256 -> 1 by
    default): one member, no embedding, the raw ResNet block, no input dropout."""
    return dataclasses.replace(
        cfg,
        inputs="resnet",
        probe=False,
        members=1,
        embedding="none",
        resnet_pca=0,
        resnet_dropout=0.0,
        input_dropout=0.0,
    )


def default_layout(params: Params) -> InputSpec:
    """The row layout of the default ``model.inputs`` on the default data (``features.weights:
    auto`` gives a random-init trunk offline); means and stds are placeholders, only the
    layout matters here."""
    weights = "imagenet" if params.features.weights == "imagenet" else "random"
    inputs = resolve_inputs(params.model.inputs, weights, params.model.probe)

    def unit(names: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
        return {"mean": (0.0,) * len(names), "std": (1.0,) * len(names)}

    stats, cond, probe = unit(STAT_NAMES), unit(COND_NAMES), unit(PROBE_NAMES)
    return InputSpec(
        inputs,
        RESNET_DIM,
        STAT_NAMES,
        stats["mean"],
        stats["std"],
        params.vtracer.ranges,
        cond_names=COND_NAMES,
        cond_mean=cond["mean"],
        cond_std=cond["std"],
        probe_mean=probe["mean"],
        probe_std=probe["std"],
        tables=table_meta(),
    )


class RowDataset(Dataset):
    """The original project's dataset: one (x, y) tensor pair per row, collated per batch."""

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


def naive_loss(model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    pred = model(xb)  # [B], or [B, K] in training mode: K members, each on its own loss
    target = yb if pred.dim() == 1 else yb.unsqueeze(-1).expand_as(pred)
    return F.mse_loss(pred, target)


def naive_epoch(
    rows: Rows,
    model_cfg: ModelConfig,
    device: torch.device,
    batch_size: int,
    resnet_width: int = 0,
) -> float:
    """One epoch the original project's way; returns seconds (dataset construction excluded)."""
    torch.manual_seed(0)
    model = build_model(model_cfg, rows.x.shape[1], resnet_width)
    if model.resnet is not None:  # the fixed projection, fitted as trainer.fit does
        model.resnet.fit(per_image(rows, resnet_width))
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = DataLoader(RowDataset(rows.x, rows.y), batch_size=batch_size, shuffle=True)
    model.train()
    # burn-in: a few batches so one-time allocation and kernel selection are not timed
    for i, (xb, yb) in enumerate(loader):
        loss = naive_loss(model, xb.to(device), yb.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i == 4:
            break
    sync(device)
    t0 = time.perf_counter()
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)  # [64, D], [64]
        loss = naive_loss(model, xb, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _ = loss.item()  # the original project accumulated the running loss each batch
    sync(device)
    return time.perf_counter() - t0


def trainer_epoch(
    rows: Rows,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    val_rows: int,
    resnet_width: int = 0,
) -> float:
    """One epoch through the stage's trainer; returns the seconds of the whole fit() call."""
    device = choose_device(cfg.device)
    val = rows.head(val_rows)
    # burn-in on a slice, as for the naive loop
    fit(rows.head(1280), val, model_cfg, cfg, progress=False, resnet_width=resnet_width)
    sync(device)
    t0 = time.perf_counter()
    fit(rows, val, model_cfg, cfg, progress=False, resnet_width=resnet_width)
    sync(device)
    return time.perf_counter() - t0


def compare(
    args: argparse.Namespace,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    width: int,
    label: str,
    sets_per_logo: int,
    resnet_width: int = 0,
) -> list[dict[str, float | int | str]]:
    """Time both loops on ``args.rows`` random rows ``width`` wide; print them and return
    their rows (naive, trainer; the trainer's ``ratio`` over the naive loop's samples/s)."""
    device = choose_device(args.device)
    rows = synthetic_rows(args.rows, width, sets_per_logo)
    val_rows = min(1024, args.rows)
    print(f"-- {label}: {args.rows} rows x {width} inputs on {device}")

    naive_s = naive_epoch(rows, model_cfg, device, args.naive_batch_size, resnet_width)
    naive_sps = args.rows / naive_s
    print(
        f"naive   (Dataset per row, DataLoader batch {args.naive_batch_size}, fp32): "
        f"{naive_s:7.2f} s  {naive_sps:10.0f} samples/s"
    )
    ours_s = trainer_epoch(rows, model_cfg, cfg, val_rows, resnet_width)
    ours_sps = args.rows / ours_s
    print(
        f"trainer (resident tensors, batch {cfg.batch_size}, amp {cfg.amp}, incl. setup+val): "
        f"{ours_s:7.2f} s  {ours_sps:10.0f} samples/s  ({ours_sps / naive_sps:.2f}x)"
    )
    row = {"model": label, "rows": args.rows, "inputs": width}
    return [
        {**row, "loop": "naive", "seconds": naive_s, "samples_per_s": naive_sps},
        {
            **row,
            "loop": "trainer",
            "seconds": ours_s,
            "samples_per_s": ours_sps,
            "ratio": ours_sps / naive_sps,
        },
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=None, help="training rows (default 20000)")
    ap.add_argument(
        "--features", type=int, default=RESNET_ONLY_WIDTH, help="the ResNet-only input width"
    )
    ap.add_argument("--params", default="params.yaml", help="the stage's train/model settings")
    ap.add_argument("--batch-size", type=int, help="the trainer's batch (default: params.yaml)")
    ap.add_argument("--naive-batch-size", type=int, default=64, help="the original batch size")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--amp", help="the trainer's amp (default: params.yaml, i.e. fp32 on CPU)")
    ap.add_argument("--json", default=None, help="also write the record here (benchjson)")
    ap.add_argument("--smoke", action="store_true", help=f"seconds: {SMOKE_ROWS} rows")
    args = ap.parse_args()
    record = Record(Path(__file__).stem)
    args.rows = args.rows or (SMOKE_ROWS if args.smoke else 20_000)

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
    threads = configure_cpu_threads()
    print(f"threads {threads}")
    sets = params.label.samples_per_image
    spec = default_layout(params)
    rows = compare(
        args, params.model, cfg, spec.width, f"default model ({spec.inputs})", sets,
        spec.resnet_width,
    )  # fmt: skip
    resnet_only = resnet_only_model_config(params.model)
    rows += compare(args, resnet_only, cfg, args.features, "the ResNet-only MLP and inputs", sets)
    ratio = rows[-1]["ratio"]
    if args.json:
        title = f"one epoch on {choose_device(args.device)}, {threads} threads"
        label = "samples/s, trainer / naive loop (the ResNet-only MLP)"
        record.write(args.json, {title: rows}, ratio, label)
    print(f"ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
