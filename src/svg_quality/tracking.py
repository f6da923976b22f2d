"""MLflow access in one place: tracking URI, experiment, the per-model run, the registry.

One MLflow run per trained model (DESIGN.md): the train stage opens it with
:func:`model_run` and writes its id to ``models/run.json``; validate and export log
into that same run through :func:`resume_run`. Both yield a :class:`ModelRun`, so a
stage only says what to log; the run is closed FINISHED, FAILED or KILLED here. A
stage first calls :func:`preflight` (server reachable, recorded run present) before
any work, and opens the run only after every check that can refuse the stage, so a
refused stage never changes an existing run. When DVC restores train from its
run-cache, train does not run and the restored ``models/run.json`` still names the
original run, so validate and export log into it and nothing creates a new one. The
local SQLite store (its location, lock and relocation after a copy) is
:mod:`svg_quality.mlstore`.

mlflow is imported lazily so library modules that do not track stay light.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svg_quality.config import TrackingConfig, flatten
from svg_quality.io import write_json
from svg_quality.mlstore import (
    LOCAL_DB,
    absolute_sqlite,
    artifact_location,
    relocate_copied_store,
    store_lock,
)

if TYPE_CHECKING:
    import mlflow

# Environment DVC sets for stage commands (dvc 3.67, dvc/env.py). DVC_ROOT: always, the
# repository root (for a queued or --temp experiment, the *workspace* root, not the temp
# copy). DVC_STAGE: always, the stage name. DVC_EXP_NAME and DVC_EXP_BASELINE_REV: only
# under `dvc exp run` (workspace, --temp and --queue alike), not under `dvc repro`.
DVC_TAG_ENV = {
    "DVC_EXP_NAME": "dvc_exp_name",
    "DVC_EXP_BASELINE_REV": "dvc_exp_baseline_rev",
}
# MLflow 3's UI opens an experiment on its GenAI overview (traces) unless the experiment
# is tagged as model development; then it lands on the runs.
EXPERIMENT_KIND_TAG = {"mlflow.experimentKind": "custom_model_development"}


def repo_root() -> Path:
    """The DVC repository root: ``DVC_ROOT`` (set by DVC for stage commands), else the cwd."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def resolve_tracking_uri(cfg: TrackingConfig, root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI``, else ``tracking.uri``, else ``sqlite:///<repo root>/mlflow.db``.

    Relative SQLite paths are anchored at the repository root (``DVC_ROOT``), so a stage
    run from a temporary experiment folder still logs to the workspace's database.
    """
    root = root or repo_root()
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return absolute_sqlite(env, root)
    if cfg.uri:
        return absolute_sqlite(cfg.uri, root)
    return f"sqlite:///{(root / LOCAL_DB).as_posix()}"


def check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URI and the fix, when an HTTP tracking server is unreachable."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RuntimeError(
            f"MLflow tracking server {uri} is unreachable ({reason}). Start it with "
            "`make mlflow-server` (or fix MLFLOW_TRACKING_URI / params.yaml tracking.uri), "
            "or unset MLFLOW_TRACKING_URI to log to the local sqlite:///<repo>/mlflow.db"
        ) from exc


def setup(cfg: TrackingConfig) -> str:
    """Point MLflow at the resolved URI and make sure the experiment exists; returns its id."""
    import mlflow

    # Keep stage output clean: MLflow otherwise prints the run's URL on every run end.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    uri = resolve_tracking_uri(cfg)
    check_server(uri)
    mlflow.set_tracking_uri(uri)
    with store_lock(uri):
        relocate_copied_store(uri, repo_root())
        location = artifact_location(uri, cfg.experiment, repo_root())
        exp_id = get_or_create_experiment(cfg.experiment, location)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def get_or_create_experiment(name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created if missing; never falls back to Default.

    Robust to concurrent creators (queued `dvc exp` runs): losing the creation race
    means the other process created it, so look it up again.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    if not name or not name.strip():
        raise ValueError("tracking.experiment is empty; set it in params.yaml (e.g. svg-quality)")
    client = mlflow.MlflowClient()
    last: Exception | None = None
    for _ in range(10):
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp.experiment_id)
            for key, value in EXPERIMENT_KIND_TAG.items():
                if key not in exp.tags:  # tag older experiments; keep a kind the user chose
                    client.set_experiment_tag(exp.experiment_id, key, value)
            return exp.experiment_id
        try:
            return client.create_experiment(
                name, artifact_location=artifact_location, tags=EXPERIMENT_KIND_TAG
            )
        except MlflowException as exc:
            last = exc  # somebody else created it between our get and create; get it again
    raise RuntimeError(
        f"could not get or create MLflow experiment {name!r} in {mlflow.get_tracking_uri()}: {last}"
    )


def git_commit(cwd: Path | None = None) -> str | None:
    """HEAD of the checkout the stage runs in (a queued experiment's temp copy included)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or Path.cwd(),
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def run_tags() -> dict[str, str]:
    """Provenance tags every model run carries: git commit and, under `dvc exp run`, the
    DVC experiment name and baseline revision (see ``DVC_TAG_ENV``)."""
    tags: dict[str, str] = {}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git_commit"] = commit
    for env, tag in DVC_TAG_ENV.items():
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    # The one readable handle in the UI's run list: the DVC experiment name when there is one.
    if "dvc_exp_name" in tags:
        tags["mlflow.note.content"] = f"DVC experiment {tags['dvc_exp_name']}"
    return tags


def write_run_json(path: str | Path, run: mlflow.ActiveRun | mlflow.entities.Run, uri: str) -> None:
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
    info = json.loads(path.read_text())
    if not isinstance(info, dict) or not info.get("run_id"):
        raise ValueError(f"{path}: no run_id in {info!r}; rerun `dvc repro --force train`")
    return info


def preflight(cfg: TrackingConfig, run_json: str | Path | None = None) -> dict[str, Any] | None:
    """What every stage that logs checks before its work: the tracking server answers and,
    for validate/export, ``models/run.json`` names a run in the current store.

    Starts and changes nothing (a fresh SQLite store may be created). Returns run.json's
    contents (None without ``run_json``); raises naming the store and the fix.
    """
    uri = resolve_tracking_uri(cfg)
    check_server(uri)
    if run_json is None:
        return None
    info = read_run_json(run_json)
    _require_run(uri, info, run_json)
    return info


def _require_run(uri: str, info: Mapping[str, Any], run_json: str | Path) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        with store_lock(uri):
            mlflow.MlflowClient(uri).get_run(info["run_id"])
    except MlflowException as exc:
        raise RuntimeError(
            f"MLflow run {info['run_id']} from {run_json} is not in {uri} (it was logged to "
            f"{info.get('tracking_uri', 'an unknown store')}). Point MLFLOW_TRACKING_URI at "
            "that store, or rerun training with `dvc repro --force train`"
        ) from exc


@dataclass(frozen=True)
class DataInput:
    """A file or folder logged as an MLflow dataset input, named by its content digest.

    ``frame`` (a pandas DataFrame of the rows) adds a schema and profile in the UI.
    """

    name: str
    path: Path
    digest: str
    context: str
    frame: Any = None
    targets: str | None = None


class ModelRun:
    """The open MLflow run of one model, as :func:`model_run` and :func:`resume_run` yield it:
    everything a stage logs goes through here."""

    def __init__(self, run: mlflow.ActiveRun, uri: str, resumed: bool) -> None:
        self.run = run
        self.uri = uri
        self.resumed = resumed  # True: an existing run continued, not a new one
        self._epochs: set[int] | None = None  # steps of the run's per-epoch metrics

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    def log_metrics(
        self, metrics: Mapping[str, Any], prefix: str = "", step: int | None = None
    ) -> None:
        log_flat_metrics(metrics, prefix, step)

    def log_history(self, records: Iterable[Mapping[str, float]], key: str = "val_rmse") -> None:
        """Per-epoch records (step = ``epoch``) not yet in the run, so a continued run ends
        with each epoch logged exactly once whatever moment the interruption hit."""
        import mlflow

        if self._epochs is None:  # once per run: what an interrupted process got to log
            history = mlflow.MlflowClient().get_metric_history(self.run_id, key)
            self._epochs = {m.step for m in history}
        for record in records:
            epoch = int(record["epoch"])
            if epoch not in self._epochs:
                log_flat_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
                self._epochs.add(epoch)

    def log_files(
        self, files: Iterable[str | Path], artifact_dir: str, base: Path | None = None
    ) -> None:
        """Each file under ``artifact_dir``, keeping its folder relative to ``base``."""
        import mlflow

        for f in map(Path, files):
            sub = Path(artifact_dir) / f.parent.relative_to(base) if base else Path(artifact_dir)
            mlflow.log_artifact(str(f), sub.as_posix())

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def write_run_json(self, path: str | Path) -> None:
        write_run_json(path, self.run, self.uri)


@contextlib.contextmanager
def model_run(
    cfg: TrackingConfig,
    *,
    run_id: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    inputs: Iterable[DataInput] = (),
) -> Iterator[ModelRun]:
    """Start the model's MLflow run, or continue ``run_id`` while it is in the store.

    A new run gets the provenance tags (:func:`run_tags`), ``tags``, ``params`` and the
    dataset ``inputs``; a continued one only ``tags`` (it has the rest, and MLflow refuses
    to change a logged param). The run ends FINISHED, FAILED on an exception, or KILLED on
    Ctrl-C, whatever happens in the body. Open it only after every check that can refuse
    the stage: a refusal inside would mark the continued run FAILED.
    """
    import mlflow

    setup(cfg)
    uri = mlflow.get_tracking_uri()
    resumed = bool(run_id) and _run_active(run_id)
    run = mlflow.start_run(run_id=run_id) if resumed else mlflow.start_run(run_name=run_name)
    with _closing(run):
        if not resumed:
            mlflow.set_tags(run_tags())
            if params:
                mlflow.log_params({k: str(v) for k, v in params.items()})
            for data in inputs:
                _log_input(data)
        if tags:
            mlflow.set_tags({k: str(v) for k, v in tags.items()})
        yield ModelRun(run, uri, resumed)


@contextlib.contextmanager
def resume_run(
    cfg: TrackingConfig, run_json: str | Path, tags: Mapping[str, Any] | None = None
) -> Iterator[ModelRun]:
    """Log into the training run named by ``models/run.json`` (validate, export).

    Never creates a run: if the recorded run is not in the current store, fail and say
    which store it was logged to. Closes the run as :func:`model_run` does.
    """
    import mlflow

    info = read_run_json(run_json)
    setup(cfg)
    uri = mlflow.get_tracking_uri()
    _require_run(uri, info, run_json)
    run = mlflow.start_run(run_id=info["run_id"])
    with _closing(run):
        if tags:
            mlflow.set_tags({k: str(v) for k, v in tags.items()})
        yield ModelRun(run, uri, resumed=True)


@contextlib.contextmanager
def _closing(run: mlflow.ActiveRun) -> Iterator[None]:
    """End ``run`` FINISHED, FAILED (exception) or KILLED (Ctrl-C), in ``finally``."""
    import mlflow

    status = "FAILED"
    try:
        yield
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        mlflow.end_run(status=status)


def _run_active(run_id: str) -> bool:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False  # logged to another store, or deleted: start a new run


def _log_input(data: DataInput) -> None:
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    source = LocalArtifactDatasetSource(str(Path(data.path).resolve()))
    if data.frame is None:
        dataset = MetaDataset(source, name=data.name, digest=data.digest[:16])
    else:
        with warnings.catch_warnings():  # MLflow's hint about int columns in the schema
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            dataset = mlflow.data.from_pandas(
                data.frame,
                source=source,
                targets=data.targets,
                name=data.name,
                digest=data.digest[:16],
            )
    mlflow.log_input(dataset, context=data.context)


def log_flat_metrics(metrics: Mapping[str, Any], prefix: str = "", step: int | None = None) -> None:
    """Log numeric values with flat keys (``test/type/text/pearson``).

    Nested mappings are flattened with ``/``; non-numeric and non-finite values skipped.
    """
    import mlflow

    clean: dict[str, float] = {}
    for k, v in flatten_metrics(metrics, prefix).items():
        clean[_metric_key(k)] = v
    if clean:
        mlflow.log_metrics(clean, step=step)


def flatten_metrics(
    metrics: Mapping[str, Any], prefix: str = "", *, numbers_only: bool = True
) -> dict[str, Any]:
    """Nested metrics -> flat ``/`` keys (``test/type/text/pearson``): the one flattener
    behind every flat metric key, in MLflow and in the DVC metrics files (validate's
    metrics.json and size.json, :mod:`svg_quality.report`; export's metrics.json).

    ``numbers_only`` (MLflow's view): only finite numbers, as floats (bools left out).
    Otherwise every leaf as it is (ints, bools, None, NaN), as a DVC metrics file keeps
    them (written through :func:`svg_quality.metrics.finite_or_none`).
    """
    flat = flatten(metrics, prefix, sep="/")
    if not numbers_only:
        return flat
    return {
        k: float(v)
        for k, v in flat.items()
        if not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
    }


def _metric_key(key: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space / ; replace anything else.
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)


def gate_failures(gates: Mapping[str, Any]) -> list[str]:
    """Why a validate gates report does not pass (empty when it passes).

    Accepts the validate stage's ``reports/validate/gates.json``: a top-level ``passed``
    and a ``gates`` mapping of name -> {passed, value, threshold, ...} (or name -> bool).
    """
    if "passed" not in gates:
        raise ValueError(f"gates report has no 'passed' key: {sorted(gates)}")
    failures = []
    for name, gate in (gates.get("gates") or {}).items():
        ok = gate.get("passed") if isinstance(gate, Mapping) else gate
        if not ok:
            detail = ""
            if isinstance(gate, Mapping):
                detail = ", ".join(f"{k}={gate[k]}" for k in gate if k != "passed")
            failures.append(f"{name} ({detail})" if detail else name)
    if not gates["passed"] and not failures:
        failures.append("gates report says passed=false")
    return failures


def register_candidate(
    gates: Mapping[str, Any],
    registry_name: str,
    model_uri: str | None = None,
    alias: str = "candidate",
) -> dict[str, Any]:
    """Register the run's logged model as ``registry_name`` with ``alias`` if the gates pass.

    Call inside the model's run (``resume_run``), after logging the model (the export
    stage logs the ONNX MLP with ``mlflow.onnx.log_model``). ``model_uri`` defaults to
    the model this process logged last, which must belong to the active run. ``gates`` is
    validate's gates.json. Returns a JSON-able report: ``registered``, and ``version`` /
    ``model_uri`` or ``reasons`` (the gates that failed). The refusal is also tagged on
    the run (``registry``), so the MLflow UI says why a run has no registered model.
    """
    import mlflow

    if not registry_name:
        raise ValueError("export.registry_name is empty; set it in params.yaml")
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_candidate needs an active MLflow run (use resume_run)")
    failures = gate_failures(gates)
    if failures:
        mlflow.set_tag("registry", f"not registered: gates failed: {'; '.join(failures)}")
        return {"registered": False, "name": registry_name, "reasons": failures}
    if model_uri is None:
        logged = mlflow.last_logged_model()
        if logged is None or logged.source_run_id != run.info.run_id:
            raise RuntimeError(
                f"no model logged in run {run.info.run_id}; log it (mlflow.onnx.log_model) "
                "before register_candidate"
            )
        model_uri = logged.model_uri
    version = str(mlflow.register_model(model_uri, registry_name).version)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(registry_name, alias, version)
    mlflow.set_tag("registry", f"{registry_name} v{version} @{alias}")
    return {
        "registered": True,
        "name": registry_name,
        "version": version,
        "alias": alias,
        "model_uri": f"models:/{registry_name}@{alias}",
        "source": model_uri,
    }


def check_remote(root: Path | None = None) -> str:
    """The default DVC remote's name; a clear error when none is configured."""
    try:
        out = subprocess.run(
            ["dvc", "remote", "default"],
            cwd=root or repo_root(),
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise RuntimeError(f"cannot run dvc ({exc}); install it with `pip install dvc`") from exc
    name = out.stdout.strip()
    if out.returncode != 0 or not name or "No default remote" in out.stderr:
        raise RuntimeError(
            "no default DVC remote is configured. Add one: "
            "`dvc remote add -d local ../svg-quality-dvc-remote` (a folder), or "
            "`dvc remote add -d s3 s3://bucket/path` (see docs/tracking.md#remote-storage)"
        )
    return name
