"""Label throughput: the local pool vs a real Dask LocalCluster on the same cores and logos.

Both run the label stage's own code (svg_quality.labeling.label_dataset) on the same
synthetic logos and parameter plan, each into a fresh work dir: first the local pool
with N sandboxes, then a LocalCluster of N worker processes with one thread each
(`label.cluster` pointed at its scheduler). Checks that the rows are identical in every
non-timing column, and prints samples/s and the per-sample time split for each.

    python bench/label_cluster.py [--per-type 10] [--samples 12] [--workers 2] [--size 256]
    python bench/label_cluster.py --smoke    # seconds: 1 logo per type, 1 worker, 1 round
    python bench/label_cluster.py --json bench/results/label_cluster.json   # also the record

Cluster start-up (workers importing the stack, sandboxes starting) is outside the timed
part: the cluster first labels a few warm-up logos, as a long-lived cluster would be warm.
Background load hits both alike as far as possible: the two paths alternate, `--rounds`
times each, and the best round of each counts. Prints the ratio cluster/local last.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import tempfile
from pathlib import Path

import pandas as pd

from benchjson import Record
from svg_quality.config import LOGO_TYPES, load_params
from svg_quality.images import to_rgb_on_white
from svg_quality.io import image_id_for
from svg_quality.labeling import TIMING_COLUMNS, label_dataset
from svg_quality.synthetic import generate


def make_logos(root: Path, per_type: int, size: int) -> tuple[pd.DataFrame, Path]:
    logos_dir = root / "logos"
    logos_dir.mkdir(parents=True)
    rows = []
    for t in LOGO_TYPES:
        for i in range(per_type):
            buf = io.BytesIO()
            to_rgb_on_white(generate(t, seed=1, index=i, size=size)).save(buf, format="PNG")
            image_id = image_id_for(buf.getvalue())
            (logos_dir / f"{image_id}.png").write_bytes(buf.getvalue())
            rows.append({"image_id": image_id, "logo_type": t, "split": "train"})
    return pd.DataFrame(rows), logos_dir


def figures(name: str, df: pd.DataFrame, stats) -> dict[str, float | int | str]:
    """One path's row: samples/s, samples, seconds and the mean ms of each timed part."""
    ok = df[df["status"] == "ok"]
    return {
        "path": name,
        "samples_per_s": stats.computed / stats.compute_s,
        "samples": stats.computed,
        "seconds": stats.compute_s,
        **{c: float(ok[c].mean()) for c in TIMING_COLUMNS},
    }


def line(row: dict) -> str:
    return (
        f"{row['path']:8s} {row['samples_per_s']:7.1f} samples/s ({row['samples']} in "
        f"{row['seconds']:.1f} s) | mean ms: convert {row['convert_ms']:.2f}  render "
        f"{row['render_ms']:.2f}  ssim {row['ssim_ms']:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--per-type", type=int, default=10, help="synthetic logos per logo type")
    ap.add_argument("--samples", type=int, default=12, help="parameter sets per logo")
    ap.add_argument("--workers", type=int, default=2, help="sandboxes = worker processes")
    ap.add_argument("--size", type=int, default=256, help="logo side, px")
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs of each path")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--json", default=None, help="also write the record here (benchjson)")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="seconds: --per-type 1 --samples 2 --workers 1 --size 96 --rounds 1",
    )
    args = ap.parse_args()
    record = Record(Path(__file__).stem)
    if args.smoke:
        args.per_type, args.samples, args.workers, args.size, args.rounds = 1, 2, 1, 96, 1

    from distributed import LocalCluster

    p = load_params(args.params)
    lab = dataclasses.replace(p.label, samples_per_image=args.samples, workers=args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        logos, logos_dir = make_logos(root, args.per_type, args.size)
        warm, warm_dir = make_logos(root / "warm", 1, args.size)
        runs: dict[str, list] = {"local": [], "cluster": []}
        with LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster:
            on = dataclasses.replace(lab, cluster=cluster.scheduler_address)
            label_dataset(
                warm, warm_dir, root / "w-warm", p.vtracer, on, image_size=args.size, progress=False
            )
            for r in range(args.rounds):
                for name, cfg in (("local", lab), ("cluster", on)):
                    work = root / f"w-{name}-{r}"
                    runs[name].append(
                        label_dataset(
                            logos,
                            logos_dir,
                            work,
                            p.vtracer,
                            cfg,
                            image_size=args.size,
                            progress=False,
                        )
                    )
    (local, s_local), (remote, s_remote) = (
        max(runs[k], key=lambda run: run[1].computed / run[1].compute_s)
        for k in ("local", "cluster")
    )
    drop = list(TIMING_COLUMNS)
    pd.testing.assert_frame_equal(local.drop(columns=drop), remote.drop(columns=drop))
    title = f"{len(logos)} logos x {args.samples} sets, {args.workers} cores: rows identical"
    rows = [figures("local", local, s_local), figures("cluster", remote, s_remote)]
    print(title)
    for row in rows:
        print(line(row))
    ratio = rows[1]["samples_per_s"] / rows[0]["samples_per_s"]
    if args.json:
        record.write(args.json, {title: rows}, ratio, "samples/s, cluster / local")
    print(f"ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
