"""Suggest by objective with verification, and `svg-quality convert`, on a tiny real
export: real VTracer conversions, resvg renders, the CLI as a subprocess."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from svg_quality.paramspace import VTRACER_DEFAULTS
from svg_quality.verify import FALLBACK_PRECISIONS, Candidate, choose, convert_all, vtracer_config

CLI = [sys.executable, "-m", "svg_quality.cli"]


@pytest.fixture(scope="module")
def export_dir(vtracer_export: dict[str, Path]) -> Path:
    return vtracer_export["out"]  # stats+vtracer+probe with the size head


@pytest.fixture(scope="module")
def logos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic logos as <type>/<file>, written by the real `svg-quality sample`."""
    root = tmp_path_factory.mktemp("logos")
    subprocess.run([*CLI, "sample", str(root), "--per-type", "2", "--size", "64"], check=True)
    return root


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    res = subprocess.run([*CLI, *argv], capture_output=True, text=True, env=env)
    if check and res.returncode not in (0, 1):
        raise AssertionError(f"rc {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


def interrupted(
    argv: list[str], journal: Path, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run a convert command and press Ctrl-C (SIGINT) once its journal has 2 lines ->
    (its exit status, its stderr)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_text().count("\n") >= 2:
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode()


def render_ok(svg: Path, size: tuple[int, int]) -> None:
    """The SVG renders with resvg at the logo's size and is not blank."""
    from svg_quality.vectorize import render

    pixels = render(svg.read_text(), *size)
    assert pixels.shape == (size[1], size[0], 3) and pixels.std() > 0


# --------------------------------------------------------------------------- verification


def test_verification_falls_back_to_the_defaults_when_no_candidate_beats_them(export_dir):
    from svg_quality.serving.predictor import Predictor
    from svg_quality.synthetic import generate

    p = Predictor.load(export_dir)
    logo = p.prepare(generate("text", 0, 1, 96))
    cfg = vtracer_config(p.metadata)
    default = Candidate(dict(VTRACER_DEFAULTS), 0.9, 1000.0, True)
    crude = {**VTRACER_DEFAULTS, "color_precision": 1, "filter_speckle": 32}  # worse and smaller
    verified = convert_all(logo.rgb, [default, Candidate(crude, 0.95, 10.0, False)], cfg)
    d, c = verified
    assert c.ssim < d.ssim and c.svg_bytes < d.svg_bytes  # real conversions, as intended
    chosen, fell_back = choose(verified, "quality")
    assert fell_back and chosen is d  # higher predicted SSIM, but the real one is worse
    chosen, fell_back = choose(verified, "size", min_ssim=0.999)  # nobody reaches the bar
    assert fell_back and chosen is d
    # any SSIM: the smaller wins by luma alone, but one colour bit per channel changes the
    # colours (mean CIEDE2000 far above the defaults'), so the colour check refuses it
    assert c.delta_e > d.delta_e + 0.5
    chosen, fell_back = choose(verified, "size", min_ssim=0.0, colour_tolerance=None)
    assert not fell_back and chosen is c
    assert choose(verified, "size", min_ssim=0.0) == (d, True)
    # a failed conversion never wins
    broken = convert_all(
        logo.rgb, [default, Candidate({**crude, "color_precision": 0}, 1, 1, 0)], cfg
    )
    assert broken[1].error and choose(broken, "quality") == (broken[0], True)


@pytest.mark.parametrize(
    ("min_ssim", "tolerance", "colour_tolerance"),
    [(None, 0.002, 0.5), (None, 0.03, 0.5), (None, 0.03, 0.0), (0.5, 0.002, 0.5), (0.9999, 0, 0.5)],
)
def test_smallest_first_scores_fewer_sets_and_chooses_exactly_as_scoring_all(
    min_ssim, tolerance, colour_tolerance, repo_params
) -> None:
    """convert's size path (convert_smallest_first) against convert_all on real
    conversions: the same choice, the same colour-blind choice, the same figures for what
    it scores; bars the defaults miss (min_ssim 0.9999) score everything."""
    from svg_quality.config import parse_params
    from svg_quality.paramspace import sample_params
    from svg_quality.preprocess import load_logo
    from svg_quality.synthetic import generate
    from svg_quality.verify import convert_smallest_first

    cfg = parse_params(repo_params).vtracer
    ranges = cfg.ranges
    kw = {"min_ssim": min_ssim, "tolerance": tolerance}
    scored = total = 0
    for i, kind in enumerate(("text", "simple", "gradient", "complex")):
        rgb = load_logo(generate(kind, i, 1, 128), 128)
        default = Candidate(dict(VTRACER_DEFAULTS), 0.9, None, True)
        fb = [Candidate({**VTRACER_DEFAULTS, "path_precision": p}, 0.9, None, False, True)
              for p in FALLBACK_PRECISIONS]  # fmt: skip
        rand = [
            Candidate(dict(q), 0.9, None, False) for q in sample_params(f"{i:064x}", 6, ranges, i)
        ]
        cands = [default, *fb, *rand]
        every = convert_all(rgb, cands, cfg)
        some = convert_smallest_first(rgb, cands, cfg, colour_tolerance=colour_tolerance, **kw)
        for tol in (colour_tolerance, None):
            a, b = (
                choose(every, "size", colour_tolerance=tol, **kw),
                choose(some, "size", colour_tolerance=tol, **kw),
            )
            assert a[0].candidate == b[0].candidate and a[0].svg == b[0].svg and a[1] == b[1]
        mine = {id(v.candidate): v for v in every}
        for v in some:  # what it scores, it scores as convert_all does
            w = mine[id(v.candidate)]
            assert (v.ssim, v.svg_bytes, v.n_paths, v.delta_e, v.svg, v.error) == (
                w.ssim, w.svg_bytes, w.n_paths, w.delta_e, w.svg, w.error
            )  # fmt: skip
        scored, total = scored + len(some), total + len(every)
    if min_ssim == 0.9999:  # the defaults miss the bar: nothing may be left out
        assert scored == total
    else:
        assert scored < total


def test_each_objective_ranks_by_its_rule_and_its_verified_choice_is_never_worse(export_dir, logos):
    """quality / size / balanced / --pareto on a tiny export with both heads: every row
    carries predicted SSIM and bytes, the ranking follows the objective, and the verified
    choice is never worse than the defaults by the objective (real conversions)."""
    import math

    from svg_quality import objectives
    from svg_quality.serving.predictor import Predictor
    from svg_quality.verify import suggest

    p = Predictor.load(export_dir)
    assert p.has_size_head
    path = sorted(logos.rglob("*.png"))[1]
    for objective in objectives.OBJECTIVES:
        res = suggest(p, path, objective=objective, top_k=4, candidates=64, verify=3, pareto=True)
        for c in [res.default, *res.ranked, *res.pareto]:
            assert 0 <= c.predicted_ssim <= 1 and c.predicted_bytes > 0
        s = np.array([c.predicted_ssim for c in res.ranked])
        b = np.array([c.predicted_bytes for c in res.ranked])
        d = res.default
        if objective == "quality":
            assert list(s) == sorted(s, reverse=True)
        elif objective == "size":
            assert res.threshold == pytest.approx(d.predicted_ssim - 0.002, abs=1e-7)
            ok = s >= res.threshold - 1e-9
            assert ok[0]  # the defaults themselves always pass their own bar
            assert list(b[ok]) == sorted(b[ok])
        else:
            score = s - 0.01 * np.log2(b / d.predicted_bytes)
            assert list(score) == sorted(score, reverse=True)
        front = [(c.predicted_bytes, c.predicted_ssim) for c in res.pareto]
        assert front == sorted(front) and all(a[1] < b_[1] for a, b_ in itertools.pairwise(front))
        v0, ch = res.verified[0], res.chosen
        # the defaults, their path_precision fallbacks, then the 3 model candidates
        assert v0.candidate.is_default and len(res.verified) == 1 + len(FALLBACK_PRECISIONS) + 3
        assert [v.candidate.origin for v in res.verified[1:3]] == ["fallback"] * 2
        if objective == "quality":
            assert ch.ssim >= v0.ssim
        elif objective == "size":
            assert ch.ssim >= v0.ssim - 0.002 and ch.svg_bytes <= v0.svg_bytes
        else:
            gain = ch.ssim - 0.01 * math.log2(ch.svg_bytes / v0.svg_bytes)
            assert gain >= v0.ssim
        assert res.fell_back == (ch.candidate.origin != "model")
    # an explicit bar nobody reaches: the size objective falls back to the defaults
    res = suggest(p, path, objective="size", min_ssim=1.0, candidates=64, verify=3)
    assert res.fell_back and res.chosen.candidate.is_default


def test_suggest_quality_with_verify_is_never_worse_than_the_defaults(export_dir, logos):
    from svg_quality.serving.predictor import Predictor
    from svg_quality.verify import suggest

    p = Predictor.load(export_dir)
    for path in sorted(logos.rglob("*.png"))[:3]:
        res = suggest(p, path, objective="quality", top_k=3, candidates=64, verify=2)
        assert len(res.ranked) == 3 and res.n_candidates <= 65
        preds = [c.predicted_ssim for c in res.ranked]
        assert preds == sorted(preds, reverse=True)
        assert res.verified[0].candidate.is_default
        assert len(res.verified) == 1 + len(FALLBACK_PRECISIONS) + 2
        assert res.chosen.ssim >= res.verified[0].ssim
        assert res.chosen.ssim == max(v.ssim for v in res.verified)
        assert res.fell_back == (res.chosen.candidate.origin != "model")


# --------------------------------------------------------------------------- convert


def test_convert_a_folder_writes_valid_svgs_reports_bad_files_and_resumes(
    export_dir, logos, tmp_path
):
    from PIL import Image

    src = tmp_path / "in"
    shutil.copytree(logos, src)
    (src / "text" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    (src / "notes.txt").write_text("not a logo, not an image suffix: ignored")
    out = tmp_path / "out"
    model = ["--model", str(export_dir), "--candidates", "64", "--verify", "2"]
    model += ["--objective", "quality"]

    res = run("convert", str(src), "-o", str(out), *model, "--json", "--no-progress")
    assert res.returncode == 1, res.stderr  # a bad file makes the exit status 1
    report = json.loads(res.stdout)
    assert report == json.loads((out / "convert-report.json").read_text())
    by = {r["output"]: r for r in report["logos"]}
    assert by["text/broken.svg"]["status"] == "bad"
    assert "cannot read the image" in by["text/broken.svg"]["error"]
    good = [r for r in report["logos"] if r["status"] == "ok"]
    assert len(good) == 8 and report["summary"]["bad"] == 1
    for r in good:
        svg = out / r["output"]
        assert svg.is_file() and r["output"].split("/")[0] in {
            "simple",
            "text",
            "gradient",
            "complex",
        }
        render_ok(svg, Image.open(r["source"]).size)
        assert r["ssim"] >= r["default_ssim"]  # quality objective, verified: never worse
        assert r["svg_bytes"] == len(svg.read_bytes())
        assert r["predicted_ssim"] is not None and set(r["params"]) == set(VTRACER_DEFAULTS)
    s = report["summary"]
    assert s["total_bytes"] == sum(r["svg_bytes"] for r in good)
    assert s["mean_ssim"] >= s["mean_ssim_defaults"]
    assert not (out / "text" / "broken.svg").exists()

    # a rerun converts nothing: every logo is in the journal
    res = run("convert", str(src), "-o", str(out), *model, "--no-progress")
    assert "0 converted, 8 done before" in res.stdout
    # an SVG not written by convert into this folder is not overwritten without --force
    (src / "simple" / "extra.png").write_bytes((src / "simple" / "simple_000.png").read_bytes())
    (out / "simple" / "extra.svg").write_text("<svg>mine</svg>")
    res = run("convert", str(src), "-o", str(out), *model, "--no-progress")
    assert "exists  simple/extra.svg" in res.stdout
    assert (out / "simple" / "extra.svg").read_text() == "<svg>mine</svg>"
    res = run("convert", str(src), "-o", str(out), *model, "--no-progress", "--force")
    assert "9 converted" in res.stdout and "mine" not in (out / "simple/extra.svg").read_text()


def test_an_interrupted_batch_converts_only_the_missing_logos_on_rerun(export_dir, logos, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):  # 24 logos: the batch is still running when it is interrupted
        shutil.copytree(logos, src / f"set{i}")
    argv = [*CLI, "convert", str(src), "-o", str(out), "--model", str(export_dir)]
    argv += ["--candidates", "64", "--verify", "4", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    journal = out / ".svg-quality-convert.jsonl"
    rc, err = interrupted(argv, journal, env)
    assert rc == 130, err  # interrupted, with the resume hint
    assert "rerun the same command" in err
    done = journal.read_text().count("\n")
    assert 2 <= done < 24
    written = sorted(p.relative_to(out).as_posix() for p in out.glob("set*/*/*.svg"))
    assert len(written) == done  # every written SVG is journaled, none half-written

    res = run(
        "convert",
        str(src),
        "-o",
        str(out),
        "--model",
        str(export_dir),
        "--candidates",
        "64",
        "--verify",
        "4",
        "--no-progress",
    )
    assert f"{24 - done} converted, {done} done before" in res.stdout
    assert len(list(out.glob("set*/*/*.svg"))) == 24


def test_suggest_and_predict_json_and_objective_errors(export_dir, logos):
    path = str(sorted(logos.rglob("*.png"))[0])
    res = run("predict", path, "--model", str(export_dir), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert 0 <= out["predicted_ssim"] <= 1 and out["params"] == VTRACER_DEFAULTS
    res = run(
        "suggest",
        path,
        "--model",
        str(export_dir),
        "--candidates",
        "32",
        "--top-k",
        "2",
        "--verify",
        "1",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["objective"] == "quality" and len(out["ranked"]) == 2
    assert out["chosen"]["ssim"] >= out["verified"][0]["ssim"]
    assert all(r["predicted_bytes"] > 0 for r in out["ranked"])
    res = run(
        "suggest",
        path,
        "--model",
        str(export_dir),
        "--candidates",
        "32",
        "--objective",
        "size",
        "--pareto",
        "--verify",
        "2",
    )
    assert res.returncode == 0, res.stderr
    assert "objective size, SSIM bar" in res.stdout and "Pareto front" in res.stdout
    assert "chosen by size:" in res.stdout
    rows = [ln for ln in res.stdout.splitlines() if "predicted SSIM" in ln and "bytes" in ln]
    assert len(rows) >= 5  # every ranked and Pareto row shows predicted SSIM and bytes
    res = run("suggest", path, "--model", str(export_dir), "--objective", "fast", check=False)
    assert res.returncode == 2 and "invalid choice: 'fast'" in res.stderr


def test_verification_picks_distinct_sets_other_than_the_defaults() -> None:
    """Integer rounding makes some Sobol sets identical: verify converts each set once."""
    from svg_quality.paramspace import PARAM_NAMES, VTRACER_DEFAULTS
    from svg_quality.verify import _distinct

    d = np.array([VTRACER_DEFAULTS[n] for n in PARAM_NAMES], dtype=np.float32)
    a, b = d.copy(), d.copy()
    a[PARAM_NAMES.index("filter_speckle")] = 9
    b[PARAM_NAMES.index("color_precision")] = 3
    raw = np.stack([d, d, a, a + 1e-6, b])  # a defaults copy, a near-copy of a
    assert _distinct(raw, np.array([1, 0, 3, 2, 4]), 4) == [3, 4]
    assert _distinct(raw, np.array([4, 2, 3]), 1) == [4]
