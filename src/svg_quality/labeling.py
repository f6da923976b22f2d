"""The ``label`` stage's machinery: sample, convert, render, score; robustly and resumably.

Work unit: one *sample*, i.e. one (logo, size, parameter set). Every logo gets
``label.samples_per_image`` sets at the model's view (its ``<image_id>.png``, long side
``data.image_size``), and ``label.samples_per_size`` more at each larger long side ``S``
that prepare wrote it at (logos.csv ``sizes``; ``<S>/<image_id>.png``). At every size
the first set is VTracer's defaults and the rest a design like the view's, from a stream
of their own (seed :func:`size_seed`). The parameters are always in the frame of the
view: a row at ``S`` holds them as the model sees them, and VTracer converts the ``S`` px
PNG with them scaled by ``S / data.image_size`` (``paramspace.scale_params``; the
sandbox's :class:`Task` scales). The ``size`` column holds the long side converted.

Each sample runs inside a **sandbox**, a long-lived child Python process
(``python -m svg_quality.sandbox``, :mod:`svg_quality.sandbox`) that the parent feeds
over a pipe. A sandbox is killed and restarted when a sample exceeds
``label.timeout_s`` or when the process dies (``os._exit``, SIGKILL, a segfault), so
neither a hung nor a crashing VTracer call can hang or crash the stage. Every outcome
is a row with a ``status``:

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
set, one Dask task is one logo at one size (:class:`LogoJob`: its PNG shipped once, all
its samples at that size); a worker plugin (:class:`SandboxPlugin`) keeps one long-lived
sandbox per worker thread, so a task pays neither a process start nor a second SSIM
reference, and timeouts, panics and crashes end as the same rows as on the local pool.
Results do not depend on the backend: a sample's parameters depend only on
``(label.seed, image_id, size, sample)`` and VTracer, resvg and SSIM are deterministic.

Resume. Each finished row is appended (flushed) to a JSON-lines shard under
``<work_dir>/<fingerprint>/`` as soon as it arrives, so an interrupted run (Ctrl-C,
``kill -9``) loses at most the samples in flight. The fingerprint covers everything
a row depends on besides its logo and parameters (VTracer's fixed settings, library
versions), and inside it a row is found by its logo's content hash, its size when
larger than the view, and its 8 raw (view-frame) parameter values (:func:`sample_key`;
a view row's key has no size, as before sizes existed, so those shards are reused),
never by its position in the plan. So rows are only reused when they would be
recomputed identically (a larger size's PNG is prepare's drawing of that logo: a change
to how prepare makes it must bump ``_FORMAT_VERSION``), and any plan that asks for a
finished sample reuses it: raising ``label.samples_per_image`` or
``label.samples_per_size`` (the plan's first samples do not depend on the count, see
``paramspace.sample_params``) or changing the design computes only the new samples;
rows of new logos and sizes are simply added. ``timeout`` and ``worker_died`` rows are
transient and are retried by a rerun; every other status is reused. ``work_dir`` is
kept outside DVC's declared outs (``data/.label_work``), so ``dvc repro`` never
deletes it.

"Identical" output: the final parquet is sorted by ``(image_id, size, sample)`` and is
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
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from svg_quality.io import atomic_path, json_digest
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


def sample_key(image_id: str, params: Mapping[str, Any], size: int | None = None) -> str:
    """A finished sample's resume key: the logo (a content hash), the larger long side it
    was converted at (None: the view, keyed as before sizes existed) and the 8 raw values
    (in the view's frame)."""
    values = [SPECS[n].kind(params[n]) for n in PARAM_NAMES]
    at = "" if size is None else f"@{int(size)}"
    return f"{image_id}{at}:{json.dumps(values)}"


def size_seed(seed: int, size: int) -> int:
    """The sampling seed of the parameter sets at the larger long side ``size``: a stream
    of its own, independent of the view's (``label.seed``) and of the other sizes'."""
    return int(np.random.SeedSequence([seed, size]).generate_state(1, np.uint64)[0])


def larger_sizes(value: Any) -> tuple[int, ...]:
    """A logos.csv ``sizes`` cell ("512 1024", "" or missing; read back as text or a
    number) as ascending long sides."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    if isinstance(value, int | float | np.integer | np.floating):
        return (int(value),)  # one size, read back as a number
    try:
        return tuple(sorted(int(v) for v in str(value).split()))
    except ValueError:
        raise ValueError(
            f"logos.csv: sizes = {str(value)[:40]!r} is invalid; allowed: long sides in px "
            "separated by spaces, or empty; rerun `dvc repro prepare`"
        ) from None


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
                    rows[sample_key(row["image_id"], row, row.get("size"))] = row
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


class Planned(NamedTuple):
    """One sample of the plan; ``size`` None: at the view."""

    image_id: str
    size: int | None
    sample: int
    params: dict[str, float]
    path: Path

    @property
    def key(self) -> str:
        return sample_key(self.image_id, self.params, self.size)


def plan(
    logos: pd.DataFrame,
    logos_dir: Path,
    vtracer_cfg: VtracerConfig,
    label_cfg: LabelConfig,
    views: Mapping[str, int],
) -> list[Planned]:
    """Every sample of the dataset, in output order: by logo, the view's sets, then each
    larger size's (logos' ``sizes`` column; ``views``: each logo's view long side, which
    every larger size must exceed)."""
    ranges, design = (
        vtracer_cfg.ranges,
        {
            "local_box": label_cfg.local_box,
            "local_share": label_cfg.local_share,
        },
    )
    sizes = dict(zip(logos["image_id"], logos["sizes"], strict=True)) if "sizes" in logos else {}
    out = []
    for image_id in sorted(logos["image_id"]):
        n, seed = label_cfg.samples_per_image, label_cfg.seed
        sets = sample_params(image_id, n, ranges, seed, **design)
        path = logos_dir / f"{image_id}.png"
        out.extend(Planned(image_id, None, i, p, path) for i, p in enumerate(sets))
        for size in larger_sizes(sizes.get(image_id)):
            if size <= views[image_id]:
                raise ValueError(
                    f"logos.csv: logo {image_id} lists size {size}, not above its view's "
                    f"long side {views[image_id]} (data.image_size); rerun `dvc repro prepare`"
                )
            n, seed = label_cfg.samples_per_size, size_seed(label_cfg.seed, size)
            sets = sample_params(image_id, n, ranges, seed, **design)
            path = logos_dir / str(size) / f"{image_id}.png"
            out.extend(Planned(image_id, size, i, p, path) for i, p in enumerate(sets))
    return out


def label_dataset(
    logos: pd.DataFrame,
    logos_dir: str | Path,
    work_dir: str | Path,
    vtracer_cfg: VtracerConfig,
    label_cfg: LabelConfig,
    *,
    image_size: int | None = None,
    faults: Mapping[tuple, str] | None = None,
    progress: bool = True,
    cluster_where: str | None = None,
) -> tuple[pd.DataFrame, LabelStats]:
    """Label every logo in ``logos`` (a logos.csv frame) at the view and at its larger
    ``sizes``, reusing rows stored in ``work_dir``.

    ``image_size``: the view's long side (data.image_size), which a larger size's
    parameters are scaled from; None: each logo's long side in ``logos`` (width, height;
    prepare makes it data.image_size). Returns the labels table (DESIGN.md columns plus
    ``sample``, ``size``, ``split``, ``ssim_ms``), sorted by ``(image_id, size, sample)``.
    ``faults`` plants test-only failures by ``(image_id, sample)``, or
    ``(image_id, sample, size)`` at a larger size. ``cluster_where`` names where
    ``label_cfg.cluster`` came from in errors (default: ``label.cluster``).
    """
    import pandas as pd
    from tqdm import tqdm

    logos_dir = Path(logos_dir)
    needed = {"image_id", "logo_type", "split"} | ({"width", "height"} if not image_size else set())
    missing = needed - set(logos.columns)
    if missing:
        raise ValueError(f"logos.csv lacks column(s) {sorted(missing)}; rerun `dvc repro prepare`")
    if image_size:
        views = dict.fromkeys(logos["image_id"], image_size)
    else:
        long_sides = logos[["width", "height"]].max(axis=1).astype(int)
        views = dict(zip(logos["image_id"], long_sides, strict=True))
    work = plan(logos, logos_dir, vtracer_cfg, label_cfg, views)
    store = ShardStore(Path(work_dir) / fingerprint(vtracer_cfg))
    stored = store.load()
    todo = [w for w in work if w.key not in stored or stored[w.key]["status"] in TRANSIENT]
    for w in todo:
        if not w.path.is_file():
            raise FileNotFoundError(f"{w.path}: logo listed in logos.csv is missing; rerun prepare")

    faults = dict(faults or {})

    def fault(w: Planned) -> str | None:
        return faults.get(
            (w.image_id, w.sample) if w.size is None else (w.image_id, w.sample, w.size)
        )

    def tasks() -> Iterator[Task]:
        png_cache: tuple[Path, bytes] | None = None
        for w in todo:
            if png_cache is None or png_cache[0] != w.path:
                png_cache = (w.path, w.path.read_bytes())
            view = views[w.image_id] if w.size else None
            yield Task(
                w.image_id, w.sample, w.params, png_cache[1], vtracer_cfg, fault(w), w.size, view
            )

    def jobs() -> Iterator[LogoJob]:  # the cluster's unit: one logo at one size, its PNG read once
        by_png: dict[Path, list[Planned]] = defaultdict(list)
        for w in todo:
            by_png[w.path].append(w)
        for path, group in by_png.items():
            image_id, size = group[0].image_id, group[0].size
            samples = tuple((w.sample, w.params, fault(w)) for w in group)
            view = views[image_id] if size else None
            yield LogoJob(image_id, path.read_bytes(), vtracer_cfg, samples, size, view)

    stats = LabelStats(total=len(work), reused=len(work) - len(todo))
    stats.backend = "dask" if label_cfg.cluster else "local"
    stats.workers = 0 if label_cfg.cluster else resolve_workers(label_cfg.workers)
    counts: dict[str, int] = defaultdict(int)
    bar = tqdm(total=len(todo), desc="label", unit="sample", disable=not progress or not todo)

    def on_row(row: dict[str, Any]) -> None:
        store.append(row)
        stored[sample_key(row["image_id"], row, row.get("size"))] = row
        counts[row["status"]] += 1
        bar.update(1)
        bar.set_postfix({k: v for k, v in counts.items() if k != "ok"}, refresh=False)

    t0 = time.perf_counter()
    try:
        if todo and label_cfg.cluster:
            from svg_quality.label_cluster import run_dask  # lazy: Dask, cluster runs only

            run_dask(jobs(), label_cfg.cluster, label_cfg.timeout_s, on_row, cluster_where)
        elif todo:
            run_local(tasks(), stats.workers, label_cfg.timeout_s, on_row)
    finally:
        store.close()
        bar.close()
    stats.compute_s = time.perf_counter() - t0
    stats.computed = len(todo)
    stats.by_status_this_run = dict(counts)

    # A reused row takes this plan's sample number (the same values may sit elsewhere in
    # it); a view row is stored without its size (its key has none) and gets it here.
    rows = [dict(stored[w.key], sample=w.sample, size=w.size or views[w.image_id]) for w in work]
    df = pd.DataFrame(rows)
    meta = logos.set_index("image_id")[["logo_type", "split"]].copy()
    # where the logo came from (prepare's origin: synthetic, artwork, folder)
    meta["origin"] = logos["origin"].to_numpy() if "origin" in logos.columns else "unknown"
    df = df.join(meta, on="image_id")
    return _typed(df), stats


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    df = df.sort_values(["image_id", "size", "sample"], kind="stable").reset_index(drop=True)
    out = pd.DataFrame(
        {
            "image_id": df["image_id"].astype(str),
            "sample": df["sample"].astype("int64"),
            "size": df["size"].astype("int64"),
            "logo_type": df["logo_type"].astype(str),
            "split": df["split"].astype(str),
            "origin": df["origin"].astype(str),
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
        # per long side converted (the view's, data.image_size, and data.sizes)
        "by_size": {str(size): _size_summary(g) for size, g in df.groupby("size", sort=True)},
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


def _size_summary(rows: pd.DataFrame) -> dict[str, Any]:
    ok = rows[rows["status"] == "ok"]
    return {
        "rows": len(rows),
        "images": int(rows["image_id"].nunique()),
        "ok": len(ok),
        "ssim_mean": float(ok["ssim"].mean()) if len(ok) else None,
        "mean_ms": {
            c.removesuffix("_ms"): float(ok[c].mean()) if len(ok) else None for c in TIMING_COLUMNS
        },
    }


def plot_ssim_by_type(df: pd.DataFrame, path: str | Path) -> None:
    """SSIM distribution per logo type (ok rows), written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
