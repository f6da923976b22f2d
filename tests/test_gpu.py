"""The CUDA paths: featurize under autocast, train under fp16+GradScaler and bf16, the NaN
guard under AMP, export of a CUDA-trained model, pinned/non-blocking copies.

The train and export tests run twice: a one-member MLP (``mlp``) and the default model
(``default``: params.yaml's model and train sections, so 2 members, the periodic
embedding and the ranking loss on whole-logo batches), shrunk to a few epochs.

All ``gpu``-marked (skipped without CUDA, see tests/conftest.py) except the import check,
which proves that bench/gpu_check.py and these tests need nothing the lent GPU box lacks
(dvc, mlflow, vtracer, resvg_py), and the CPU runs of the bf16 and NaN-guard tests on the
default model, which keep those code paths checked on any machine. Run on a GPU box with
``bash bench/gpu_check.sh``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
ABSENT_ON_GPU_BOX = ("dvc", "mlflow", "vtracer", "resvg_py")

# Relative L2 error of the features against CPU fp32, over all rows. bf16 keeps 8 mantissa
# bits (the same bound as the CPU bf16 test in test_features.py), fp16 keeps 11.
FEATURE_TOL = {"bf16": 0.03, "fp16": 0.01}


MODELS = ("mlp", "default")  # the one-member MLP, params.yaml's model (see _cfgs)
ROWS_PER_LOGO = 8
# Both models on CUDA; on CPU only the default one (test_train.py runs the one-member
# MLP's bf16 and NaN-guard checks on CPU) and only bf16 (fp16 autocast is CUDA only).
BF16_RUNS = [pytest.param("cuda", k, marks=pytest.mark.gpu, id=f"cuda-{k}") for k in MODELS]
BF16_RUNS.append(pytest.param("cpu", "default", id="cpu-default"))
NAN_RUNS = [
    pytest.param("cuda", k, amp, marks=pytest.mark.gpu, id=f"{amp}-cuda-{k}")
    for k in MODELS
    for amp in ("bf16", "fp16")
]
NAN_RUNS.append(pytest.param("cpu", "default", "bf16", id="bf16-cpu-default"))


class _XY:
    def __init__(self, x: np.ndarray, y: np.ndarray, image_id: np.ndarray) -> None:
        self.x, self.y, self.image_id = x, y, image_id

    def __len__(self) -> int:
        return len(self.y)


def _rows(n: int, d: int, seed: int) -> _XY:
    """A learnable regression task: y depends on the first columns; rows come in logos of
    ``ROWS_PER_LOGO`` (``image_id``), for the whole-logo batches of the ranking loss."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)  # [n, d]
    y = (0.5 + 0.1 * np.tanh(x[:, 0] - x[:, 1] + 0.5 * x[:, 2])).astype(np.float32)  # [n]
    image_id = np.array([f"{seed}-{i // ROWS_PER_LOGO}" for i in range(n)])  # [n]
    return _XY(x, y, image_id)


def _cfgs(model: str = "mlp", device: str = "cuda", **kw: Any) -> tuple[Any, Any]:
    """(ModelConfig, TrainConfig): ``mlp``, a one-member MLP with plain MSE; ``default``,
    params.yaml's model and train sections (model.members auto -> 2, model.embedding
    auto -> periodic, train.rank_weight on whole-logo batches) on the stats inputs, with
    the hidden widths / 16 on CPU. Both: ``kw`` over a few epochs on ``device``."""
    from svg_quality.config import ModelConfig, TrainConfig, load_params

    base = {"epochs": 3, "batch_size": 32, "warmup_epochs": 0, "device": device, "patience": 0}
    if model == "mlp":
        mlp = ModelConfig(inputs="stats", hidden=(32, 16), dropout=(0.1, 0.0))
        return mlp, TrainConfig(**{**base, **kw})
    params = load_params(REPO_ROOT / "params.yaml")
    cfg = dataclasses.replace(params.model, inputs="stats", probe=False)
    if device == "cpu":  # the same architecture, narrower: seconds on 2 busy cores
        cfg = dataclasses.replace(cfg, hidden=tuple(w // 16 for w in cfg.hidden))
    return cfg, dataclasses.replace(params.train, resume=False, **{**base, **kw})


@contextlib.contextmanager
def _cpu_threads(device: str) -> Iterator[None]:
    """One torch thread for a CPU run: these small batches gain nothing from a second,
    and on 2 busy cores two OpenMP threads spin against the load."""
    before = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_default(
    model: torch.nn.Module, cfg: Any, ranked: list[tuple[tuple[int, ...], bool]]
) -> None:
    """The default model trained as configured: 2 members, the periodic embedding, and
    the ranking loss called on every batch with the members' ``[B, 2]`` predictions, each
    batch holding whole logos."""
    assert model.members == 2 and model.embed is not None
    assert cfg.rank_weight > 0 and cfg.logo_batches
    assert ranked and all(shape[1:] == (2,) and whole for shape, whole in ranked), ranked[:3]


def _spy_rank(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[int, ...], bool]]:
    """Record each ranking-loss call: the predictions' shape and whether its batch holds
    whole logos, one after another (the tests' batches are multiples of ``ROWS_PER_LOGO``
    rows, so every logo in a batch has all its rows there)."""
    import svg_quality.trainer as trainer

    calls: list[tuple[tuple[int, ...], bool]] = []
    real = trainer.within_group_rank

    def spy(pred: torch.Tensor, target: torch.Tensor, group: torch.Tensor, tau: float) -> Any:
        runs = torch.unique_consecutive(group, return_counts=True)[1]  # rows per logo run
        whole = runs.numel() == group.unique().numel() and bool((runs == ROWS_PER_LOGO).all())
        calls.append((tuple(pred.shape), whole))
        return real(pred, target, group, tau)

    monkeypatch.setattr(trainer, "within_group_rank", spy)
    return calls


@pytest.fixture(scope="module")
def synthetic_logos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from svg_quality.config import LOGO_TYPES
    from svg_quality.synthetic import generate

    out = tmp_path_factory.mktemp("gpu_logos")
    paths = []
    for i in range(8):
        path = out / f"{i}.png"
        generate(LOGO_TYPES[i % len(LOGO_TYPES)], 0, i).convert("RGB").save(path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- import check


def test_gpu_check_imports_nothing_the_gpu_box_lacks() -> None:
    """Import every module bench/gpu_check.py and the gpu tests use, with the packages the
    GPU box lacks blocked by a meta-path finder, in a fresh interpreter."""
    code = textwrap.dedent(
        f"""
        import importlib, sys
        BLOCKED = {ABSENT_ON_GPU_BOX!r}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is blocked: the GPU box has no {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        sys.path[:0] = [{str(REPO_ROOT / "src")!r}, {str(REPO_ROOT / "bench")!r}, {str(REPO_ROOT)!r}]
        for mod in (
            "gpu_check", "featurize_throughput", "train_throughput",
            "svg_quality.trainer", "svg_quality.dataset", "svg_quality.features",
            "svg_quality.serving.writers", "svg_quality.serving.runtime",
            "svg_quality.serving.parity", "tests.test_gpu", "tests.test_train",
        ):
            importlib.import_module(mod)
        try:
            import mlflow
        except ImportError:
            pass
        else:
            raise SystemExit("the blocker did not block mlflow")
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        if leaked:
            raise SystemExit(f"imported anyway: {{leaked}}")
        print("imports ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("imports ok")


# --------------------------------------------------------------------------- featurize


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_featurize_cuda_matches_cpu_fp32(synthetic_logos: list[Path], amp: str) -> None:
    from svg_quality.accel import Precision, choose_precision
    from svg_quality.backbone import load_backbone, prepare_for_inference
    from svg_quality.features import extract

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    trunk, _ = load_backbone("random", seed=0)
    ref = extract(
        synthetic_logos, prepare_for_inference(trunk, cpu), device=cpu,
        precision=Precision(cpu, None), batch_size=4, progress=False,
    )  # fmt: skip
    precision = choose_precision(cuda, amp)
    got = extract(
        synthetic_logos, prepare_for_inference(trunk, cuda), device=cuda, precision=precision,
        batch_size=4, num_workers=2, progress=False,
    )  # fmt: skip
    assert precision.name == amp and got.features.dtype == np.float32
    assert np.isfinite(got.features).all()
    err = np.linalg.norm(got.features - ref.features) / np.linalg.norm(ref.features)
    assert 0 < err < FEATURE_TOL[amp], f"{amp}: relative error {err:.4f}"
    np.testing.assert_array_equal(got.stats, ref.stats)  # statistics are CPU work either way


@pytest.mark.gpu
def test_featurize_batches_are_pinned_and_copied_non_blocking(
    synthetic_logos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import svg_quality.features as features
    from svg_quality.accel import choose_precision, to_device
    from svg_quality.backbone import load_backbone, prepare_for_inference

    cuda = torch.device("cuda")
    seen: list[tuple[bool, str]] = []

    def recording(t: torch.Tensor, device: torch.device) -> torch.Tensor:
        out = to_device(t, device)
        seen.append((t.is_pinned(), out.device.type))
        return out

    monkeypatch.setattr(features, "to_device", recording)
    trunk, _ = load_backbone("random", seed=0)
    features.extract(
        synthetic_logos, prepare_for_inference(trunk, cuda), device=cuda,
        precision=choose_precision(cuda, "auto"), batch_size=4, num_workers=2, progress=False,
    )  # fmt: skip
    assert seen == [(True, "cuda")] * 2  # 8 images, batch 4: every host batch page-locked

    # The copy from pinned memory is asynchronous: queued behind a busy stream, it returns
    # before the stream is done (a blocking copy would wait for the stream first).
    big = torch.empty(16 * 2**20, dtype=torch.uint8).pin_memory()
    assert big.is_pinned()
    torch.cuda.synchronize()
    torch.cuda._sleep(2_000_000_000)  # keep the stream busy (~1 s of GPU cycles)
    out = to_device(big, cuda)
    assert not torch.cuda.current_stream().query(), "to_device blocked the host"
    torch.cuda.synchronize()
    assert out.is_cuda and torch.equal(out.cpu(), big)


# --------------------------------------------------------------------------- train


@pytest.mark.gpu
@pytest.mark.parametrize("kind", MODELS)
def test_train_fp16_uses_a_grad_scaler(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from svg_quality.checkpoints import load_checkpoint
    from svg_quality.model import build_model
    from svg_quality.trainer import fit

    model_cfg, cfg = _cfgs(kind, amp="fp16", epochs=4)
    ranked = _spy_rank(monkeypatch)
    dtypes: set[torch.dtype] = set()
    torch.manual_seed(0)
    model = build_model(model_cfg, 12)
    model.net[0].register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))
    res = fit(
        _rows(256, 12, 0), _rows(64, 12, 1), model_cfg, cfg,
        model=model, checkpoint_dir=tmp_path, progress=False,
    )  # fmt: skip
    assert res.device.startswith("cuda") and res.precision == "fp16"
    assert torch.float16 in dtypes
    losses = [h["train_loss"] for h in res.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    scaler = load_checkpoint(tmp_path / "last.pt")["scaler"]
    assert scaler and scaler["scale"] > 0  # an enabled GradScaler saved its state
    assert res.history[-1]["peak_gpu_mem_mb"] > 0
    if kind == "default":
        _check_default(res.model, cfg, ranked)


@pytest.mark.parametrize(("device", "kind"), BF16_RUNS)
def test_train_bf16(
    tmp_path: Path, device: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bf16 autocast, no loss scaling; on CPU too (the same autocast, members, embedding
    and ranking-loss code, so it is checked on machines without a GPU)."""
    from svg_quality.checkpoints import load_checkpoint
    from svg_quality.model import build_model
    from svg_quality.trainer import fit

    model_cfg, cfg = _cfgs(kind, device, amp="bf16", epochs=4)
    ranked = _spy_rank(monkeypatch)
    torch.manual_seed(0)
    model = build_model(model_cfg, 12)
    dtypes: set[torch.dtype] = set()
    model.net[0].register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))
    with _cpu_threads(device):
        res = fit(
            _rows(256, 12, 0), _rows(64, 12, 1), model_cfg, cfg,
            model=model, checkpoint_dir=tmp_path, progress=False,
        )  # fmt: skip
    assert res.device.startswith(device)
    assert res.precision == "bf16" and dtypes == {torch.bfloat16}
    losses = [h["train_loss"] for h in res.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert not load_checkpoint(tmp_path / "last.pt")["scaler"]  # bf16: no loss scaling
    if kind == "default":
        _check_default(res.model, cfg, ranked)


@pytest.mark.parametrize(("device", "kind", "amp"), NAN_RUNS)
def test_nan_guard_under_amp(device: str, kind: str, amp: str) -> None:
    from svg_quality.model import build_model
    from svg_quality.trainer import NonFiniteLossError, fit

    model_cfg, cfg = _cfgs(kind, device, amp=amp, batch_size=64)
    torch.manual_seed(0)
    model = build_model(model_cfg, 12)
    calls = {"n": 0}

    def poison(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        if module.training:
            calls["n"] += 1
            if calls["n"] == 6:  # 4 batches per epoch -> epoch 2, batch 2
                return output * float("nan")
        return output

    model.net[0].register_forward_hook(poison)
    with (
        _cpu_threads(device),
        pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 2 \(of 4\)"),
    ):
        fit(_rows(256, 12, 0), _rows(64, 12, 1), model_cfg, cfg, model=model, progress=False)


# --------------------------------------------------------------------------- export


@pytest.mark.gpu
@pytest.mark.parametrize("kind", MODELS)
def test_export_parity_of_a_cuda_trained_model(tmp_path: Path, kind: str) -> None:
    from svg_quality.inputspec import InputSpec
    from svg_quality.model import load_model, model_meta, save_model
    from svg_quality.serving.runtime import FILES, ort_session
    from svg_quality.serving.writers import write_formats
    from svg_quality.trainer import fit, predict
    from tests.export_fixtures import repo_ranges

    spec = InputSpec(
        inputs="stats", resnet_dim=2048, stat_names=tuple(f"s{i}" for i in range(4)),
        stats_mean=(0.0,) * 4, stats_std=(1.0,) * 4, ranges=repo_ranges(),
    )  # fmt: skip
    model_cfg, cfg = _cfgs(kind, amp="auto")
    res = fit(_rows(256, spec.width, 0), _rows(64, spec.width, 1), model_cfg, cfg, progress=False)
    assert next(res.model.parameters()).is_cuda
    meta = model_meta(model_cfg, spec)
    save_model(tmp_path / "model.pt", res.model, meta)  # what the train stage writes
    mlp, loaded_meta = load_model(tmp_path / "model.pt")  # what the export stage reads (CPU)
    x = _rows(37, spec.width, 2).x
    write_formats(
        tmp_path / "export", mlp, None, spec, {"note": "cuda"}, model_meta=loaded_meta,
        opset=18, example_rows=x, formats=("state_dict", "onnx_mlp"),
    )  # fmt: skip
    onnx_out = ort_session(tmp_path / "export" / FILES["onnx_mlp"]).run(["ssim"], {"features": x})[
        0
    ]
    cuda_out = predict(res.model, x)  # fp32 on the GPU, the trained weights as they are
    cpu_out = predict(mlp, x)
    np.testing.assert_allclose(onnx_out.reshape(-1), cpu_out, atol=1e-5)
    np.testing.assert_allclose(onnx_out.reshape(-1), cuda_out, atol=1e-4)
