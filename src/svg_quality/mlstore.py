"""The local MLflow store: a SQLite file and an artifact folder inside the repository.

By default MLflow logs to ``sqlite:///<repo root>/mlflow.db`` with artifacts under
``<repo root>/mlartifacts/`` (:mod:`svg_quality.tracking` resolves the URI). Three things
keep that store whole: relative SQLite paths are anchored at the repository root, so
queued experiments in temporary copies share the workspace's file; first use is
serialized by a lock file, since concurrent schema migrations corrupt a fresh database;
and a store copied with its repository is pointed at the copy's own artifact folder.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

# The local SQLite store and its artifacts, relative to the repository root.
LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"

log = logging.getLogger("tracking")


def absolute_sqlite(uri: str, root: Path) -> str:
    """Anchor a relative ``sqlite:///rel.db`` at ``root`` so every working dir shares one file.

    Queued experiments run in temporary copies of the repo; a relative path would give
    each of them its own database, deleted with the copy.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = uri[len(prefix) :]
    if path.startswith("/") or path == ":memory:" or re.match(r"^[A-Za-z]:[/\\]", path):
        return uri
    return f"{prefix}{(root / path).resolve().as_posix()}"


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialize first use of a SQLite store between processes.

    Two processes creating a fresh mlflow.db at once (``dvc queue start -j 2``) race in
    MLflow's schema migrations and corrupt it ("duplicate column name"); a lock file
    next to the database makes creation and experiment lookup one at a time.
    """
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        yield
        return
    db = Path(uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; first use is rarely concurrent there
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def artifact_location(uri: str, experiment: str, root: Path) -> str | None:
    """Where a new experiment's artifacts go: ``<repo>/mlartifacts/<experiment>`` for SQLite.

    MLflow's default for a SQLite store is ``./mlruns`` of whatever the cwd is, which for
    a queued experiment is a temporary folder deleted after the run. A server decides
    for itself (``--artifacts-destination``), so None there.
    """
    if not uri.startswith("sqlite:///"):
        return None
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", experiment)
    return (root / LOCAL_ARTIFACTS / safe).resolve().as_uri()


# Columns where MLflow's SQL store keeps absolute artifact locations (mlflow 3.x schema).
LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def relocate_copied_store(uri: str, root: Path) -> str | None:
    """Point a copied repo's SQLite store at its own ``mlartifacts/``; returns the old root.

    MLflow records absolute artifact locations (``file:///old/repo/mlartifacts/...``) in
    the database, so after ``cp -a repo copy`` (or ``mv``) the copy's runs would write
    their artifacts into the original's folder. A store inside the repository belongs to
    it: when its experiments' artifacts live under another repo's ``mlartifacts/``, every
    location that starts with that repo root is rewritten to this one (the copied
    ``mlartifacts/`` then serves the old runs too). A store outside the repository
    (shared on purpose by several checkouts) is left alone.
    """
    if not uri.startswith("sqlite:///"):
        return None
    root = root.resolve()
    db = Path(uri[len("sqlite:///") :])
    if not db.is_file() or not db.resolve().is_relative_to(root):
        return None
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "experiments" not in tables:
            return None
        old = None
        for (loc,) in con.execute("SELECT artifact_location FROM experiments"):
            path = Path(local_path(loc or ""))
            if path.parent.name == LOCAL_ARTIFACTS and path.parent.parent != root:
                old = path.parent.parent
                break
        if old is None:
            return None
        for table, col in LOCATION_COLUMNS:
            if table not in tables:
                continue
            for prefix_old, prefix_new in (
                (old.as_uri() + "/", root.as_uri() + "/"),
                (f"{old.as_posix()}/", f"{root.as_posix()}/"),
            ):
                con.execute(  # table and column names come from LOCATION_COLUMNS, not input
                    f"UPDATE {table} SET {col} = ? || substr({col}, ?) "
                    f"WHERE substr({col}, 1, ?) = ?",
                    (prefix_new, len(prefix_old) + 1, len(prefix_old), prefix_old),
                )
    log.warning(
        "%s was copied from %s: its artifact locations now point into %s/%s, so runs here "
        "no longer write into the other checkout",
        db,
        old,
        root,
        LOCAL_ARTIFACTS,
    )
    return str(old)


def local_path(location: str) -> str:
    if location.startswith("file://"):
        return unquote(urlparse(location).path)
    return location
