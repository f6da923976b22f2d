"""Device choice and the one mixed-precision idiom (autocast + GradScaler).

Used by featurize, train, validate and export alike, so the CUDA path (bf16 where
supported, else fp16 with a GradScaler; pinned memory; non-blocking copies) and the
CPU path are the same code. On CPU, autocast is off unless asked for (bf16).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch


def choose_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; asking for ``cuda`` without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device 'cuda' was requested but no CUDA GPU is visible; set the device to 'auto' or 'cpu'"
        )
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is invalid; allowed: auto, cpu, cuda")
    return torch.device(name)


@dataclass(frozen=True)
class Precision:
    """What autocast does on a device: ``dtype`` None means full float32."""

    device: torch.device
    dtype: torch.dtype | None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    @property
    def needs_scaler(self) -> bool:
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range.
        return self.dtype is torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.needs_scaler)


def choose_precision(device: torch.device, amp: str = "auto") -> Precision:
    """``auto``: bf16 on CUDA where supported, else fp16; off on CPU."""
    if amp == "off":
        return Precision(device, None)
    if amp == "auto":
        if device.type != "cuda":
            return Precision(device, None)
        return Precision(
            device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        )
    if amp == "bf16":
        return Precision(device, torch.bfloat16)
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError("amp 'fp16' needs CUDA; on CPU use 'bf16' or 'off'")
        return Precision(device, torch.float16)
    raise ValueError(f"amp {amp!r} is invalid; allowed: auto, off, bf16, fp16")


def cpu_has_native_bf16() -> bool:
    """Whether this x86 CPU computes bf16 in hardware (AVX512-BF16 or AMX), so bf16
    autocast beats fp32 instead of being emulated (used by featurize's inference)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy to ``device``; from pinned host memory the copy overlaps with compute."""
    return t.to(device, non_blocking=device.type == "cuda")


def configure_cpu_threads() -> int:
    """Use every core this process may run on (respecting OMP_NUM_THREADS if set)."""
    if "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(max(1, n))
    return n


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Deterministic kernels (CPU results repeat exactly; CUDA as far as torch allows)."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    # Deterministic mode also NaN-fills every torch.empty() by default: a debugging aid that
    # costs ~2% of a CPU training step; every buffer we allocate is written before it is read.
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = prev_fill
