"""`svg-quality convert`: logos in, the chosen (verified) SVG out, one per logo.

    INPUT... (files, or folders searched recursively) --find_jobs--> (source, out/rel.svg)
      --workers: Predictor + verify.suggest(objective, verify=K)--> chosen SVG + figures
      --main process: atomic write, journal line, progress bar, per-logo line--> report

Each worker process loads the exported model once. Only the main process writes: the
SVG (atomically), then one line of the journal ``OUT/.svg-quality-convert.jsonl``. An
interrupted batch rerun with the same OUT converts only the logos without a journal
line; an output that exists but is not in the journal (not written by a convert into
this folder) is never overwritten without ``force``. A file that cannot be read as an
image is reported (status ``bad``) and the rest go on.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
JOURNAL = ".svg-quality-convert.jsonl"
REPORT = "convert-report.json"


@dataclass(frozen=True)
class Job:
    source: Path
    rel: str  # output path relative to OUT (the input's relative path, suffix .svg)


@dataclass(frozen=True)
class Settings:
    model: str
    runtime: str
    objective: str
    verify: int
    candidates: int
    min_ssim: float | None
    tolerance: float
    seed: int


def find_jobs(inputs: Sequence[str | Path]) -> list[Job]:
    """Files as given, folders searched recursively for image files (relative paths kept).

    A folder's files keep their path below it; a file given directly lands at OUT's top.
    Two inputs that would write the same output path fail before any work.
    """
    jobs: list[Job] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
            )
            jobs += [Job(f, f.relative_to(p).with_suffix(".svg").as_posix()) for f in files]
        elif p.is_file():
            jobs.append(Job(p, p.with_suffix(".svg").name))
        else:
            raise FileNotFoundError(f"{p}: no such file or folder (convert takes logos or folders)")
    seen: dict[str, Path] = {}
    for j in jobs:
        if j.rel in seen:
            raise ValueError(
                f"{seen[j.rel]} and {j.source} would both write {j.rel}; convert them into "
                "different output folders"
            )
        seen[j.rel] = j.source
    if not jobs:
        raise ValueError(
            f"no image files ({', '.join(IMAGE_SUFFIXES)}) found in {', '.join(map(str, inputs))}"
        )
    return jobs


def read_journal(out: Path) -> dict[str, dict[str, Any]]:
    """The records of logos already converted into ``out`` (by output path); a torn last
    line (an interrupt mid-write) is ignored."""
    path = out / JOURNAL
    records: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("status") == "ok" and (out / rec["output"]).is_file():
                records[rec["output"]] = rec
    return records


# --------------------------------------------------------------------------- the work per logo

_PREDICTOR: Any = None


def _init_worker(settings: Settings) -> None:
    global _PREDICTOR
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # workers are the parallelism
    from svg_quality.serving.predictor import Predictor

    _PREDICTOR = Predictor.load(settings.model, runtime=settings.runtime)


def convert_one(job: Job, settings: Settings) -> tuple[dict[str, Any], str]:
    """Suggest, verify and pick one logo's SVG -> (record, svg text); never raises for a
    bad image (status ``bad``) or a failed conversion (status ``failed``)."""
    from svg_quality.verify import suggest

    rec: dict[str, Any] = {"source": str(job.source), "output": job.rel}
    t0 = time.perf_counter()
    try:
        res = suggest(
            _PREDICTOR,
            job.source,
            objective=settings.objective,
            top_k=1,
            candidates=settings.candidates,
            seed=settings.seed,
            min_ssim=settings.min_ssim,
            tolerance=settings.tolerance,
            verify=settings.verify,
        )
    except (ValueError, FileNotFoundError) as exc:  # unreadable image, named by load_logo
        rec.update(status="bad", error=str(exc), ms=(time.perf_counter() - t0) * 1e3)
        return rec, ""
    except RuntimeError as exc:  # VTracer failed on every candidate
        rec.update(status="failed", error=str(exc), ms=(time.perf_counter() - t0) * 1e3)
        return rec, ""
    chosen, default = res.chosen, res.verified[0]
    rec.update(
        status="ok",
        objective=res.objective,
        params=chosen.candidate.params,
        is_default=chosen.candidate.is_default,
        fell_back=res.fell_back,
        predicted_ssim=chosen.candidate.predicted_ssim,
        predicted_bytes=chosen.candidate.predicted_bytes,
        ssim=chosen.ssim,
        svg_bytes=chosen.svg_bytes,
        n_paths=chosen.n_paths,
        default_predicted_ssim=default.candidate.predicted_ssim,
        default_predicted_bytes=default.candidate.predicted_bytes,
        default_ssim=default.ssim,
        default_svg_bytes=default.svg_bytes,
        verified=len(res.verified),
        ms=(time.perf_counter() - t0) * 1e3,
    )
    return rec, chosen.svg


def _convert_in_worker(job: Job, settings: Settings) -> tuple[dict[str, Any], str]:
    return convert_one(job, settings)


# --------------------------------------------------------------------------- the batch


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if r["status"] == "ok"]
    out: dict[str, Any] = {
        "logos": len(records),
        "converted": sum(r.get("resumed") is not True for r in ok),
        "resumed": sum(r.get("resumed") is True for r in ok),
        "ok": len(ok),
        "bad": sum(r["status"] == "bad" for r in records),
        "failed": sum(r["status"] == "failed" for r in records),
        "exists": sum(r["status"] == "exists" for r in records),
    }
    with_default = [r for r in ok if r.get("default_ssim") is not None]
    if ok:
        out["mean_ssim"] = sum(r["ssim"] for r in ok) / len(ok)
        out["total_bytes"] = sum(r["svg_bytes"] for r in ok)
    if with_default:
        out["mean_ssim_defaults"] = sum(r["default_ssim"] for r in with_default) / len(with_default)
        total_default = sum(r["default_svg_bytes"] for r in with_default)
        out["total_bytes_defaults"] = total_default
        out["bytes_vs_defaults"] = sum(r["svg_bytes"] for r in with_default) / total_default
        out["kept_defaults"] = sum(bool(r["is_default"]) for r in with_default)
    return out


def logo_line(rec: dict[str, Any]) -> str:
    """One human line per logo."""
    if rec["status"] == "exists":
        return f"exists  {rec['output']}  (not overwritten; --force to replace)"
    if rec["status"] != "ok":
        err = rec["error"]
        return f"{rec['status']:<7} {err if rec['source'] in err else rec['source'] + ': ' + err}"
    tag = " (VTracer defaults)" if rec["is_default"] else ""
    resumed = " [done before]" if rec.get("resumed") else ""
    change = rec["svg_bytes"] / rec["default_svg_bytes"] - 1.0
    return (
        f"ok      {rec['output']}  SSIM {rec['ssim']:.4f} (defaults {rec['default_ssim']:.4f})  "
        f"{rec['svg_bytes']:,} B (defaults {rec['default_svg_bytes']:,} B, {change:+.0%}){tag}"
        f"{resumed}"
    )


def summary_line(s: dict[str, Any]) -> str:
    parts = [
        f"{s['ok']}/{s['logos']} logos ok ({s['converted']} converted, {s['resumed']} done before)"
    ]
    if "mean_ssim" in s:
        parts.append(
            f"mean SSIM {s['mean_ssim']:.4f} vs defaults {s.get('mean_ssim_defaults', float('nan')):.4f}"
        )
    if "bytes_vs_defaults" in s:
        parts.append(
            f"{s['total_bytes']:,} B vs defaults {s['total_bytes_defaults']:,} B "
            f"({s['bytes_vs_defaults'] - 1:+.1%})"
        )
    for k in ("bad", "failed", "exists"):
        if s[k]:
            parts.append(f"{s[k]} {k}")
    return "; ".join(parts)


@contextlib.contextmanager
def _no_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back until the block is done, where the platform allows."""
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not (
        threading.main_thread()
    ):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a held SIGINT arrives here


def run_batch(
    inputs: Sequence[str | Path],
    out: str | Path,
    settings: Settings,
    *,
    workers: int = 1,
    force: bool = False,
    progress: bool = True,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Convert every logo of ``inputs`` into ``out``; returns ``{"summary", "logos"}`` and
    writes it to ``out/convert-report.json``."""
    from tqdm import tqdm

    from svg_quality.io import write_json, write_text

    if settings.verify < 1:
        raise ValueError(
            f"--verify {settings.verify} is invalid for convert; allowed: at least 1 (the SVG "
            "written is a verified conversion, compared with VTracer's defaults)"
        )
    jobs = find_jobs(inputs)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder; give an output folder with -o")
    out.mkdir(parents=True, exist_ok=True)
    done = read_journal(out)
    records: dict[str, dict[str, Any]] = {}
    todo: list[Job] = []
    for j in jobs:
        if j.rel in done and not force:
            records[j.rel] = {**done[j.rel], "resumed": True}
        elif (out / j.rel).exists() and not force:
            records[j.rel] = {"source": str(j.source), "output": j.rel, "status": "exists"}
        else:
            todo.append(j)
    for rec in records.values():
        if on_record is not None:
            on_record(rec)

    journal = (out / JOURNAL).open("a")
    bar = tqdm(total=len(todo), desc="convert", unit="logo", disable=not progress)

    def finish(rec: dict[str, Any], svg: str) -> None:
        if rec["status"] == "ok":
            with _no_interrupt():  # the SVG and its journal line, or neither
                write_text(out / rec["output"], svg)  # atomic: never half an SVG
                journal.write(json.dumps(rec) + "\n")
                journal.flush()
        records[rec["output"]] = rec
        bar.update(1)
        if on_record is not None:
            on_record(rec)

    try:
        if workers <= 1 or len(todo) <= 1:
            _init_worker(settings)
            for j in todo:
                finish(*convert_one(j, settings))
        else:
            with ProcessPoolExecutor(
                max_workers=workers, initializer=_init_worker, initargs=(settings,)
            ) as pool:
                futures = [pool.submit(_convert_in_worker, j, settings) for j in todo]
                try:
                    for f in as_completed(futures):
                        finish(*f.result())
                except KeyboardInterrupt:  # what is journaled is kept; a rerun resumes
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()
        journal.close()
    ordered = [records[j.rel] for j in jobs]
    report = {"summary": summarize(ordered), "settings": settings.__dict__, "logos": ordered}
    write_json(out / REPORT, report)
    return report


def iter_lines(report: dict[str, Any]) -> Iterator[str]:
    for rec in report["logos"]:
        yield logo_line(rec)
    yield summary_line(report["summary"])
