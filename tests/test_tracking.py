"""svg_quality.tracking against a real MLflow SQLite store in tmp_path (no server)."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from svg_quality import tracking
from svg_quality.config import TrackingConfig

from .conftest import REPO_ROOT

GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite store for the module: creating its schema costs seconds each time."""
    return tmp_path_factory.mktemp("repo")


@pytest.fixture
def store(
    store_root: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TrackingConfig]:
    """The shared store under a 'repo root', with an experiment of the test's own."""
    import mlflow

    monkeypatch.setenv("DVC_ROOT", str(store_root))
    yield TrackingConfig(uri=None, experiment=request.node.name)
    mlflow.end_run()
    mlflow.set_tracking_uri(None)


def test_uri_precedence_env_then_params_then_sqlite_under_dvc_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path.parent)  # the cwd must not matter once DVC_ROOT is set
    assert tracking.resolve_tracking_uri(TrackingConfig()) == f"sqlite:///{tmp_path}/mlflow.db"
    cfg = TrackingConfig(uri="http://params:5000")
    assert tracking.resolve_tracking_uri(cfg) == "http://params:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert tracking.resolve_tracking_uri(cfg) == "http://env:5000"
    # A relative SQLite path (env or params) is anchored at the repo root, not the cwd of a
    # queued experiment's temporary copy.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///runs/m.db")
    assert tracking.resolve_tracking_uri(cfg) == f"sqlite:///{tmp_path}/runs/m.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    cfg = TrackingConfig(uri="sqlite:///other.db")
    assert tracking.resolve_tracking_uri(cfg) == f"sqlite:///{tmp_path}/other.db"
    assert tracking.resolve_tracking_uri(TrackingConfig(uri="sqlite:////abs/x.db")) == (
        "sqlite:////abs/x.db"
    )


def test_repo_root_falls_back_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert tracking.repo_root() == tmp_path.resolve()


def test_check_server_names_uri_and_fix_on_closed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"  # nothing listens there any more
    with pytest.raises(RuntimeError) as err:
        tracking.check_server(uri, timeout=2)
    msg = str(err.value)
    assert uri in msg and "make mlflow-server" in msg and "MLFLOW_TRACKING_URI" in msg
    tracking.check_server("sqlite:////nonexistent/x.db")  # not a server: nothing to check


def test_setup_fails_fast_when_server_down(
    store: TrackingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    with pytest.raises(RuntimeError, match=f"127.0.0.1:{port} is unreachable"):
        tracking.setup(store)


RACE = textwrap.dedent(
    """
    import sys
    from svg_quality import tracking
    from svg_quality.config import TrackingConfig
    print(tracking.setup(TrackingConfig(uri=None, experiment="raced")))
    """
)


def test_experiment_creation_race_on_fresh_sqlite(tmp_path: Path) -> None:
    """Processes creating a fresh store and the experiment at once (``dvc queue start -j``)
    all get the same experiment, never Default, and the store is not corrupted."""
    env = {**os.environ, "DVC_ROOT": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
    ids = {out.strip().splitlines()[-1] for out, _ in results}
    assert len(ids) == 1 and ids != {"0"}, ids
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        rows = db.execute("SELECT experiment_id, artifact_location FROM experiments").fetchall()
        names = [r[0] for r in db.execute("SELECT name FROM experiments WHERE name='raced'")]
    assert len(names) == 1
    # Artifacts of the raced experiment live under the repo root, not in the cwd of whoever won.
    loc = dict(rows)[int(ids.pop())]
    assert loc == (tmp_path / "mlartifacts" / "raced").resolve().as_uri()


def test_threads_racing_get_or_create(store: TrackingConfig) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import mlflow

    tracking.setup(store)  # the store exists; now race on a second experiment name
    with ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(lambda _: tracking.get_or_create_experiment("threads"), range(8)))
    assert len(ids) == 1 and ids != {"0"}
    assert mlflow.get_experiment(ids.pop()).name == "threads"


def test_deleted_experiment_is_restored_not_default(store: TrackingConfig) -> None:
    import mlflow

    exp_id = tracking.setup(store)
    mlflow.MlflowClient().delete_experiment(exp_id)
    assert tracking.setup(store) == exp_id
    assert mlflow.get_experiment(exp_id).lifecycle_stage == "active"
    with pytest.raises(ValueError, match="tracking.experiment"):
        tracking.get_or_create_experiment(" ")


def test_run_tags_from_env_and_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert tracking.run_tags() == {}  # not a git checkout, not a DVC experiment
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "init", "-q"], check=True, env=env)
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "add", "f"], check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "c"], check=True, env=env)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.setenv("DVC_EXP_NAME", "sunny-dog")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "a" * 40)
    tags = tracking.run_tags()
    assert tags["git_commit"] == tags["mlflow.source.git.commit"] == head
    assert tags["dvc_exp_name"] == "sunny-dog"
    assert tags["dvc_exp_baseline_rev"] == "a" * 40


def test_resume_run_logs_into_the_recorded_run(store: TrackingConfig, tmp_path: Path) -> None:
    import mlflow

    exp_id = tracking.setup(store)
    with mlflow.start_run() as run:
        tracking.write_run_json(tmp_path / "run.json", run, mlflow.get_tracking_uri())
    with tracking.resume_run(store, tmp_path / "run.json") as resumed:
        assert resumed.run_id == run.info.run_id
        tracking.log_flat_metrics({"rmse": 0.1, "type": {"text": {"pearson": 0.9}}}, "test/")
    runs = mlflow.search_runs([exp_id], output_format="list")
    assert [r.info.run_id for r in runs] == [run.info.run_id]
    assert runs[0].data.metrics == {"test/rmse": 0.1, "test/type/text/pearson": 0.9}
    assert runs[0].info.status == "FINISHED"


def test_resume_run_never_creates_a_run(store: TrackingConfig, tmp_path: Path) -> None:
    import mlflow

    exp_id = tracking.setup(store)
    (tmp_path / "run.json").write_text('{"run_id": "0123456789abcdef", "tracking_uri": "x"}')
    with (
        pytest.raises(RuntimeError, match=r"0123456789abcdef .* is not in sqlite:///"),
        tracking.resume_run(store, tmp_path / "run.json"),
    ):
        pass
    assert mlflow.search_runs([exp_id], output_format="list") == []
    with pytest.raises(FileNotFoundError, match="dvc repro train"):
        tracking.read_run_json(tmp_path / "missing.json")


def test_log_flat_metrics_skips_non_numbers(store: TrackingConfig) -> None:
    import mlflow

    tracking.setup(store)
    with mlflow.start_run() as run:
        tracking.log_flat_metrics(
            {"a": 1, "nan": float("nan"), "flag": True, "s": "x", "b c(d)": 2.5}, step=3
        )
    got = mlflow.get_run(run.info.run_id).data.metrics
    assert got == {"a": 1.0, "b c_d_": 2.5}
    hist = mlflow.MlflowClient().get_metric_history(run.info.run_id, "a")
    assert [m.step for m in hist] == [3]


def tiny_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_register_candidate_only_when_gates_pass(store: TrackingConfig, tmp_path: Path) -> None:
    import mlflow
    import mlflow.onnx
    import onnx

    tracking.setup(store)
    onnx_path = tiny_onnx(tmp_path / "m.onnx")
    failing = {
        "passed": False,
        "gates": {
            "pearson": {"passed": False, "value": 0.5, "threshold": 0.9},
            "rmse": {"passed": True, "value": 0.01, "threshold": 0.05},
        },
    }
    with mlflow.start_run() as bad:
        mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="m")
        report = tracking.register_candidate(failing, "svgq-model")
    assert report["registered"] is False
    assert report["reasons"] == ["pearson (value=0.5, threshold=0.9)"]
    client = mlflow.MlflowClient()
    assert client.search_registered_models(filter_string="name='svgq-model'") == []
    assert "gates failed" in client.get_run(bad.info.run_id).data.tags["registry"]

    with mlflow.start_run() as good:
        with pytest.raises(RuntimeError, match="no model logged in run"):
            tracking.register_candidate({"passed": True, "gates": {}}, "svgq-model")
        mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="m")
        report = tracking.register_candidate({"passed": True, "gates": {}}, "svgq-model")
    assert report["registered"] is True and report["model_uri"] == "models:/svgq-model@candidate"
    version = client.get_model_version_by_alias("svgq-model", "candidate")
    assert str(version.version) == report["version"] == "1"
    assert version.run_id == good.info.run_id
    loaded = mlflow.onnx.load_model("models:/svgq-model@candidate")
    assert [o.name for o in loaded.graph.output] == ["y"]


def test_gate_failures_needs_passed_key() -> None:
    with pytest.raises(ValueError, match="'passed'"):
        tracking.gate_failures({"gates": {}})
    assert tracking.gate_failures({"passed": False, "gates": {"acc": False}}) == ["acc"]


def test_check_remote(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    with pytest.raises(RuntimeError, match="no default DVC remote"):
        tracking.check_remote(tmp_path)
    assert tracking.check_remote(REPO_ROOT) == "local"  # the project ships a default remote


def test_tracking_config_rejects_bad_values() -> None:
    from svg_quality.config import parse_params

    from .conftest import load_repo_params

    raw = load_repo_params()
    raw["tracking"]["uri"] = "mlflow.db"  # a path, not a URI
    with pytest.raises(ValueError, match=r"tracking.uri = 'mlflow.db' is invalid"):
        parse_params(raw)
    raw["tracking"] = {"uri": None, "experiment": " "}
    with pytest.raises(ValueError, match="tracking.experiment is empty"):
        parse_params(raw)


def test_experiment_is_tagged_model_development(store: TrackingConfig) -> None:
    """MLflow 3's UI opens an untagged experiment on its GenAI overview, not the runs."""
    import mlflow

    kind = "mlflow.experimentKind"
    tracking.setup(store)  # points MLflow at the test store
    new_id = tracking.get_or_create_experiment("kind-new")
    assert mlflow.get_experiment(new_id).tags[kind] == "custom_model_development"
    client = mlflow.MlflowClient()
    old_id = client.create_experiment("kind-old")  # made before the tag existed
    assert kind not in client.get_experiment(old_id).tags
    assert tracking.get_or_create_experiment("kind-old") == old_id
    assert client.get_experiment(old_id).tags[kind] == "custom_model_development"
    client.set_experiment_tag(old_id, kind, "genai_development")  # a user's own choice stays
    tracking.get_or_create_experiment("kind-old")
    assert client.get_experiment(old_id).tags[kind] == "genai_development"


def test_copied_repo_writes_artifacts_into_its_own_folder(tmp_path: Path) -> None:
    """Issue 17 row 7: mlflow.db stores absolute artifact locations, so a `cp -a` of the repo
    used to log its runs' artifacts into the original's mlartifacts/."""
    import shutil

    orig, copy = tmp_path / "orig", tmp_path / "copy"
    orig.mkdir()
    log_run = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from svg_quality import tracking
        from svg_quality.config import TrackingConfig
        Path("note.txt").write_text(sys.argv[1])
        with tracking.model_run(TrackingConfig(uri=None, experiment="svg-quality")) as run:
            run.log_files(["note.txt"], "notes")
        print(run.run_id)
        """
    )

    def run_in(root: Path, text: str) -> str:
        env = {**os.environ, "DVC_ROOT": str(root)}
        env.pop("MLFLOW_TRACKING_URI", None)
        out = subprocess.run(
            [sys.executable, "-c", log_run, text],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip().splitlines()[-1]

    first = run_in(orig, "orig")
    shutil.copytree(orig, copy, symlinks=True)  # what `cp -a` does
    before = sorted(p.relative_to(orig) for p in (orig / "mlartifacts").rglob("*"))
    second = run_in(copy, "copy")

    assert sorted(p.relative_to(orig) for p in (orig / "mlartifacts").rglob("*")) == before
    new = list((copy / "mlartifacts").rglob(f"{second}/artifacts/notes/note.txt"))
    assert [p.read_text() for p in new] == ["copy"]
    # The copy's store serves both runs from its own folder; the original's is untouched.
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    for run_id, text in ((first, "orig"), (second, "copy")):
        uri = client.get_run(run_id).info.artifact_uri
        assert uri.startswith((copy / "mlartifacts").as_uri()), uri
        got = Path(client.download_artifacts(run_id, "notes/note.txt", str(tmp_path / run_id)))
        assert got.read_text() == text
    orig_client = mlflow.MlflowClient(f"sqlite:///{orig / 'mlflow.db'}")
    assert orig_client.get_run(first).info.artifact_uri.startswith(orig.as_uri())


@pytest.mark.parametrize("stage", ["validate", "export"])
def test_stage_checks_tracking_before_any_work(
    stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 row 4: validate ran its whole cross-validation, and export wrote a fresh
    models/export, before finding the tracking server down. Now both fail first, naming it."""
    from .conftest import load_stage

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.json").write_text('{"run_id": "0123456789abcdef"}')
    out = tmp_path / "out"
    argv = ["--params", str(REPO_ROOT / "params.yaml"), "--model", "missing.pt"]
    argv += ["--run", "run.json", "--labels", "l.parquet", "--features", "f", "--logos-csv", "c"]
    argv += ["--out", str(out)]
    if stage == "validate":
        argv += ["--history", "h.csv"]
    else:
        argv += ["--logos-dir", "d", "--gates", "g.json"]
    with pytest.raises(RuntimeError, match=f"127.0.0.1:{port} is unreachable"):
        load_stage(stage).main(argv)
    assert not out.exists()
