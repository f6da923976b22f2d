"""Issue 17 row 2: a typo must not silently cost the workspace its outputs.

DVC deletes a stage's outputs before running it. `make repro` checks params.yaml before
DVC can delete anything, and every stage's failure says what DVC removed and how to get
it back. Row 8 (Ctrl-C during label) is here too: it ends with that note, no traceback.
"""

from __future__ import annotations

import copy
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

DVC_YAML = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())


def scratch_repo(root: Path, raw_params: dict[str, Any]) -> Path:
    """dvc.yaml, stages/, src/, artwork/ and Makefile of this repo plus a params.yaml, in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "Makefile"):
        shutil.copy2(REPO_ROOT / name, root / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO_ROOT / "stages", root / "stages", ignore=ignore)
    shutil.copytree(REPO_ROOT / "src", root / "src", ignore=ignore)
    shutil.copytree(REPO_ROOT / "artwork", root / "artwork")  # a prepare dep (vendored sets)
    (root / "params.yaml").write_text(yaml.safe_dump(raw_params, sort_keys=False))
    return root


def bad_params(tiny_params: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(tiny_params)
    raw["train"]["lr"] = float("nan")  # was accepted before issue 17 (row 8)
    return raw


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
    e.update(DVC_NO_ANALYTICS="1", PYTHONPATH=str(REPO_ROOT / "src"))
    return e


def plant_outs(root: Path, stage: str) -> list[Path]:
    """Stand-ins for a previous run's outputs of ``stage`` (what a user stands to lose)."""
    planted = []
    for kind in ("outs", "metrics", "plots"):
        for entry in DVC_YAML["stages"][stage].get(kind, []):
            path = root / (next(iter(entry)) if isinstance(entry, dict) else entry)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix:
                path.write_text("previous run\n")
            else:  # a directory out
                path.mkdir(exist_ok=True)
                (path / "kept.txt").write_text("previous run\n")
            planted.append(path)
    return planted


def test_make_repro_checks_params_before_dvc_deletes_anything(tmp_path, tiny_params) -> None:
    root = scratch_repo(tmp_path / "ws", bad_params(tiny_params))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=root, env=env(), check=True)
    planted = plant_outs(root, "prepare")

    # A plain `dvc repro` runs the `check` stage first (every stage depends on it): it
    # refuses the params before DVC deletes prepare's outputs, and says so.
    res = subprocess.run(
        ["dvc", "repro", "prepare"], cwd=root, env=env(), capture_output=True, text=True
    )
    assert res.returncode != 0
    assert all(p.exists() for p in planted)  # the fault this row was about: gone
    err = res.stderr
    assert "Traceback" not in err and "Running stage 'prepare'" not in res.stdout + err
    assert "check: failed: params.yaml: train.lr = nan is invalid" in err
    assert "nothing was deleted" in err

    # `make repro` (README step 2) refuses before DVC runs: nothing is deleted.
    planted = plant_outs(root, "prepare")
    res = subprocess.run(
        ["make", "-s", "repro"], cwd=root, env=env(), capture_output=True, text=True
    )
    assert res.returncode != 0
    assert "Running stage" not in res.stdout + res.stderr
    assert all(p.exists() for p in planted)
    assert "params.yaml: train.lr = nan is invalid" in res.stderr
    assert "Traceback" not in res.stderr


def stage_argv(stage: str) -> list[str]:
    return [sys.executable, *shlex.split(DVC_YAML["stages"][stage]["cmd"])[1:]]


@pytest.mark.parametrize("stage", ["prepare", "label", "featurize", "train", "validate", "export"])
def test_every_stage_failure_names_what_dvc_removed(tmp_path, tiny_params, stage) -> None:
    root = scratch_repo(tmp_path / "ws", bad_params(tiny_params))
    res = subprocess.run(stage_argv(stage), cwd=root, env=env(), capture_output=True, text=True)
    assert res.returncode == 1
    err = res.stderr
    assert "Traceback" not in err
    assert f"{stage}: failed: params.yaml: train.lr = nan is invalid" in err
    note = next(line for line in err.splitlines() if "DVC removed" in line)
    expected = {
        "prepare": ["data/logos", "data/logos.csv", "reports/prepare/summary.json"],
        "label": ["data/labels.parquet", "reports/label/summary.json"],
        "featurize": ["data/features", "reports/featurize/summary.json"],
        "train": ["models/model.pt", "models/run.json", "reports/train/history.csv"],
        "validate": ["reports/validate/metrics.json", "reports/validate/gates.json"],
        "export": ["models/export", "reports/export/metrics.json"],
    }[stage]
    for path in expected:
        assert path in note, (path, note)
    outs = DVC_YAML["stages"][stage].get("outs", [])
    opts = [next(iter(o.values())) or {} if isinstance(o, dict) else {} for o in outs]
    # A plain `outs:` entry is in DVC's cache unless `cache: false`; `persist` ones stay.
    cached = any(o.get("cache", True) and not o.get("persist") for o in opts)
    assert (f"dvc checkout {stage}" in note) == cached, note


def test_ctrl_c_during_label_ends_without_traceback_and_resumes(tmp_path, tiny_params) -> None:
    from tests.test_label import make_logos

    # ~400 samples on one worker take seconds, so the SIGINT lands mid-run, not after it
    make_logos(tmp_path, per_type=4, size=96)
    raw = copy.deepcopy(tiny_params)
    raw["label"].update(samples_per_image=24, workers=1)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    work = tmp_path / "work"
    cmd = [
        sys.executable,
        str(REPO_ROOT / "stages" / "label.py"),
        "--params",
        str(params),
        "--logos-csv",
        str(tmp_path / "logos.csv"),
        "--logos-dir",
        str(tmp_path / "logos"),
        "--out",
        str(tmp_path / "labels.parquet"),
        "--reports",
        str(tmp_path / "reports"),
        "--work-dir",
        str(work),
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env(), start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if any(f.stat().st_size > 0 for f in work.rglob("*") if f.is_file()):
            break  # some samples are saved
        time.sleep(0.01)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert f"saved, intact, in {work}" in err and "dvc repro label" in err
    assert not (tmp_path / "labels.parquet").exists()

    res = subprocess.run(cmd, cwd=tmp_path, env=env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    summary = yaml.safe_load((tmp_path / "reports" / "summary.json").read_text())
    assert summary["rows"] == 16 * 24 and summary["run"]["reused"] > 0
