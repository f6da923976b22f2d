"""Featurize throughput: the stage's extractor vs the original per-image loop, same images.

Seed (the original project's way): for each image, PIL open, Resize(224), CenterCrop(224),
ToTensor, Normalize, a batch of one through the same ResNet-50 trunk in fp32. Stage:
svg_quality.features.extract - DataLoader workers decode and letterbox in parallel (and
compute the logo statistics, as the stage does; --no-stats to leave them out), batched,
channels_last, inference_mode, autocast on CUDA, pinned memory. Both use the same weights (random: speed does not
depend on them). Prints both rates and, last, ``ratio X.XXx``.

Needs only torch, torchvision, numpy, pillow and tqdm (no install: src/ is put on the path).

    python bench/featurize_throughput.py                      # CPU, 96 generated logos
    python bench/featurize_throughput.py --device cuda --n 4096 --baseline-n 512
    python bench/featurize_throughput.py --data-dir data/logos --n 128
    python bench/featurize_throughput.py --smoke              # seconds: 4 images, batch 2
    python bench/featurize_throughput.py --json bench/results/featurize_throughput.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchjson import Record
from svg_quality.accel import choose_device, configure_cpu_threads
from svg_quality.backbone import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_backbone,
    prepare_for_inference,
)
from svg_quality.features import (
    choose_inference_precision,
    extract,
    resolve_workers,
)


def make_logos(n: int, out: Path, seed: int = 0) -> list[Path]:
    """``n`` simple logo-like PNGs (shapes and a word on white), longest side 256."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        w, h = (256, int(rng.integers(64, 257))) if rng.random() < 0.6 else (256, 256)
        if rng.random() < 0.3:
            w, h = h, w
        img = Image.new("RGB", (w, h), "white")
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 6))):
            x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
            x1, y1 = int(rng.integers(x0 + 4, w)), int(rng.integers(y0 + 4, h))
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=color)
        draw.text((8, h // 2), "LOGO", fill=(0, 0, 0))
        path = out / f"{i:05d}.png"
        img.save(path)
        paths.append(path)
    return paths


def seed_loop(paths: list[Path], model: torch.nn.Module, device: torch.device) -> float:
    """The original project's way; returns seconds."""
    import torchvision.transforms as T

    tf = T.Compose(
        [T.Resize(224), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    start = time.perf_counter()
    with torch.no_grad():
        for p in paths:
            x = tf(Image.open(p).convert("RGB")).unsqueeze(0).to(device)  # [1, 3, 224, 224]
            model(x).cpu().numpy()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--n", type=int, default=96, help="images for the stage's extractor")
    ap.add_argument("--baseline-n", type=int, default=None, help="images for the seed loop (<= n)")
    ap.add_argument("--data-dir", type=Path, default=None, help="PNGs to use (else generated)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", default="auto", help="DataLoader workers (auto = cores, max 8)")
    ap.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"))
    ap.add_argument("--no-stats", action="store_true", help="leave out the logo statistics")
    ap.add_argument("--json", default=None, help="also write the record here (benchjson)")
    ap.add_argument(
        "--smoke", action="store_true", help="seconds: --n 4 --baseline-n 2 --batch-size 2"
    )
    args = ap.parse_args()
    record = Record(Path(__file__).stem)
    if args.smoke:
        args.n, args.baseline_n, args.batch_size = 4, 2, 2

    device = choose_device(args.device)
    precision = choose_inference_precision(device, args.amp)
    workers = resolve_workers(args.workers if args.workers == "auto" else int(args.workers))
    if device.type == "cpu":
        configure_cpu_threads()
    with tempfile.TemporaryDirectory() as tmp:
        if args.data_dir is not None:
            found = sorted(args.data_dir.glob("*.png"))
            if not found:
                raise SystemExit(f"{args.data_dir}: no .png files")
            paths = [found[i % len(found)] for i in range(args.n)]
        else:
            paths = make_logos(args.n, Path(tmp))
        base_paths = paths[: args.baseline_n or args.n]

        trunk, _ = load_backbone("random", seed=0)
        seed_model = copy.deepcopy(trunk).eval().to(device)
        model = prepare_for_inference(trunk, device)
        run = {"device": device, "precision": precision, "batch_size": args.batch_size}

        # Warm-up: kernel selection, allocator, CUDA context - outside the timings.
        seed_loop(base_paths[:2], seed_model, device)
        extract(paths[: args.batch_size], model, **run, num_workers=0, progress=False)

        t_seed = seed_loop(base_paths, seed_model, device)
        res = extract(
            paths, model, **run, num_workers=workers, with_stats=not args.no_stats, progress=False
        )

    seed_rate = len(base_paths) / t_seed
    stage_rate = res.images_per_s
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    setup = (
        f"threads {torch.get_num_threads()}, workers {workers}, batch {args.batch_size}, "
        f"autocast {precision.name}, stats {'off' if args.no_stats else 'on'}"
    )
    print(f"device {device} ({name})")
    print(setup)
    print(
        f"seed loop (batch 1, Resize+CenterCrop): {len(base_paths)} images, {seed_rate:.1f} images/s"
    )
    print(f"stage extractor: {len(paths)} images, {stage_rate:.1f} images/s")
    ratio = stage_rate / seed_rate
    if args.json:
        rows = [
            {"path": "seed loop (batch 1)", "images": len(base_paths), "images_per_s": seed_rate},
            {"path": "stage extractor", "images": len(paths), "images_per_s": stage_rate},
        ]
        title = f"device {device} ({name}); {setup}"
        record.write(args.json, {title: rows}, ratio, "images/s, stage extractor / seed loop")
    print(f"ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
