"""The ``label`` stage's machinery: sample, convert, render, score; robustly and resumably.

Work unit: one *sample*, i.e. one (logo, parameter set). Each sample runs inside a
**sandbox**, a long-lived child Python process (``python -m svg_quality.sandbox``, :mod:`svg_quality.sandbox`)
that the parent feeds over a pipe. A sandbox is killed and restarted when a sample
exceeds ``label.timeout_s`` or when the process dies (``os._exit``, SIGKILL, a
segfault), so neither a hung nor a crashing VTracer call can hang or crash the
stage. Every outcome is a row with a ``status``:

=============  ===========================================================
ok             converted, rendered and scored
panic          VTracer panicked (``pyo3_runtime.PanicException``)
render_error   resvg could not render VTracer's SVG
timeout        no result within ``label.timeout_s``; the sandbox was killed
worker_died    the sandbox process exited while working on this sample
error          anything else (the message is in ``error``)
=============  ===========================================================

Backends. Locally, ``label.workers`` sandboxes are driven by as many threads (the
work happens in the child processes, so threads are enough). With ``label.cluster``
set, one Dask task is one logo (:class:`LogoJob`: its PNG shipped once, all its
samples); a worker plugin (:class:`SandboxPlugin`) keeps one long-lived sandbox per
worker thread, so a task pays neither a process start nor a second SSIM reference,
and timeouts, panics and crashes end as the same rows as on the local pool.
Results do not depend on the backend: a sample's parameters depend only on
``(label.seed, image_id, sample)`` and VTracer, resvg and SSIM are deterministic.

Resume. Each finished row is appended (flushed) to a JSON-lines shard under
``<work_dir>/<fingerprint>/`` as soon as it arrives, so an interrupted run (Ctrl-C,
``kill -9``) loses at most the samples in flight. The fingerprint covers everything
a row depends on besides its logo and parameters (VTracer's fixed settings, library
versions), and inside it a row is found by its logo's content hash and its 8 raw
parameter values (:func:`sample_key`), never by its position in the plan. So rows are
only reused when they would be recomputed identically, and any plan that asks for a
finished sample reuses it: raising ``label.samples_per_image`` (the plan's first
samples do not depend on the count, see ``paramspace.sample_params``) or changing
the design computes only the new samples; rows of new logos are simply added. ``timeout`` and ``worker_died`` rows are transient and
are retried by a rerun; every other status is reused. ``work_dir`` is kept outside
DVC's declared outs (``data/.label_work``), so ``dvc repro`` never deletes it.

"Identical" output: the final parquet is sorted by ``(image_id, sample)`` and is
identical between an interrupted-then-resumed run and a clean run in every column
except the timing columns (``convert_ms, render_ms, ssim_ms``), which are
wall-clock measurements.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svg_quality.io import json_digest
from svg_quality.paramspace import PARAM_NAMES, SPECS, sample_params
from svg_quality.sandbox import (  # noqa: F401  (re-exported: the label API in one place)
    COLUMNS,
    FAULTS,
    STATUSES,
    TIMING_COLUMNS,
    TRANSIENT,
    LogoJob,
    Sandbox,
    Task,
    failed_row,
    resolve_workers,
    run_local,
    run_sample,
)

if TYPE_CHECKING:
    import pandas as pd

    from svg_quality.config import LabelConfig, VtracerConfig

_FORMAT_VERSION = 2  # bump when a row's meaning changes, to invalidate cached shards


# --------------------------------------------------------------------------- persistence


def fingerprint(vtracer_cfg: VtracerConfig) -> str:
    """Digest of everything a row's values depend on besides its logo and parameter set.

    Not the sampling design (ranges, ``samples_per_image``, seed): a stored row is found by
    :func:`sample_key`, its logo and its own parameter values, so any plan that asks for
    an already finished sample reuses it (issue 17: 12 -> 14 samples computes only 2 per logo).
    """
    from importlib.metadata import version

    payload = {
        "format": _FORMAT_VERSION,
        "colormode": vtracer_cfg.colormode,
        "hierarchical": vtracer_cfg.hierarchical,
        "mode": vtracer_cfg.mode,
        "vtracer": version("vtracer"),
        "resvg_py": version("resvg-py"),
    }
    return json_digest(payload)


def sample_key(image_id: str, params: Mapping[str, Any]) -> str:
    """A finished sample's resume key: the logo (a content hash) and the 8 raw values."""
    values = [SPECS[n].kind(params[n]) for n in PARAM_NAMES]
    return f"{image_id}:{json.dumps(values)}"


class ShardStore:
    """Append-only JSON-lines shards of finished rows under ``root``; one file per run."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._fh: io.TextIOWrapper | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """Every stored row by :func:`sample_key`; later shards win (a retry replaces a row)."""
        rows: dict[str, dict[str, Any]] = {}
        if not self.root.is_dir():
            return rows
        for path in sorted(self.root.glob("rows-*.jsonl")):
            with path.open() as fh:
                for line in fh:
                    if not line.endswith("\n"):
                        break  # a line cut short by kill -9: that sample was in flight
                    row = json.loads(line)
                    rows[sample_key(row["image_id"], row)] = row
        return rows

    def append(self, row: Mapping[str, Any]) -> None:
        if self._fh is None:
            self.root.mkdir(parents=True, exist_ok=True)
            name = f"rows-{time.time_ns():020d}-{os.getpid()}.jsonl"
            self._fh = (self.root / name).open("a")
        self._fh.write(json.dumps(row, sort_keys=True) + "\n")
        self._fh.flush()  # in the OS after this: survives kill -9 of this process

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# --------------------------------------------------------------------------- the stage


@dataclass
class LabelStats:
    total: int = 0
    reused: int = 0
    computed: int = 0
    compute_s: float = 0.0
    backend: str = "local"
    workers: int = 0
    by_status_this_run: dict[str, int] = field(default_factory=dict)


def plan(
    logos: pd.DataFrame, logos_dir: Path, vtracer_cfg: VtracerConfig, label_cfg: LabelConfig
) -> list[tuple[str, int, dict[str, float], Path]]:
    """Every (image_id, sample, params, png path) of the dataset, in output order."""
    out = []
    for image_id in sorted(logos["image_id"]):
        path = logos_dir / f"{image_id}.png"
        sets = sample_params(
            image_id,
            label_cfg.samples_per_image,
            vtracer_cfg.ranges,
            label_cfg.seed,
            local_box=label_cfg.local_box,
            local_share=label_cfg.local_share,
        )
        out.extend((image_id, i, p, path) for i, p in enumerate(sets))
    return out


def label_dataset(
    logos: pd.DataFrame,
    logos_dir: str | Path,
    work_dir: str | Path,
    vtracer_cfg: VtracerConfig,
    label_cfg: LabelConfig,
    *,
    faults: Mapping[tuple[str, int], str] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, LabelStats]:
    """Label every logo in ``logos`` (a logos.csv frame), reusing rows stored in ``work_dir``.

    Returns the labels table (DESIGN.md columns plus ``sample``, ``split``, ``ssim_ms``),
    sorted by ``(image_id, sample)``. ``faults`` plants test-only failures by key.
    """
    import pandas as pd
    from tqdm import tqdm

    logos_dir = Path(logos_dir)
    needed = {"image_id", "logo_type", "split"}
    missing = needed - set(logos.columns)
    if missing:
        raise ValueError(f"logos.csv lacks column(s) {sorted(missing)}; rerun `dvc repro prepare`")
    work = plan(logos, logos_dir, vtracer_cfg, label_cfg)
    store = ShardStore(Path(work_dir) / fingerprint(vtracer_cfg))
    stored = store.load()
    keys = [sample_key(image_id, params) for image_id, _, params, _ in work]
    todo = [
        w
        for w, key in zip(work, keys, strict=True)
        if key not in stored or stored[key]["status"] in TRANSIENT
    ]
    for _, _, _, path in todo:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: logo listed in logos.csv is missing; rerun prepare")

    faults = dict(faults or {})

    def tasks() -> Iterator[Task]:
        png_cache: tuple[Path, bytes] | None = None
        for image_id, i, params, path in todo:
            if png_cache is None or png_cache[0] != path:
                png_cache = (path, path.read_bytes())
            yield Task(image_id, i, params, png_cache[1], vtracer_cfg, faults.get((image_id, i)))

    def jobs() -> Iterator[LogoJob]:  # the cluster's unit: one logo, its PNG read once
        by_logo: dict[str, list[tuple[int, dict[str, float], str | None]]] = defaultdict(list)
        paths: dict[str, Path] = {}
        for image_id, i, params, path in todo:
            by_logo[image_id].append((i, params, faults.get((image_id, i))))
            paths[image_id] = path
        for image_id, samples in by_logo.items():
            png = paths[image_id].read_bytes()
            yield LogoJob(image_id, png, vtracer_cfg, tuple(samples))

    stats = LabelStats(total=len(work), reused=len(work) - len(todo))
    stats.backend = "dask" if label_cfg.cluster else "local"
    stats.workers = 0 if label_cfg.cluster else resolve_workers(label_cfg.workers)
    counts: dict[str, int] = defaultdict(int)
    bar = tqdm(total=len(todo), desc="label", unit="sample", disable=not progress or not todo)

    def on_row(row: dict[str, Any]) -> None:
        store.append(row)
        stored[sample_key(row["image_id"], row)] = row
        counts[row["status"]] += 1
        bar.update(1)
        bar.set_postfix({k: v for k, v in counts.items() if k != "ok"}, refresh=False)

    t0 = time.perf_counter()
    try:
        if todo and label_cfg.cluster:
            from svg_quality.label_cluster import run_dask

            run_dask(jobs(), label_cfg.cluster, label_cfg.timeout_s, on_row)
        elif todo:
            run_local(tasks(), stats.workers, label_cfg.timeout_s, on_row)
    finally:
        store.close()
        bar.close()
    stats.compute_s = time.perf_counter() - t0
    stats.computed = len(todo)
    stats.by_status_this_run = dict(counts)

    # A reused row takes this plan's sample number (the same values may sit elsewhere in it).
    rows = [dict(stored[key], sample=w[1]) for w, key in zip(work, keys, strict=True)]
    df = pd.DataFrame(rows)
    meta = logos.set_index("image_id")[["logo_type", "split"]]
    df = df.join(meta, on="image_id")
    return _typed(df), stats


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    df = df.sort_values(["image_id", "sample"], kind="stable").reset_index(drop=True)
    out = pd.DataFrame(
        {
            "image_id": df["image_id"].astype(str),
            "sample": df["sample"].astype("int64"),
            "logo_type": df["logo_type"].astype(str),
            "split": df["split"].astype(str),
        }
    )
    for name in PARAM_NAMES:
        out[name] = df[name].astype("int64" if SPECS[name].kind is int else "float64")
    out["ssim"] = pd.to_numeric(df["ssim"]).astype("float64")
    out["svg_bytes"] = pd.array(df["svg_bytes"], dtype="Int64")
    out["n_paths"] = pd.array(df["n_paths"], dtype="Int64")
    for col in TIMING_COLUMNS:
        out[col] = pd.to_numeric(df[col]).astype("float64")
    out["status"] = df["status"].astype(str)
    out["error"] = df["error"].astype(object).where(df["error"].notna(), None)
    return out[list(COLUMNS)]


def summarize(df: pd.DataFrame, stats: LabelStats) -> dict[str, Any]:
    """The numbers in reports/label/summary.json."""
    ok = df[df["status"] == "ok"]
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)

    def describe(s: pd.Series) -> dict[str, float]:
        if s.empty:
            return {"n": 0}
        d = {"n": int(s.size), "mean": float(s.mean()), "std": float(s.std(ddof=0))}
        d.update({f"q{int(q * 100):02d}": float(s.quantile(q)) for q in qs})
        return d

    failures = df.loc[df["status"] != "ok", "status"].value_counts()
    return {
        "rows": len(df),
        "images": int(df["image_id"].nunique()),
        "ok": len(ok),
        "failures": {s: int(failures.get(s, 0)) for s in STATUSES if s != "ok"},
        "ssim": describe(ok["ssim"]),
        "ssim_by_type": {t: describe(g["ssim"]) for t, g in ok.groupby("logo_type")},
        "mean_ms": {
            c.removesuffix("_ms"): float(ok[c].mean()) if len(ok) else None for c in TIMING_COLUMNS
        },
        "run": {
            "backend": stats.backend,
            "workers": stats.workers,
            "computed": stats.computed,
            "reused": stats.reused,
            "compute_s": round(stats.compute_s, 3),
            "samples_per_s": round(stats.computed / stats.compute_s, 2) if stats.computed else None,
            "status_this_run": stats.by_status_this_run,
        },
    }


def plot_ssim_by_type(df: pd.DataFrame, path: str | Path) -> None:
    """SSIM distribution per logo type (ok rows), written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from svg_quality.io import atomic_path

    ok = df[df["status"] == "ok"]
    types = sorted(ok["logo_type"].unique())
    fig, ax = plt.subplots(figsize=(7, 4))
    data = [ok.loc[ok["logo_type"] == t, "ssim"].to_numpy() for t in types]
    if data:
        ax.violinplot(data, showmedians=True)
    ax.set_xticks(
        range(1, len(types) + 1),
        labels=[f"{t}\n(n={len(d)})" for t, d in zip(types, data, strict=True)],
    )
    ax.set_ylabel("SSIM (logo vs VTracer rendering)")
    ax.set_title("Label distribution per logo type")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
