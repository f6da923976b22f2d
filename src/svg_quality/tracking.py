"""MLflow access in one place: tracking URI, experiment, the per-model run.

One MLflow run per trained model (DESIGN.md): the train stage opens it and writes
its id to ``models/run.json``; validate and export log into that same run.
mlflow is imported lazily so library modules that do not track stay light.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svg_quality.config import TrackingConfig
from svg_quality.io import write_json

if TYPE_CHECKING:
    import mlflow

# Keep stage output clean: MLflow otherwise prints the run's URL on every run end.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "1")


def repo_root() -> Path:
    """The DVC repository root: ``DVC_ROOT`` (set by DVC for stage commands), else the cwd."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def resolve_tracking_uri(cfg: TrackingConfig, root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI``, else ``tracking.uri``, else an absolute SQLite file in the repo.

    The default is absolute so that a stage run from a temporary experiment folder
    still logs to the workspace's database.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if cfg.uri:
        return cfg.uri
    root = root or repo_root()
    return f"sqlite:///{root / 'mlflow.db'}"


def check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URI and the fix, when an HTTP tracking server is unreachable."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(
            f"MLflow tracking server {uri} is unreachable ({exc}). Start it (`make mlflow-server`) "
            "or unset MLFLOW_TRACKING_URI to log to the local sqlite:///<repo>/mlflow.db"
        ) from exc


def setup(cfg: TrackingConfig) -> str:
    """Point MLflow at the resolved URI and make sure the experiment exists; returns its id."""
    import mlflow

    uri = resolve_tracking_uri(cfg)
    check_server(uri)
    mlflow.set_tracking_uri(uri)
    exp_id = get_or_create_experiment(cfg.experiment)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def get_or_create_experiment(name: str) -> str:
    """Robust to concurrent creators (queued `dvc exp` runs): never falls back to Default."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    for _ in range(5):
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        try:
            return client.create_experiment(name)
        except MlflowException:
            continue  # somebody else created it between our get and create; get it again
    raise RuntimeError(f"could not get or create MLflow experiment {name!r}")


def git_commit(root: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root or repo_root(),
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_tags() -> dict[str, str]:
    """Provenance tags every model run carries."""
    tags = {}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git_commit"] = commit
    for env, tag in (
        ("DVC_EXP_NAME", "dvc_exp_name"),
        ("DVC_EXP_BASELINE_REV", "dvc_exp_baseline_rev"),
    ):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags


def write_run_json(path: str | Path, run: mlflow.entities.Run, uri: str) -> None:
    write_json(
        path,
        {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "tracking_uri": uri,
        },
    )


def read_run_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training run recorded; run `dvc repro train` first")
    return json.loads(path.read_text())


@contextlib.contextmanager
def resume_run(cfg: TrackingConfig, run_json: str | Path) -> Iterator[mlflow.ActiveRun]:
    """Log into the training run named by ``models/run.json`` (validate, export)."""
    import mlflow

    info = read_run_json(run_json)
    setup(cfg)
    try:
        run = mlflow.start_run(run_id=info["run_id"])
    except Exception as exc:
        raise RuntimeError(
            f"MLflow run {info['run_id']} from {run_json} is not in {mlflow.get_tracking_uri()}; "
            "rerun `dvc repro train` (or point MLFLOW_TRACKING_URI at the server it was logged to)"
        ) from exc
    try:
        yield run
    finally:
        mlflow.end_run()


def log_flat_metrics(
    metrics: Mapping[str, float], prefix: str = "", step: int | None = None
) -> None:
    """Log numeric values with flat keys (``test/type/text/pearson``); non-finite ones are skipped."""
    import math

    import mlflow

    clean = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if math.isfinite(v):
            clean[_metric_key(prefix + k)] = float(v)
    if clean:
        mlflow.log_metrics(clean, step=step)


def _metric_key(key: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space / ; replace anything else.
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)
