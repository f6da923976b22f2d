"""Featurize: preprocessing, weights resolution, extraction, the incremental cache, the stage.

ResNet-50 on CPU is ~0.1 s per image, so every test uses a handful of tiny logos.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from svg_quality.accel import Precision, cpu_has_native_bf16
from svg_quality.backbone import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    WeightsUnavailable,
    letterbox,
    load_backbone,
    prepare_for_inference,
    preprocess,
    resnet50_trunk,
    to_tensor,
)
from svg_quality.config import load_params
from svg_quality.features import (
    extract,
    featurize,
    logo_paths,
    read_logo_ids,
)
from svg_quality.images import load_rgb, png_bytes
from svg_quality.io import image_id_for
from svg_quality.logostats import STAT_NAMES, compute_stats
from svg_quality.vtables import TABLE_WIDTH, compute_tables, table_meta

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


# --------------------------------------------------------------------------- fixtures


def make_logos(folder: Path, n: int, start: int = 0) -> list[str]:
    """``n`` small distinct logos saved as <image_id>.png; returns their ids."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(start, start + n):
        img = Image.new("RGB", (64 + 16 * (i % 3), 48), "white")
        draw = ImageDraw.Draw(img)
        draw.ellipse((4 + i, 4, 40, 40), fill=(40 * i % 256, 90, 200))
        draw.rectangle((30, 10 + i, 60, 30), fill=(0, 0, 0))
        data = png_bytes(img)
        image_id = image_id_for(data)
        (folder / f"{image_id}.png").write_bytes(data)
        ids.append(image_id)
    return ids


def write_logos_csv(path: Path, ids: list[str]) -> Path:
    rows = ["image_id,path,logo_type,source,width,height,split"]
    rows += [f"{i},{i}.png,simple,test,64,48,train" for i in ids]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def logos(tmp_path_factory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("logos")
    return folder, make_logos(folder, 5)


@pytest.fixture(scope="module")
def random_trunk():
    model, info = load_backbone("random", seed=0)
    return prepare_for_inference(model, CPU), info


@pytest.fixture
def cfg():
    """The real params.yaml features section, shrunk: random weights, tiny batches, CPU."""
    real = load_params(ROOT / "params.yaml").features
    return dataclasses.replace(real, weights="random", batch_size=2, num_workers=0, device="cpu")


def internet_reachable() -> bool:
    try:
        socket.create_connection(("download.pytorch.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- preprocessing


def test_letterbox_keeps_the_whole_wide_logo():
    img = Image.new("RGB", (400, 100), (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 12, 100))  # red left end
    img.paste((0, 0, 255), (388, 0, 400, 100))  # blue right end
    out = np.asarray(letterbox(img))
    assert out.shape == (224, 224, 3)
    mid = 112
    assert tuple(out[mid, 1]) == pytest.approx((255, 0, 0), abs=8)  # left extreme survives
    assert tuple(out[mid, 222]) == pytest.approx((0, 0, 255), abs=8)  # right extreme survives
    assert (out[:80] == 255).all() and (out[-80:] == 255).all()  # white letterbox bands
    # A tall logo keeps its top and bottom the same way.
    tall = np.asarray(letterbox(img.rotate(90, expand=True)))
    assert (tall[:, :80] == 255).all() and tuple(tall[1, mid]) == pytest.approx((0, 0, 255), abs=8)


def test_letterbox_composites_transparency_on_white():
    img = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    img.paste((0, 0, 0, 255), (20, 20, 30, 30))
    out = np.asarray(letterbox(img))
    assert (out[:50] == 255).all() and out[112, 112].max() < 10


def test_to_tensor_normalizes_like_imagenet():
    x = to_tensor(letterbox(Image.new("RGB", (30, 60), "white")))
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    white = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(x[:, 0, 0], white)
    torch.testing.assert_close(preprocess(Image.new("RGB", (30, 60), "white")), x)


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize("weights", ["imagenet", "auto"])
def test_missing_weights_file_is_a_clear_error(tmp_path, weights):
    missing = tmp_path / "nope" / "resnet50.pth"
    with pytest.raises(FileNotFoundError, match=r"features\.weights_path.*nope/resnet50\.pth"):
        load_backbone(weights, missing)


def test_imagenet_weights_from_a_local_file(tmp_path):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        state = resnet50_trunk().state_dict()
    state["fc.weight"] = torch.randn(1000, 2048)  # a full torchvision state dict has a head
    state["fc.bias"] = torch.randn(1000)
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)

    model, info = load_backbone("imagenet", path)
    assert (info.requested, info.used, info.source) == ("imagenet", "imagenet", f"file:{path}")
    loaded = model.state_dict()
    assert set(loaded) == set(state) - {"fc.weight", "fc.bias"}
    for name, tensor in loaded.items():
        assert torch.equal(tensor, state[name]), name
    assert info.digest != load_backbone("random", seed=0)[1].digest

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        load_backbone("imagenet", tmp_path / "junk.pth")


@pytest.mark.skipif(internet_reachable(), reason="this machine can download the weights")
def test_offline_imagenet_fails_cleanly_and_auto_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    with pytest.raises(WeightsUnavailable, match=str(tmp_path)):
        load_backbone("imagenet")
    with pytest.warns(RuntimeWarning, match="RANDOM WEIGHTS"):
        _, info = load_backbone("auto", seed=0)
    assert (info.requested, info.used, info.source) == ("auto", "random", "seed:0")


def test_random_weights_are_seeded(random_trunk):
    _, info = random_trunk
    _, info_again = load_backbone("random", seed=0)
    assert info_again.digest == info.digest
    assert load_backbone("random", seed=1)[1].digest != info.digest
    # Seeding does not disturb the global RNG stream.
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    load_backbone("random", seed=0)
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------- extraction


def test_extract_shapes_and_worker_statistics(logos, random_trunk):
    folder, ids = logos
    paths = logo_paths(ids[:3], folder)
    model, _ = random_trunk
    res = extract(
        paths, model, device=CPU, precision=Precision(CPU, None), batch_size=2, num_workers=2
    )
    assert res.features.shape == (3, 2048) and res.features.dtype == np.float32
    assert np.isfinite(res.features).all() and res.features.std() > 0
    assert res.stats.shape == (3, len(STAT_NAMES)) and res.stats.dtype == np.float32
    for row, path in enumerate(paths):  # workers computed the same statistics, in order
        np.testing.assert_array_equal(res.stats[row], compute_stats(load_rgb(path)))
    # Deterministic: the same weights and images give identical features.
    again = extract(paths, model, device=CPU, precision=Precision(CPU, None), progress=False)
    np.testing.assert_array_equal(again.features, res.features)
    # Batching does not change a row: one image alone gives the same features.
    one = extract(paths[1:2], model, device=CPU, precision=Precision(CPU, None), progress=False)
    np.testing.assert_allclose(one.features[0], res.features[1], rtol=1e-4, atol=1e-4)


def test_bf16_autocast_on_cpu(logos, random_trunk):
    folder, ids = logos
    paths = logo_paths(ids[:2], folder)
    model, _ = random_trunk
    fp32 = extract(paths, model, device=CPU, precision=Precision(CPU, None), progress=False)
    bf16 = extract(
        paths, model, device=CPU, precision=Precision(CPU, torch.bfloat16), progress=False
    )
    assert bf16.features.dtype == np.float32  # stored float32 whatever the compute dtype
    err = np.linalg.norm(bf16.features - fp32.features) / np.linalg.norm(fp32.features)
    assert 0 < err < 0.03


# --------------------------------------------------------------------------- cache and stage


def read_out(out: Path) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    index = (out / "index.csv").read_text().split()
    assert index[0] == "image_id,row"
    ids = [line.split(",")[0] for line in index[1:]]
    assert [int(line.split(",")[1]) for line in index[1:]] == list(range(len(ids)))
    meta = json.loads((out / "meta.json").read_text())
    return np.load(out / "features.npy"), np.load(out / "stats.npy"), ids, meta


def test_cache_reuses_rows_and_follows_logos_csv(tmp_path, logos, cfg):
    folder, ids = logos
    out, work = tmp_path / "features", tmp_path / "work"
    first = featurize(cfg, ids[:3], folder, out, work_dir=work, progress=False)
    assert (first["computed"], first["reused"], first["images"]) == (3, 0, 3)
    assert first["tables_computed"] == 3
    f1, s1, order, meta = read_out(out)
    assert order == ids[:3] and f1.shape == (3, 2048) and s1.shape == (3, len(STAT_NAMES))
    assert meta["weights"]["used"] == "random" and meta["stat_names"] == list(STAT_NAMES)
    assert meta["input_size"] == 224 and meta["preprocessing"]["name"] == "letterbox"
    t1 = np.load(out / "tables.npy")
    assert t1.shape == (3, TABLE_WIDTH) and meta["tables"] == table_meta()
    for row, i in enumerate(ids[:3]):  # the workers' tables are compute_tables' own
        np.testing.assert_array_equal(t1[row], compute_tables(load_rgb(folder / f"{i}.png")))

    # The out is not the cache: DVC deletes a plain out before running the stage.
    shutil.rmtree(out)
    second = featurize(cfg, ids[:3], folder, out, work_dir=work, progress=False)
    assert (second["computed"], second["reused"], second["stats_computed"]) == (0, 3, 0)
    assert second["tables_computed"] == 0
    assert (out / "features.npy").read_bytes() == _npy_bytes(f1)
    assert (out / "tables.npy").read_bytes() == _npy_bytes(t1)

    # Drop the first logo, add two: only the two new rows are computed, in logos.csv order.
    third = featurize(cfg, [ids[3], *ids[1:3], ids[4]], folder, out, work_dir=work, progress=False)
    assert (third["computed"], third["reused"], third["dropped"]) == (2, 2, 1)
    f3, s3, order3, _ = read_out(out)
    assert order3 == [ids[3], ids[1], ids[2], ids[4]]
    np.testing.assert_array_equal(f3[1:3], f1[1:3])
    np.testing.assert_array_equal(s3[1:3], s1[1:3])
    # The dropped logo's rows stay in the work dir: bringing it back computes nothing.
    fourth = featurize(cfg, ids[:3], folder, out, work_dir=work, progress=False)
    assert (fourth["computed"], fourth["reused"]) == (0, 3)
    np.testing.assert_array_equal(read_out(out)[0], f1)

    # Without a work dir nothing is reused.
    fresh = featurize(cfg, ids[:2], folder, tmp_path / "f2", progress=False)
    assert (fresh["computed"], fresh["reused"]) == (2, 0)


def test_stale_statistics_recompute_only_statistics(tmp_path, logos, cfg, monkeypatch):
    import svg_quality.features as features

    folder, ids = logos
    out, work = tmp_path / "features", tmp_path / "work"
    featurize(cfg, ids[:2], folder, out, work_dir=work, progress=False)
    f1, s1, _, _ = read_out(out)
    t1 = np.load(out / "tables.npy")
    monkeypatch.setattr(features, "STATS_VERSION", features.STATS_VERSION + 1)
    summary = featurize(cfg, ids[:2], folder, out, work_dir=work, progress=False)
    assert (summary["computed"], summary["stats_computed"], summary["tables_computed"]) == (0, 2, 0)
    f2, s2, _, _ = read_out(out)
    np.testing.assert_array_equal(f2, f1)
    np.testing.assert_array_equal(s2, s1)
    np.testing.assert_array_equal(np.load(out / "tables.npy"), t1)

    # A damaged cache is ignored, loudly, and rebuilt.
    for rows in work.glob("features-*/rows.npy"):
        rows.write_bytes(b"not an npy file")
    with pytest.warns(UserWarning, match="damaged feature cache"):
        rebuilt = featurize(cfg, ids[:2], folder, out, work_dir=work, progress=False)
    assert rebuilt["computed"] == 2
    np.testing.assert_array_equal(read_out(out)[0], f1)


def test_input_errors_name_the_problem(tmp_path, logos):
    folder, ids = logos
    with pytest.raises(FileNotFoundError, match="0000000000000000.png"):
        logo_paths([ids[0], "0000000000000000"], folder)
    dup = write_logos_csv(tmp_path / "dup.csv", [ids[0], ids[0]])
    with pytest.raises(ValueError, match="listed twice"):
        read_logo_ids(dup)


def test_stage_script_end_to_end(tmp_path, logos):
    folder, ids = logos
    params = (ROOT / "params.yaml").read_text()
    params = params.replace("weights: auto ", "weights: random ").replace(
        "num_workers: auto ", "num_workers: 1 "
    )
    assert "weights: random" in params and "num_workers: 1" in params
    (tmp_path / "params.yaml").write_text(params)
    csv_path = write_logos_csv(tmp_path / "logos.csv", ids[:2])
    report = tmp_path / "reports" / "summary.json"
    cmd = [sys.executable, str(ROOT / "stages" / "featurize.py"), "--params", "params.yaml"]
    cmd += ["--logos-csv", str(csv_path), "--logos-dir", str(folder)]
    cmd += ["--out", "data/features", "--report", str(report)]
    cmd += ["--work-dir", "data/.features_work"]
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, text=True)
    summary = json.loads(report.read_text())
    assert summary["images"] == 2 and summary["computed"] == 2 and summary["weights"] == "random"
    expected = "bf16" if cpu_has_native_bf16() else "fp32"  # features.amp: auto
    assert summary["device"] == "cpu" and summary["dtype"] == expected
    assert summary["images_per_s"] > 0
    assert read_out(tmp_path / "data" / "features")[2] == ids[:2]
    assert len(list((tmp_path / "data" / ".features_work").glob("*-*/rows.npy"))) == 3


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()
