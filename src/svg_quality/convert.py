"""`svg-quality convert`: logos in, the chosen (verified) SVG out, one per logo, at its size.

    INPUT... (files, or folders searched recursively) --find_jobs--> (source, out/rel.svg)
      --workers (local processes) or --cluster (Dask tasks, svg_quality.convert_cluster):
        convertlogo.convert_one: verify.suggest(objective, verify=K) at the input's size
        --> chosen SVG + the defaults' SVG + figures
      --main process: atomic writes, journal line, progress bar, per-logo line
        --> convert-report.json and index.html (the page: original, defaults, chosen)

Each worker loads the exported model once. Only the main process writes: the
SVG (atomically), its side files under ``OUT/.svg-quality/`` (the traced pixels as PNG
and the defaults' SVG, for the page), then one line of the journal
``OUT/.svg-quality-convert.jsonl``. A rerun into the same OUT keeps a logo only when its
journal line matches the input's content (SHA-256), the settings that decide the output
and the SVG on disk; anything else is converted again. An output that exists but that no
convert into this folder wrote (or that was edited since) is never overwritten without
``force``, nor is anything written through a symlink out of OUT. One convert at a time
writes into an OUT (a lock file); a second one stops with a message. A file that cannot
be read as an image is reported (status ``bad``) and the rest go on; files that are not
images are listed as skipped.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from svg_quality.convertlogo import Job, Output, Settings, convert_one
from svg_quality.convertpage import page
from svg_quality.io import file_digest, sha256_hex, write_bytes, write_json, write_text
from svg_quality.serving.predictor import Predictor
from svg_quality.workers import die_with_parent

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
JOURNAL = ".svg-quality-convert.jsonl"
LOCK = ".svg-quality-convert.lock"
REPORT = "convert-report.json"
PAGE = "index.html"
SIDE = ".svg-quality"  # OUT/SIDE/<rel>.png (traced pixels), <rel>.defaults.svg: the page's


def find_jobs(inputs: Sequence[str | Path], skipped: list[str] | None = None) -> list[Job]:
    """Files as given, folders searched recursively for image files (relative paths kept).

    A folder's files keep their path below it; a file given directly lands at OUT's top.
    Two inputs that would write the same output path fail before any work. Files of a
    folder that are not images (by suffix), and links that lead nowhere or in a loop, are
    appended to ``skipped`` (``"path: why"``). Linked folders are not followed.
    """
    jobs: list[Job] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = []
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    files.append(f)
                elif skipped is not None and f.is_file():
                    skipped.append(f"{f}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
                elif skipped is not None and f.is_symlink() and not f.exists():
                    skipped.append(f"{f}: a link that leads nowhere (or in a loop)")
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
            if isinstance(rec, dict) and rec.get("status") == "ok" and "output" in rec:
                records[rec["output"]] = rec  # the last line of an output wins
    return records


def _digest(path: Path) -> str | None:
    try:
        return file_digest(path)
    except OSError:
        return None


def _inside(out: Path, rel: str) -> bool:
    """Whether writing ``out/rel`` stays inside ``out``: no linked folder on the way and
    the file itself not a link."""
    target = out / rel
    if target.is_symlink():
        return False
    return target.parent.resolve().is_relative_to(out.resolve())


# --------------------------------------------------------------------------- the local pool

_PREDICTOR: Any = None


def _init_worker(settings: Settings, parent_pid: int) -> None:
    global _PREDICTOR
    die_with_parent(parent_pid)  # end with the batch, however it ends
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # workers are the parallelism
    _PREDICTOR = Predictor.load(settings.model, runtime=settings.runtime)


def _convert_in_worker(job: Job, settings: Settings) -> tuple[dict[str, Any], Output]:
    return convert_one(job, settings, _PREDICTOR)


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
        "refused": sum(r["status"] == "refused" for r in records),
    }
    with_default = [r for r in ok if r.get("default_ssim") is not None]
    if ok:
        out["mean_ssim"] = sum(r["ssim"] for r in ok) / len(ok)
        out["total_bytes"] = sum(r["svg_bytes"] for r in ok)
        out["total_bytes_vtracer"] = sum(r.get("vtracer_bytes", r["svg_bytes"]) for r in ok)
    if with_default:
        out["mean_ssim_defaults"] = sum(r["default_ssim"] for r in with_default) / len(with_default)
        total_default = sum(r["default_svg_bytes"] for r in with_default)
        out["total_bytes_defaults"] = total_default
        out["bytes_vs_defaults"] = sum(r["svg_bytes"] for r in with_default) / total_default
        out["kept_defaults"] = sum(bool(r["is_default"]) for r in with_default)
        out["colour_refused"] = sum(int(r.get("colour_refused") or 0) for r in with_default)
    return out


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name) escaped, so one logo
    stays one line."""
    return text if text.isprintable() else repr(text)[1:-1]


def logo_line(rec: dict[str, Any]) -> str:
    """One human line per logo."""
    out, src = printable(rec["output"]), printable(rec["source"])
    if rec["status"] == "exists":
        return f"exists  {out}  (not overwritten; --force to replace)"
    if rec["status"] == "refused":
        return f"refused {out}  ({rec['error']})"
    if rec["status"] != "ok":
        err = printable(rec["error"])
        return f"{rec['status']:<7} {err if src in err else src + ': ' + err}"
    tag = {"defaults": " (VTracer defaults)", "fallback": " (defaults, path_precision "}.get(
        rec.get("origin") or ("defaults" if rec["is_default"] else "model"), ""
    )
    if tag.startswith(" (defaults,"):
        tag += f"{rec['params']['path_precision']:g})"
    resumed = " [done before]" if rec.get("resumed") else ""
    change = rec["svg_bytes"] / rec["default_svg_bytes"] - 1.0
    size = f"  {rec['width']}x{rec['height']}" if "width" in rec else ""
    if rec.get("resampled"):
        size += f" (traced at {rec['traced_width']}x{rec['traced_height']})"
    colour = f"  dE {rec['delta_e']:.2f}" if rec.get("delta_e") is not None else ""
    minified = f" (VTracer {rec['vtracer_bytes']:,} B)" if rec.get("minified") else ""
    return (
        f"ok      {out}{size}  SSIM {rec['ssim']:.4f} (defaults {rec['default_ssim']:.4f})"
        f"{colour}  {rec['svg_bytes']:,} B{minified} (defaults {rec['default_svg_bytes']:,} B, "
        f"{change:+.0%}){tag}{resumed}"
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
    for k in ("bad", "failed", "exists", "refused", "skipped"):
        if k not in s:
            continue
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


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold ``out``'s convert lock (an advisory ``flock``, released when the process ends,
    however it ends); a second convert into the same folder stops here."""
    import fcntl

    fh = (out / LOCK).open("a")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"{out}: another svg-quality convert is writing into this folder; wait for it "
                "to finish, or convert into another folder with -o"
            ) from None
        yield
    finally:
        fh.close()


def _plan(
    jobs: Sequence[Job], out: Path, done: dict[str, dict[str, Any]], key: str, force: bool
) -> tuple[dict[str, dict[str, Any]], list[tuple[Job, str | None]]]:
    """Per job: a record already final (resumed, exists, refused), or work to do with the
    input's digest."""
    records: dict[str, dict[str, Any]] = {}
    todo: list[tuple[Job, str | None]] = []
    for j in jobs:
        target = out / j.rel
        if not (_inside(out, j.rel) and _inside(out, f"{SIDE}/{j.rel}")):
            records[j.rel] = {
                "source": str(j.source),
                "output": j.rel,
                "status": "refused",
                "error": "the output path leads out of the output folder through a link",
            }
            continue
        rec = done.get(j.rel)
        digest = _digest(j.source)
        ours = rec is not None and target.is_file() and _digest(target) == rec.get("svg_sha256")
        if ours and rec.get("input_sha256") == digest and rec.get("settings") == key and not force:
            records[j.rel] = {**rec, "resumed": True}
        elif target.exists() and not ours and not force:
            records[j.rel] = {"source": str(j.source), "output": j.rel, "status": "exists"}
        else:
            todo.append((j, digest))
    return records, todo


def run_batch(
    inputs: Sequence[str | Path],
    out: str | Path,
    settings: Settings,
    *,
    workers: int = 1,
    force: bool = False,
    progress: bool = True,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    cluster: str | None = None,
    predictor: Predictor | None = None,
) -> dict[str, Any]:
    """Convert every logo of ``inputs`` into ``out``; returns ``{"summary", "logos"}`` and
    writes it to ``out/convert-report.json``, and the page ``out/index.html``.

    ``workers`` processes on this machine, or one task per logo on the Dask scheduler at
    ``cluster`` (:mod:`svg_quality.convert_cluster`); either way only this process writes,
    so a batch started one way resumes the other. ``predictor``: ``settings.model``
    already loaded (and checked) by the caller, used when one process converts."""
    from tqdm import tqdm

    if settings.verify < 1:
        raise ValueError(
            f"--verify {settings.verify} is invalid for convert; allowed: at least 1 (the SVG "
            "written is a verified conversion, compared with VTracer's defaults)"
        )
    if settings.max_side < 16:
        raise ValueError(f"--max-side {settings.max_side} is invalid; allowed: at least 16 px")
    skipped: list[str] = []
    jobs = find_jobs(inputs, skipped)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder; give an output folder with -o")
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        key = settings.key()
        records, todo = _plan(jobs, out, read_journal(out), key, force)
        for rec in records.values():
            if on_record is not None:
                on_record(rec)

        journal = (out / JOURNAL).open("a")
        bar = tqdm(total=len(todo), desc="convert", unit="logo", disable=not progress)
        digests = {j.rel: d for j, d in todo}

        def finish(rec: dict[str, Any], result: Output) -> None:
            if rec["status"] == "ok":
                rec.update(
                    input_sha256=digests[rec["output"]],
                    settings=key,
                    svg_sha256=sha256_hex(result.svg.encode()),
                )
                side = out / SIDE / rec["output"]
                with _no_interrupt():  # the SVG and its journal line, or neither
                    write_bytes(side.with_suffix(".png"), result.png)
                    write_text(side.with_suffix(".defaults.svg"), result.defaults_svg)
                    write_text(out / rec["output"], result.svg)  # atomic: never half an SVG
                    journal.write(json.dumps(rec) + "\n")
                    journal.flush()
            records[rec["output"]] = rec
            bar.update(1)
            if on_record is not None:
                on_record(rec)

        try:
            n = max(1, min(workers, os.cpu_count() or 1, len(todo)))
            if cluster and todo:
                from svg_quality.convert_cluster import run_dask  # lazy: Dask, cluster runs only

                run_dask([j for j, _ in todo], settings, cluster, finish)
            elif n == 1:
                if todo and predictor is None:
                    predictor = Predictor.load(settings.model, runtime=settings.runtime)
                for j, _ in todo:
                    finish(*convert_one(j, settings, predictor))
            else:
                # spawn, not fork: a caller with threads (onnxruntime's, Dask's; run_batch
                # inside the test suite) hung on forked workers, as prepare's pool did
                with ProcessPoolExecutor(
                    max_workers=n,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(settings, os.getpid()),
                ) as pool:
                    futures = [pool.submit(_convert_in_worker, j, settings) for j, _ in todo]
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
        summary = {**summarize(ordered), "skipped": len(skipped)}
        report = {
            "summary": summary,
            "settings": settings.__dict__,
            "skipped": skipped,
            "logos": ordered,
        }
        write_json(out / REPORT, report)

        write_text(out / PAGE, page(report))
    return report


def iter_lines(report: dict[str, Any]) -> Iterator[str]:
    for rec in report["logos"]:
        yield logo_line(rec)
    for line in report.get("skipped", []):
        yield f"skipped {printable(line)}"
    yield summary_line(report["summary"])
