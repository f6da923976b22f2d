"""`svg-quality evaluate FOLDER`: the model checked on logos it never saw.

    folder <type>/<file> ──prepare's code──> normalized logos (+ rejects, reported)
        ──label's code──> real VTracer SSIM for a few parameter sets each (defaults first),
                          at the model's view and at each of ``sizes`` the logo reaches
        ──scorer──> predicted SSIM ──> validate's metrics, overall, per logo type, per size

The scorer is pluggable: :func:`predictor_scorer` serves the exported model (the CLI);
:func:`model_scorer` the trained model file (validate's ``extra_sets``, which runs before
export). Labels are cached in the work dir, so an interrupted evaluate resumes.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from svg_quality import io
from svg_quality.config import LOGO_TYPES, DataConfig, LabelConfig, SplitConfig, VtracerConfig
from svg_quality.metrics import finite_or_none, full_metrics, ranking_metrics
from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS

# (normalized logo PNG at the view, raw parameter sets [N, 8] in the view's frame, the long
# side they are traced at) -> predicted SSIM [N], log10 bytes [N] or None
Scorer = Callable[[Path, np.ndarray, int], tuple[np.ndarray, np.ndarray | None]]
LAYOUT = f"<logo_type>/<image file> (types such as {', '.join(LOGO_TYPES)})"
# What evaluate writes into its report folder, and nothing else: the report files, the
# label cache and the manifest that marks the folder as evaluate's own. A rerun replaces
# these names only; a folder without the manifest is someone else's and is refused.
REPORT_FILES = ("metrics.json", "per_type.csv", "predictions.csv", "rejects.csv", "report.md")
WORK_DIR = ".work"
MANIFEST = "evaluate-manifest.json"
WRITTEN_BY = "svg-quality evaluate"


@dataclass(frozen=True)
class ModelInfo:
    """What evaluate must know of the model: its logo normalization and VTracer settings."""

    image_size: int
    min_size: int
    vtracer: Mapping[str, Any]  # colormode, hierarchical, mode
    ranges: Mapping[str, tuple[float, float]]
    sizes: tuple[int, ...] = ()  # the long sides it was trained at (more than one: size input)


@dataclass
class EvalResult:
    folder: str
    predictions: pd.DataFrame  # every labelled row; predicted NaN-free, actual NaN if failed
    rejects: pd.DataFrame  # source, reason, detail
    metrics: dict[str, Any]
    per_type: pd.DataFrame
    files: list[Path] = field(default_factory=list)


def predictor_scorer(export_dir: str | Path, runtime: str = "onnx") -> tuple[Scorer, ModelInfo]:
    """The exported predictor as a scorer (only its public API: load, prepare, score)."""
    from svg_quality.serving.predictor import DEFAULT_MIN_SIZE, Predictor

    p = Predictor.load(export_dir, runtime)
    meta = p.metadata
    info = ModelInfo(
        image_size=int(meta["logo"]["image_size"]),
        min_size=int(meta["logo"].get("min_size", DEFAULT_MIN_SIZE)),
        vtracer={k: meta["vtracer"][k] for k in ("colormode", "hierarchical", "mode")},
        ranges={n: tuple(meta["param_ranges"][n]) for n in PARAM_NAMES},
        sizes=p.sizes,
    )

    def score(path: Path, raw: np.ndarray, long_side: int) -> tuple[np.ndarray, np.ndarray | None]:
        ssim, log10_bytes = p.score_candidates(p.prepare(path, long_side=long_side), raw)
        return ssim, log10_bytes if p.has_size_head else None

    return score, info


def model_scorer(model: Any, meta: Mapping[str, Any], vtracer: Mapping[str, Any]) -> Scorer:
    """A trained model file's network (``model.load_model``) as a scorer, its inputs built
    with the featurize stage's code exactly as ``dataset.build_arrays`` builds them."""
    from PIL import Image

    from svg_quality.inputspec import InputSpec
    from svg_quality.serving.predictor import logo_blocks, logo_inputs
    from svg_quality.trainer import predict

    spec = InputSpec.from_meta(meta["input"])
    backbone = None
    if spec.uses_resnet:
        from svg_quality.serving.graphs import rebuild_backbone

        backbone = rebuild_backbone(meta["features"]["weights"])[0]

    def score(path: Path, raw: np.ndarray, long_side: int) -> tuple[np.ndarray, None]:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        feats = None
        if backbone is not None:
            import torch

            from svg_quality.backbone import preprocess

            with torch.inference_mode():
                feats = backbone(preprocess(Image.fromarray(rgb))[None]).numpy()
        blocks = logo_blocks(logo_inputs(rgb, spec, vtracer, long_side=long_side), feats)
        x = spec.rows({**blocks, "params": raw}, broadcast=True)  # [n, spec.width]
        return predict(model, x).astype(np.float64), None

    return score


def read_folder(
    folder: Path, info: ModelInfo, workers: int, sizes: tuple[int, ...] = ()
) -> tuple[pd.DataFrame, Any]:
    """Normalize ``folder``'s logos with prepare's own code; unusable files become rejects.
    Every logo whose source reaches a long side in ``sizes`` is also stored at it."""
    from svg_quality import prepare

    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder; give a folder laid out as {LAYOUT}")
    data = DataConfig(
        sources=(str(folder),),
        image_size=info.image_size,
        min_size=info.min_size,
        sizes=sizes,
        size_share=1.0,
    )
    prep = prepare.collect(data, SplitConfig(), workers=max(workers, 1))
    if prep.logos.empty:
        counts = ", ".join(f"{n} {r}" for r, n in Counter(prep.rejects["reason"]).most_common())
        first = "; ".join(f"{r.source}: {r.reason}" for r in prep.rejects.head(3).itertuples())
        raise ValueError(
            f"{folder}: no usable logo ({counts or 'no files found'}{'; ' if first else ''}"
            f"{first}); lay it out as {LAYOUT}, images at least {info.min_size} px a side"
        )
    return prep.logos.assign(split="eval"), prep


def evaluate(
    folder: str | Path,
    scorer: Scorer,
    info: ModelInfo,
    work_dir: str | Path,
    *,
    samples: int = 8,
    seed: int = 0,
    workers: int = 0,
    timeout_s: float = 60.0,
    design: LabelConfig | None = None,
    sizes: tuple[int, ...] = (),
    progress: bool = True,
    cluster: str | None = None,
) -> EvalResult:
    """Label ``folder``'s logos (``samples`` sets each, VTracer's defaults first, with the
    label stage's ``design``: local box and share) and score them with ``scorer``; at the
    model's view and, for every logo whose source is at least that large, at each long side
    in ``sizes`` (traced with the view's sets scaled, as the label stage does); on the
    Dask scheduler at ``cluster`` when given (the label stage's ``label.cluster`` path)."""
    from svg_quality.labeling import label_dataset

    folder, work = Path(folder), Path(work_dir)
    sizes = check_sizes(sizes, info.image_size)
    cores = len(os.sched_getaffinity(0))
    workers = min(workers, cores) if workers > 0 else 0  # never more processes than cores
    logos, prep = read_folder(folder, info, workers or cores, sizes)
    with io.atomic_dir(work / "logos") as tmp:  # label reads <image_id>.png from here
        for image_id, png in prep.pngs.items():
            (tmp / f"{image_id}.png").write_bytes(png)
        for image_id, sized in prep.sized.items():  # and <size>/<image_id>.png
            for size, png in sized.pngs.items():
                (tmp / str(size)).mkdir(exist_ok=True)
                (tmp / str(size) / f"{image_id}.png").write_bytes(png)
    d = design or LabelConfig()
    label_cfg = LabelConfig(
        samples_per_image=samples,
        samples_per_size=samples,
        seed=seed,
        workers=workers,
        timeout_s=timeout_s,
        local_share=d.local_share,
        local_box={k: v for k, v in d.local_box.items() if k in info.ranges},
        cluster=cluster,
    )
    vt = VtracerConfig(**info.vtracer, ranges={k: tuple(v) for k, v in info.ranges.items()})
    labels, _ = label_dataset(
        logos,
        work / "logos",
        work / "labels",
        vt,
        label_cfg,
        image_size=info.image_size,
        progress=progress,
        cluster_where=f"--cluster {cluster}",
    )
    rows = []
    for (image_id, size), g in labels.groupby(["image_id", "size"], sort=True):
        raw = g[list(PARAM_NAMES)].to_numpy(dtype=np.float32)  # [n, 8]
        ssim, log10_bytes = scorer(work / "logos" / f"{image_id}.png", raw, int(size))
        out = g[["image_id", "logo_type", "size", *PARAM_NAMES, "status"]].copy()
        out["actual"] = g["ssim"].where(g["status"] == "ok")
        out["predicted"] = np.asarray(ssim, dtype=np.float64)
        if log10_bytes is not None:
            out["actual_log10_bytes"] = np.log10(g["svg_bytes"].astype(float).clip(lower=1))
            out["predicted_log10_bytes"] = np.asarray(log10_bytes, dtype=np.float64)
        rows.append(out)
    pred = pd.concat(rows, ignore_index=True)
    pred.insert(2, "source", pred["image_id"].map(logos.set_index("image_id")["source"]))
    metrics, per_type = compute_metrics(pred)
    metrics["files"] = {"logos": len(logos), "rejected": len(prep.rejects)}
    metrics["label"] = {
        "samples_per_image": samples,
        "sizes": [info.image_size, *sizes],
        "seed": seed,
        "local_share": label_cfg.local_share,
        "status": {k: int(v) for k, v in Counter(labels["status"]).items()},
    }
    return EvalResult(str(folder), pred, prep.rejects, metrics, per_type)


def evaluate_folder(
    folder: str | Path,
    export_dir: str | Path = "models/export",
    out: str | Path | None = None,
    *,
    runtime: str = "onnx",
    work_dir: str | Path | None = None,
    force: bool = False,
    **kw: Any,
) -> EvalResult:
    """:func:`evaluate` with the exported predictor, written to ``out`` (default
    ``reports/evaluate/<folder name>``); labels cached in ``work_dir`` (``<out>/.work``).

    ``out`` is checked before any work (:func:`check_out`): only a new or empty folder, or
    one an earlier evaluate wrote (its manifest), is written to, unless ``force``; and
    never the input folder, the model's, the working directory or a folder holding them."""
    folder = Path(folder)
    out = Path(out) if out is not None else Path("reports/evaluate") / folder.resolve().name
    check_out(out, folder, export_dir, force=force)
    work = Path(work_dir) if work_dir is not None else out / WORK_DIR
    scorer, info = predictor_scorer(export_dir, runtime)
    if kw.get("sizes") is None:  # the larger sizes the model was trained at
        kw["sizes"] = info.sizes[1:]
    claim(out, folder)  # before the label cache goes in: an interrupted run stays ours
    res = evaluate(folder, scorer, info, work, **kw)
    res.metrics["model"] = {"export_dir": str(export_dir), "runtime": runtime}
    write(res, out)
    return res


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out(
    out: Path, folder: Path, export_dir: str | Path | None = None, *, force: bool = False
) -> None:
    """Refuse a report folder evaluate must not write into: a file; the input folder, a
    folder inside it or holding it; a folder holding the model or the working directory
    (all refused even with ``force``); an existing non-empty folder evaluate did not
    write (no manifest), unless ``force``. With ``force`` evaluate still writes only its
    own file names (:data:`REPORT_FILES`, ``.work``, the manifest) and deletes nothing."""
    target = out.resolve()
    src = folder.resolve()
    if _inside(target, src) or _inside(src, target):
        raise ValueError(
            f"{out}: is or overlaps the input folder {folder}; give --out a folder outside it "
            f"(default reports/evaluate/{src.name})"
        )
    guarded = [(Path.cwd().resolve(), "the working directory")]
    if export_dir is not None:
        guarded.append((Path(export_dir).resolve(), f"the model {export_dir}"))
    for path, what in guarded:
        if _inside(path, target):
            raise ValueError(
                f"{out}: holds {what}; give --out a new folder of its own, e.g. "
                f"reports/evaluate/{src.name}"
            )
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder; give --out a folder path")
    if force or not out.is_dir() or owned(out) or not any(out.iterdir()):
        return
    raise ValueError(
        f"{out}: exists, is not empty and was not written by evaluate (no {MANIFEST}); give "
        "--out a new or empty folder, or add --force to write evaluate's files into it "
        "(nothing else there is touched)"
    )


def _has_manifest(out: Path) -> bool:
    import json

    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("written_by") == WRITTEN_BY


def owned(out: Path) -> bool:
    """Whether an earlier evaluate wrote ``out``: its manifest, or (a report from before
    the manifest) all five report files and nothing but evaluate's names."""
    if _has_manifest(out):
        return True
    names = {p.name for p in out.iterdir()}
    return set(REPORT_FILES) <= names <= {*REPORT_FILES, WORK_DIR, MANIFEST}


def claim(out: Path, folder: Path) -> None:
    """Create ``out`` and mark it as evaluate's (the manifest), before anything else is
    written there."""
    out.mkdir(parents=True, exist_ok=True)
    if not _has_manifest(out):
        _write_manifest(out, folder, files=[])


def _write_manifest(out: Path, folder: Path | str, files: list[str]) -> None:
    io.write_json(
        out / MANIFEST,
        {"written_by": WRITTEN_BY, "folder": str(folder), "files": [*files, WORK_DIR]},
    )


def check_sizes(sizes: Any, view: int) -> tuple[int, ...]:
    """``sizes`` as ascending long sides above the view (``view``); a clear error otherwise."""
    out = sorted({int(s) for s in sizes})
    bad = [s for s in out if not view < s <= 4096]
    if bad:
        raise ValueError(
            f"size {bad[0]} is invalid; allowed: long sides in px above the model's view "
            f"({view}) and at most 4096"
        )
    return tuple(out)


def compute_metrics(pred: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    """Validate's metrics on the ok rows: overall, per type, ranking and size head at the
    model's view (the smallest size; comparable with evaluations before sizes), and the
    metrics and ranking at every size (``by_size``)."""
    from svg_quality.validation import per_type_metrics, type_order

    ok_all = pred[pred["status"] == "ok"]
    if ok_all.empty:
        raise ValueError("VTracer failed on every sample; see predictions.csv's status column")
    by_size: dict[str, Any] = {}
    for size, g in ok_all.groupby("size", sort=True):
        by_size[str(int(size))] = {
            **full_metrics(g["actual"], g["predicted"]),
            "n_images": int(g["image_id"].nunique()),
            "rank": ranking_metrics(g, VTRACER_DEFAULTS),
        }
    ok = ok_all[ok_all["size"] == ok_all["size"].min()]
    out: dict[str, Any] = {"overall": full_metrics(ok["actual"], ok["predicted"])}
    out["by_size"] = by_size
    out["rank"] = ranking_metrics(ok, VTRACER_DEFAULTS)
    per_type = per_type_metrics(ok, min_examples=1)
    out["type"] = {r.logo_type: r._asdict() for r in per_type.drop(columns="status").itertuples()}
    for t in type_order(ok["logo_type"].tolist()):
        out["type"][t]["rank"] = ranking_metrics(ok[ok["logo_type"] == t], VTRACER_DEFAULTS)
    if "predicted_log10_bytes" in ok:
        from svg_quality.metrics import pearson, rmse

        a, p = ok["actual_log10_bytes"], ok["predicted_log10_bytes"]
        out["size"] = {"pearson_log10": pearson(a, p), "rmse_log10": rmse(a, p), "n": len(ok)}
    for entry in out["type"].values():
        entry.pop("Index", None)
    return finite_or_none(out), per_type


def write(res: EvalResult, out: Path) -> list[Path]:
    """metrics.json, per_type.csv, predictions.csv, rejects.csv, report.md into ``out``,
    each atomically (a temporary sibling renamed over the old one), then the manifest.
    Only these names are replaced: whatever else ``out`` holds stays."""
    names = REPORT_FILES
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / names[0], {"folder": res.folder, **res.metrics})
    for name, frame in zip(names[1:4], (res.per_type, res.predictions, res.rejects), strict=True):
        with io.atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    io.write_text(out / names[4], report(res))
    _write_manifest(out, res.folder, list(names))
    res.files = [out / n for n in names]
    return res.files


def _f(v: Any, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def table(res: EvalResult) -> str:
    """The short table the CLI prints: n, r, RMSE, Spearman, regret per type and overall."""
    m = res.metrics
    lines = [f"{'type':<10} {'logos':>5} {'rows':>5} {'r':>7} {'rmse':>7} {'rho':>7} {'regret':>7}"]
    entries = [(t, e, e["rank"]) for t, e in m["type"].items()]
    entries.append(("overall", {**m["overall"], "n_images": m["rank"]["logos"]}, m["rank"]))
    sizes = m.get("by_size", {})
    if len(sizes) > 1:  # the rows above are at the model's view; then each size
        entries += [(f"{s} px", e, e["rank"]) for s, e in sizes.items()]
    for name, e, r in entries:
        lines.append(
            f"{name:<10} {e['n_images']:>5} {e['n']:>5} {_f(e['pearson']):>7} {_f(e['rmse']):>7}"
            f" {_f(r['spearman_mean']):>7} {_f(r['regret_mean']):>7}"
        )
    return "\n".join(lines)


def report(res: EvalResult) -> str:
    m, r = res.metrics, res.metrics["rank"]
    failed = {k: v for k, v in m["label"]["status"].items() if k != "ok"}
    lines = [
        f"# Evaluate: {res.folder}",
        "",
        f"{m['files']['logos']} logos scored, {m['files']['rejected']} files rejected "
        f"(rejects.csv); {m['label']['samples_per_image']} parameter sets per logo and "
        f"long side ({', '.join(map(str, m['label']['sizes']))} px; a larger size only where "
        f"the source reaches it), VTracer's defaults first; failed samples: "
        f"{failed or 'none'}. The overall, type and ranking figures are at the model's "
        "view; the px rows at each size.",
        "",
        "```",
        table(res),
        "```",
        "",
        f"Within-logo ranking: Spearman {_f(r['spearman_mean'])}, top-1 regret "
        f"{_f(r['regret_mean'])}, top pick beats VTracer's defaults on "
        f"{_f(r['beats_defaults_share'], 3)} of logos.",
    ]
    if "size" in m:
        s = m["size"]
        lines.append(
            f"Size head: r {_f(s['pearson_log10'])}, RMSE {_f(s['rmse_log10'])} on log10 bytes."
        )
    return "\n".join(lines) + "\n"
