"""End to end with the real components: `dvc repro`, `dvc exp run` (workspace and queued),
a real `mlflow server` (and its UI in headless Chromium), `dvc plots show`/`diff`,
`dvc push`/`dvc pull` to a local folder and to an S3 server (moto).

One scratch git repo is made from the project (dvc.yaml, shrunk params.yaml, stages/,
src/, .dvc/config, .dvc/plots) and shared by the tests of this module, which run in file
order: repro -> push/pull -> sweep -> plots -> UI -> run-cache. The stage scripts import the installed
(editable) package; src/ is copied only because dvc.yaml lists its modules as deps.
Every check runs unconditionally: dvc.yaml must declare exactly ``STAGES``, so a missing
or renamed stage fails the tests instead of switching its checks off.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO_ROOT, load_repo_params, shrink

pytestmark = pytest.mark.slow

GIT_ENV = {
    "GIT_AUTHOR_NAME": "svg-quality test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "svg-quality test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}
EXPERIMENT = "svg-quality-e2e"
STAGES = ("check", "prepare", "label", "featurize", "train", "validate", "export")  # in order
SWEEP = {"lr-hi": 0.003, "lr-lo": 0.0003}  # first in the workspace, second queued


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(cmd: list[str], health: str, log: Path, env: dict[str, str]) -> Iterator[None]:
    """Run a server in its own process group until the block ends; wait for ``health``."""
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(health, timeout=2):
                    break
            except OSError as exc:
                if time.monotonic() > deadline:
                    msg = f"{health} not up in 120 s:\n{log.read_text()[-3000:]}"
                    raise RuntimeError(msg) from exc
                time.sleep(0.5)
        yield
    finally:
        # The server's workers are its children, in the group we created for it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Scratch:
    ws: Path  # the scratch repo (workspace)
    base: Path  # its parent: default DVC remote and clones live next to it
    env: dict[str, str]
    mlflow: str  # tracking server URL
    stages: set[str]

    def run(self, *cmd: str, cwd: Path | None = None, timeout: float = 600) -> str:
        res = subprocess.run(
            cmd, cwd=cwd or self.ws, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        out = res.stdout + res.stderr
        if res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{out[-6000:]}")
        return out

    def api(self, endpoint: str, body: dict[str, Any] | None = None, **query: Any) -> Any:
        """Plain REST call to the tracking server: GET with ``query``, POST with ``body``."""
        url = f"{self.mlflow}/api/2.0/mlflow/{endpoint}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def experiment(self) -> dict[str, Any]:
        exp = self.api("experiments/get-by-name", experiment_name=EXPERIMENT)["experiment"]
        assert exp["experiment_id"] != "0"
        return exp

    def runs(self) -> list[dict[str, Any]]:
        exp_id = self.experiment()["experiment_id"]
        return self.api("runs/search", {"experiment_ids": [exp_id]}).get("runs", [])

    def lock_outs(self) -> dict[str, str]:
        """Every out recorded in dvc.lock: path -> md5."""
        lock = yaml.safe_load((self.ws / "dvc.lock").read_text())
        return {o["path"]: o["md5"] for s in lock["stages"].values() for o in s.get("outs", [])}


def tags_of(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def params_of(run: dict[str, Any]) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run["data"].get("params", [])}


def metrics_of(run: dict[str, Any]) -> dict[str, float]:
    return {m["key"]: m["value"] for m in run["data"].get("metrics", [])}


def make_scratch_repo(ws: Path, env: dict[str, str]) -> None:
    ws.mkdir()
    for name in ("dvc.yaml", ".gitignore", ".dvcignore", "Makefile"):
        shutil.copy2(REPO_ROOT / name, ws / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO_ROOT / "stages", ws / "stages", ignore=ignore)
    shutil.copytree(REPO_ROOT / "src", ws / "src", ignore=ignore)
    shutil.copytree(REPO_ROOT / "artwork", ws / "artwork")  # a prepare dep (vendored sets)
    params = shrink(load_repo_params())
    params["tracking"]["experiment"] = EXPERIMENT
    # Loose gates so the tiny model passes them and export registers it (the refusal
    # path is covered by test_tracking.py).
    params["validate"]["gates"] = {
        k: (1.0 if k == "rmse" else -1.0) for k in params["validate"]["gates"]
    }
    # Cross-validation is validate's own business (test_validate.py); here it would only
    # retrain both heads twice in every tiny run of the sweeps.
    params["validate"]["cv_folds"] = 0
    # Smaller still for export's checks: timing and suggestion quality are not tested here.
    params["export"].update(
        latency_repeats=2,
        suggest_candidates=16,
        suggest_logos=1,
        parity_batch=2,
        e2e_batch=2,
        e2e_repeats=1,
    )
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q", "-b", "main"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=ws, env=env, check=True)
    shutil.copy2(REPO_ROOT / ".dvc" / "config", ws / ".dvc" / "config")  # the default remote
    shutil.copytree(REPO_ROOT / ".dvc" / "plots", ws / ".dvc" / "plots")  # plot templates
    subprocess.run(["git", "add", "-A"], cwd=ws, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "scratch"], cwd=ws, env=env, check=True)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scratch]:
    base = tmp_path_factory.mktemp("e2e")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    port = free_port()
    env.update(GIT_ENV, DVC_NO_ANALYTICS="1", MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}")
    ws = base / "svg-quality"
    make_scratch_repo(ws, env)
    srv = base / "mlflow-server"
    cmd = [
        "make",
        "-s",
        "-C",
        str(ws),
        "mlflow-server",
        f"MLFLOW_PORT={port}",
        f"MLFLOW_SERVER_DIR={srv}",
    ]
    with server(cmd, f"http://127.0.0.1:{port}/health", base / "mlflow-server.log", env):
        stages = set(yaml.safe_load((ws / "dvc.yaml").read_text())["stages"])
        yield Scratch(ws, base, env, f"http://127.0.0.1:{port}", stages)


@pytest.fixture(scope="module")
def repro(scratch: Scratch) -> str:
    t0 = time.perf_counter()
    out = scratch.run("dvc", "repro")
    print(f"dvc repro: {time.perf_counter() - t0:.0f} s")
    # What a user does next: commit the lock so experiments and clones see this baseline.
    scratch.run("git", "add", "-A")
    scratch.run("git", "commit", "-qm", "baseline")
    return out


def test_repro_logs_one_complete_run(scratch: Scratch, repro: str) -> None:
    assert scratch.stages == set(STAGES)  # a renamed or dropped stage fails here, not silently
    for stage in STAGES:
        assert f"Running stage '{stage}'" in repro
    assert "View run" not in repro  # MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT (tracking.setup)
    runs = scratch.runs()
    assert len(runs) == 1, [r["info"]["run_id"] for r in runs]
    # So the MLflow UI treats it as model training, not GenAI (see the UI test below).
    exp_tags = {t["key"]: t["value"] for t in scratch.experiment().get("tags", [])}
    assert exp_tags["mlflow.experimentKind"] == "custom_model_development"
    run = runs[0]
    run_id = run["info"]["run_id"]
    assert json.loads((scratch.ws / "models/run.json").read_text())["run_id"] == run_id
    assert run["info"]["status"] == "FINISHED"
    params = params_of(run)
    assert float(params["train.lr"]) == 0.001 and params["train.epochs"] == "3"
    tags = tags_of(run)
    head = scratch.run("git", "rev-parse", "HEAD~1").strip()  # the commit repro ran on
    assert tags["git_commit"] == head
    assert "dvc_exp_name" not in tags  # plain `dvc repro` is not a DVC experiment
    for tag in ("labels_digest", "features_digest", "features_weights"):
        assert tags.get(tag), tag
    assert tags["features_weights"] == "random"
    # Per-epoch history: one point per epoch.
    hist = scratch.api("metrics/get-history", run_id=run_id, metric_key="val_rmse")["metrics"]
    epochs = json.loads((scratch.ws / "reports/train/metrics.json").read_text())["epochs_run"]
    assert len(hist) == epochs and len({m["step"] for m in hist}) == epochs
    metrics = metrics_of(run)
    assert "test/rmse" in metrics and "test/pearson" in metrics
    assert tags["validate_verdict"] == "ready"
    arts = scratch.api("artifacts/list", run_id=run_id, path="validate/plots")["files"]
    assert any(f["path"].endswith(".png") for f in arts), arts
    arts = scratch.api("artifacts/list", run_id=run_id, path="export")["files"]
    assert any(f["path"].endswith(".onnx") for f in arts), arts
    alias = scratch.api("registered-models/alias", name=registry_name(scratch), alias="candidate")[
        "model_version"
    ]
    assert alias["run_id"] == run_id
    registry = json.loads((scratch.ws / "models/export/registry.json").read_text())
    assert registry["registered"] and registry["version"] == alias["version"]


def registry_name(scratch: Scratch) -> str:
    return yaml.safe_load((scratch.ws / "params.yaml").read_text())["export"]["registry_name"]


def same_tree(a: Path, b: Path) -> None:
    """Byte-for-byte equality of two files or directory trees."""
    if a.is_file():
        assert b.is_file() and a.read_bytes() == b.read_bytes(), b
        return
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b, b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), b / rel


def cached_outs(ws: Path) -> list[str]:
    """Outs DVC caches (and so pushes): those of dvc.lock minus ``cache: false`` ones."""
    lock = yaml.safe_load((ws / "dvc.lock").read_text())
    dvcfile = yaml.safe_load((ws / "dvc.yaml").read_text())
    uncached = set()
    for stage in dvcfile["stages"].values():
        for kind in ("outs", "metrics", "plots"):
            for o in stage.get(kind, []):
                if isinstance(o, dict):
                    ((path, opts),) = o.items()
                    if opts and opts.get("cache") is False:
                        uncached.add(path)
    return [
        o["path"]
        for s in lock["stages"].values()
        for o in s.get("outs", [])
        if o["path"] not in uncached
    ]


def test_push_pull_local_and_s3(scratch: Scratch, repro: str) -> None:
    outs = cached_outs(scratch.ws)
    assert "data/logos" in outs
    # 1. The shipped default remote (a folder next to the repo) works as is.
    scratch.run("dvc", "push")
    assert (scratch.base / "svg-quality-dvc-remote" / "files" / "md5").is_dir()
    clone = scratch.base / "clone-local"
    scratch.run("git", "clone", "-q", str(scratch.ws), str(clone), cwd=scratch.base)
    scratch.run("dvc", "pull", cwd=clone)
    for out in outs:
        same_tree(scratch.ws / out, clone / out)

    # 2. An S3-compatible server (moto) on 127.0.0.1: the README's S3 recipe plus endpointurl.
    port = free_port()
    env = {
        **scratch.env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    moto = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    endpoint = f"http://127.0.0.1:{port}"
    with server(moto, f"{endpoint}/moto-api/", scratch.base / "moto.log", env):
        s3 = Scratch(scratch.ws, scratch.base, env, scratch.mlflow, scratch.stages)
        req = urllib.request.Request(f"{endpoint}/svgq-bucket", method="PUT")  # create bucket
        urllib.request.urlopen(req, timeout=10).close()
        s3.run("dvc", "remote", "add", "s3", "s3://svgq-bucket/dvc")
        s3.run("dvc", "remote", "modify", "s3", "endpointurl", endpoint)
        s3.run("git", "commit", "-qam", "s3 remote")
        s3.run("dvc", "push", "-r", "s3")
        clone = scratch.base / "clone-s3"
        s3.run("git", "clone", "-q", str(scratch.ws), str(clone), cwd=scratch.base)
        s3.run("dvc", "pull", "-r", "s3", cwd=clone)
        for out in outs:
            same_tree(scratch.ws / out, clone / out)


def test_missing_remote_is_a_clear_error(scratch: Scratch, repro: str) -> None:
    from svg_quality.tracking import check_remote

    clone = scratch.base / "clone-noremote"
    scratch.run("git", "clone", "-q", str(scratch.ws), str(clone), cwd=scratch.base)
    scratch.run("dvc", "remote", "default", "--unset", cwd=clone)
    res = subprocess.run(
        ["dvc", "push"], cwd=clone, env=scratch.env, capture_output=True, text=True
    )
    assert res.returncode != 0
    assert "no remote specified" in (res.stdout + res.stderr).lower()
    with pytest.raises(RuntimeError, match="no default DVC remote"):
        check_remote(clone)


def wait_queue(scratch: Scratch, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = scratch.run("dvc", "queue", "status")
        if not any(s in status for s in ("Queued", "Running")):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"queue not done in {timeout} s:\n{status}")
        time.sleep(2)


def test_sweep_workspace_and_queued(scratch: Scratch, repro: str) -> None:
    (hi, lr_hi), (lo, lr_lo) = SWEEP.items()
    upstream = ("prepare", "label", "featurize")
    base_outs = scratch.lock_outs()
    base_run = json.loads((scratch.ws / "models/run.json").read_text())["run_id"]

    t0 = time.perf_counter()
    out = scratch.run("dvc", "exp", "run", "-n", hi, "-S", f"train.lr={lr_hi}")
    assert "Running stage 'train'" in out
    for stage in upstream:  # unchanged upstream stages are not rerun
        assert f"Running stage '{stage}'" not in out
    outs = scratch.lock_outs()
    for path in ("data/labels.parquet", "data/features"):
        assert outs[path] == base_outs[path], path

    # Queued: runs in a temporary copy under .dvc/tmp/exps, inheriting this environment.
    scratch.run("dvc", "exp", "run", "--queue", "-n", lo, "-S", f"train.lr={lr_lo}")
    scratch.run("dvc", "queue", "start")
    status = wait_queue(scratch)
    assert "Success" in status and "Failed" not in status, status
    logs = scratch.run("dvc", "queue", "logs", lo)
    assert "Running stage 'train'" in logs
    for stage in upstream:
        assert f"Running stage '{stage}'" not in logs
    print(f"two sweep experiments: {time.perf_counter() - t0:.0f} s")

    runs = scratch.runs()
    assert len(runs) == 3
    by_exp = {tags_of(r).get("dvc_exp_name"): r for r in runs}
    assert set(by_exp) == {None, hi, lo}
    assert by_exp[None]["info"]["run_id"] == base_run
    baseline_rev = scratch.run("git", "rev-parse", "HEAD").strip()
    for name, lr in SWEEP.items():
        run = by_exp[name]
        assert float(params_of(run)["train.lr"]) == lr
        tags = tags_of(run)
        assert tags["dvc_exp_baseline_rev"] == baseline_rev
        assert tags["git_commit"] == baseline_rev  # the queued copy's HEAD is the baseline
        assert run["info"]["status"] == "FINISHED"
        assert "test/rmse" in metrics_of(run)

    shown = json.loads(scratch.run("dvc", "exp", "show", "--json"))
    exps = {
        rev["name"]: rev["data"]
        for baseline in shown
        for exp in baseline.get("experiments") or []
        for rev in exp["revs"]
    }
    base_deps = next(b["data"]["deps"] for b in shown if b["rev"] == baseline_rev)
    for name, lr in SWEEP.items():
        data = exps[name]
        assert float(data["params"]["params.yaml"]["data"]["train"]["lr"]) == lr
        metrics = data["metrics"]
        assert metrics["reports/train/metrics.json"]["data"]["epochs_run"] > 0, name
        assert "reports/validate/metrics.json" in metrics, name
        for path in ("data/labels.parquet", "data/features"):  # the same inputs as the baseline
            assert data["deps"][path]["hash"] == base_deps[path]["hash"], (name, path)


# What dvc.yaml declares to render, per stage: plot id (a top-level `plots:` id or a
# stage's plot out) -> chart title.
VEGA_PLOTS = {
    "train": {
        "Loss per epoch (MSE)": "Loss per epoch (MSE)",
        "Validation Pearson r per epoch": "Validation Pearson r per epoch",
        "reports/train/history.csv": "Validation RMSE per epoch",
    },
    "validate": {
        "reports/validate/predictions.csv": "Test predicted vs actual SSIM, by logo type",
        "reports/validate/per_type.csv": "Test RMSE per logo type",
        "Test Pearson r per logo type": "Test Pearson r per logo type",
    },
}


def test_plots_show_and_diff(scratch: Scratch, repro: str) -> None:
    """`dvc plots show` writes an HTML page; `dvc plots diff` of the two sweep experiments
    has every chart with both experiments' data (predicted vs actual by logo type)."""
    assert {"train", "validate"} <= scratch.stages
    expected = {plot: title for plots in VEGA_PLOTS.values() for plot, title in plots.items()}
    show = scratch.base / "plots-show"
    scratch.run("dvc", "plots", "show", "-o", str(show))
    page = (show / "index.html").read_text()
    assert page.count("vegaEmbed(") == len(expected)  # one Vega-Lite chart each
    for title in expected.values():
        assert f'"text": "{title}"' in page, title
    assert list((show / "static").glob("*.png"))  # the PNG plots are rendered too

    hi, lo = SWEEP
    diff = scratch.base / "plots-diff"
    scratch.run("dvc", "plots", "diff", hi, lo, "-o", str(diff))
    page = (diff / "index.html").read_text()
    assert hi in page and lo in page
    shown = json.loads(scratch.run("dvc", "plots", "diff", hi, lo, "--json"))["data"]
    for plot in expected:
        (render,) = [r for r in shown[plot] if r["type"] == "vega"]
        assert sorted(render["revisions"]) == sorted(SWEEP), plot
        values = render["content"]["data"]["values"]
        assert {v["rev"] for v in values} == set(SWEEP), plot
    (scatter,) = shown["reports/validate/predictions.csv"]
    values = scatter["content"]["data"]["values"]
    preds = (scratch.ws / "reports/validate/predictions.csv").read_text().splitlines()
    assert len(values) == 2 * (len(preds) - 1)  # every test row of both experiments
    types = {line.split(",")[1] for line in preds[1:]}
    assert {v["logo_type"] for v in values} == types and len(types) > 1
    assert scatter["content"]["spec"]["layer"][0]["encoding"]["color"]["field"] == ("logo_type")


def find_browser() -> tuple[str, str] | None:
    """Chromium and its chromedriver (Debian: apt-get install chromium chromium-driver)."""
    browser = next(
        (b for b in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if b),
        None,
    )
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextlib.contextmanager
def headless_chromium(base: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        pytest.skip(
            "no headless Chromium here: install Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver; .ci/run does) to run the MLflow UI check"
        )
    browser, driver = found
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    # Offline and quiet: no GPU, no sandbox (root in CI), no QUIC, no update/sync traffic.
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,900",
    ):
        opts.add_argument(flag)
    profile = base / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    opts.add_argument(f"--user-data-dir={profile}")
    web = webdriver.Chrome(options=opts, service=Service(driver))
    try:
        yield web
    finally:
        web.quit()


def test_mlflow_ui_lists_and_compares_runs(scratch: Scratch, repro: str) -> None:
    """The MLflow UI in a real browser: the README's link lands on the experiment's runs
    (not the GenAI overview), both sweep runs are listed, and ticking them + Compare
    opens the compare view. SVGQ_UI_SCREENSHOT=path saves that view (docs/)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    runs = {tags_of(r).get("dvc_exp_name"): r for r in scratch.runs()}
    picked = [runs[name]["info"] for name in SWEEP]
    exp_id = scratch.experiment()["experiment_id"]
    with headless_chromium(scratch.base) as web:
        wait = WebDriverWait(web, 120)

        def body() -> str:
            return web.find_element(By.TAG_NAME, "body").text

        # The README's link: the runs, in the UI's model-training mode.
        web.get(f"{scratch.mlflow}/#/experiments/{exp_id}/runs?workflowType=machine_learning")
        wait.until(lambda _: all(info["run_name"] in body() for info in picked))
        assert "matching runs" in body() and "No data available" not in body()
        for info in picked:  # the row's first checkbox selects the run
            row = web.find_element(By.CSS_SELECTOR, f"[role=row][row-id='{info['run_id']}']")
            box = row.find_element(By.CSS_SELECTOR, "input[type=checkbox]")
            web.execute_script("arguments[0].click()", box)
        (compare,) = [b for b in web.find_elements(By.TAG_NAME, "button") if b.text == "Compare"]
        wait.until(lambda _: compare.is_enabled())
        compare.click()
        wait.until(lambda _: "Comparing 2 Runs" in body())
        assert "#/compare-runs" in web.current_url
        for info in picked:
            assert info["run_id"] in web.current_url
        wait.until(lambda _: "train.lr" in body())  # the params table of the two runs
        for info in picked:
            assert info["run_name"] in body()
        shot = os.environ.get("SVGQ_UI_SCREENSHOT")
        if shot:  # the picture in the README: only the differing params, no side panel
            for close in web.find_elements(By.CSS_SELECTOR, "button[aria-label=Close]"):
                web.execute_script("arguments[0].click()", close)
            web.execute_script(
                "arguments[0].click()", web.find_element(By.CSS_SELECTOR, "[role=switch]")
            )
            head = web.find_element(By.XPATH, "//*[normalize-space(text())='Parameters']")
            web.execute_script("arguments[0].scrollIntoView()", head)
            time.sleep(1)
            web.save_screenshot(shot)


def run_cacheable(ws: Path, stage: str) -> bool:
    """Whether DVC saves/restores ``stage`` in its run-cache (dvc 3.67, dvc/stage/cache.py
    and Stage.run): not with a ``persist: true`` out, nor with a ``cache: false`` out
    that is not a metric or plot."""
    block = yaml.safe_load((ws / "dvc.yaml").read_text())["stages"][stage]
    for out in block.get("outs", []):
        opts = next(iter(out.values())) if isinstance(out, dict) else {}
        if opts and (opts.get("persist") or opts.get("cache") is False):
            return False
    return True


def test_rerun_or_run_cache_makes_no_extra_run(scratch: Scratch, repro: str) -> None:
    """validate reruns (new seed) and logs into the model's existing run; nothing makes a
    new run. With the baseline's train params back, train is restored from DVC's
    run-cache, not run, and the restored models/run.json names the baseline run, which
    validate then logs into. train must stay run-cacheable (no ``persist: true`` out, no
    uncached out that is not a metric or plot): the next test relies on it too."""
    assert run_cacheable(scratch.ws, "train"), "dvc.yaml's train stage cannot be run-cached"
    runs_before = scratch.runs()
    seed = yaml.safe_load((scratch.ws / "params.yaml").read_text())["validate"]["seed"]
    base = next(r for r in runs_before if "dvc_exp_name" not in tags_of(r))
    run_id = base["info"]["run_id"]
    cmd = ["dvc", "exp", "run", "-n", "val-seed", "-S", f"validate.seed={seed + 1}"]
    cmd += ["-S", f"train.lr={params_of(base)['train.lr']}"]

    def rmse_points() -> int:
        got = scratch.api("metrics/get-history", run_id=run_id, metric_key="test/rmse")
        return len(got.get("metrics", []))

    points = rmse_points()
    out = scratch.run(*cmd)
    assert "Running stage 'validate'" in out and "Running stage 'train'" not in out
    assert "Stage 'train' is cached - skipping run" in out, out[-3000:]
    assert json.loads((scratch.ws / "models/run.json").read_text())["run_id"] == run_id
    assert rmse_points() == points + 1  # validate logged into the existing run ...
    assert len(scratch.runs()) == len(runs_before)  # ... and no run was made


def test_return_to_earlier_params_restores_every_stage(scratch: Scratch, repro: str) -> None:
    """From the workspace's params A, sweep to B, then back to A: the third run restores
    every stage from DVC's run-cache (no stage runs but ``check``, which validates
    params.yaml on every run and has nothing to restore; A's outputs come back), and MLflow
    gets no second run for A: the restored models/run.json names A's run. A is whatever the
    workspace last ran (every `dvc repro` / `dvc exp run` fills the run-cache), so only B
    trains here."""
    lr_a = yaml.safe_load((scratch.ws / "params.yaml").read_text())["train"]["lr"]
    lr_b = 0.0005  # neither the baseline's nor the sweep's value
    assert lr_b != lr_a and lr_b not in SWEEP.values()
    rerun = ("train", "validate", "export")  # what a train.lr change reruns
    assert set(rerun) <= scratch.stages

    run_a = json.loads((scratch.ws / "models/run.json").read_text())["run_id"]
    outs_a = scratch.lock_outs()
    out = scratch.run("dvc", "exp", "run", "-n", "lr-b", "-S", f"train.lr={lr_b}")
    assert "Running stage 'train'" in out
    run_b = json.loads((scratch.ws / "models/run.json").read_text())["run_id"]
    assert run_b != run_a
    n_runs = len(scratch.runs())

    t0 = time.perf_counter()
    out = scratch.run("dvc", "exp", "run", "-n", "lr-a-again", "-S", f"train.lr={lr_a}")
    print(f"return to train.lr={lr_a}: {time.perf_counter() - t0:.1f} s")
    assert re.findall(r"Running stage '([^']+)'", out) == ["check"], out[-3000:]
    for stage in rerun:
        assert f"Stage '{stage}' is cached - skipping run" in out, (stage, out[-3000:])
    assert json.loads((scratch.ws / "models/run.json").read_text())["run_id"] == run_a
    assert len(scratch.runs()) == n_runs  # no second MLflow run for A
    outs = scratch.lock_outs()
    for path in ("models/model.pt", "models/run.json", "models/export"):
        assert outs[path] == outs_a[path], path
    restored = {tags_of(r).get("dvc_exp_name") for r in scratch.runs()}
    assert "lr-a-again" not in restored and "lr-b" in restored


def test_a_bad_sweep_value_stops_at_the_check_and_loses_nothing(
    scratch: Scratch, repro: str
) -> None:
    """Row 10 of the reliability issue: `dvc exp run -S train.lr=abc` used to delete the
    train stage's outputs (and uncommitted reports) before train refused the value. Now
    the `check` stage, which every stage depends on, refuses it first."""
    outs = ["models/model.pt", "models/run.json", "reports/train/metrics.json"]
    before = {p: (scratch.ws / p).read_bytes() for p in outs}
    res = subprocess.run(
        ["dvc", "exp", "run", "-S", "train.lr=abc"],
        cwd=scratch.ws, env=scratch.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = res.stdout + res.stderr
    try:
        assert res.returncode != 0
        assert "train.lr = 'abc' is invalid" in out and "nothing was deleted" in out
        assert "Running stage 'train'" not in out
        assert {p: (scratch.ws / p).read_bytes() for p in outs} == before
    finally:
        scratch.run("git", "checkout", "--", "params.yaml")
    assert "params.yaml" not in scratch.run("git", "status", "--short")
