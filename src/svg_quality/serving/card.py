"""MODEL_CARD.md: what the exported model is, how to feed it, how it checked out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from svg_quality.io import write_text


def write_model_card(path: Path, metadata: Mapping[str, Any], report: Mapping[str, Any]) -> None:
    """A human summary of the export: what the model is, how to feed it, how it checked out."""
    arch, inp, bb = metadata["architecture"], metadata["input"], metadata["backbone"]
    weights = bb.get("weights") or {}
    lines = [
        "# svg-quality predictor: model card",
        "",
        "Predicts the SSIM between a raster logo and VTracer's vectorization of it (rendered",
        "with resvg, compared on luma) for a set of the 8 VTracer parameters, so a converter",
        "can pick parameters without the convert-render-compare loop.",
        "",
        "## Model",
        "",
        f"- Inputs: `{inp['inputs']}`, {inp['width']} columns: "
        + ", ".join(f"{s['name']} [{s['start']}:{s['start'] + s['width']}]" for s in inp["layout"]),
        f"- MLP: {' -> '.join(arch['layers'])}; hidden blocks {arch['hidden_block']}; "
        f"{arch['output_activation']} output; {arch['n_parameters']:,} parameters",
        f"- Input embedding: {arch.get('embedding', 'none')}",
        f"- Members: {arch.get('members', 'one MLP')}",
        f"- ResNet-50 block: {arch.get('resnet_block', 'not recorded')}",
        f"- Backbone: {bb.get('name')} (weights `{weights.get('used')}`, source "
        f"`{weights.get('source')}`, digest `{str(weights.get('digest'))[:16]}`)"
        if bb.get("used")
        else "- Backbone: not used (statistics-only model)",
        f"- Logo normalization: longest side {metadata['logo']['image_size']} px on white; "
        f"backbone preprocessing: {json.dumps(metadata.get('preprocessing'))}",
        "- Parameter ranges (inputs are min-max normalized by these; values outside are "
        "refused): " + ", ".join(f"{k} {v}" for k, v in metadata["param_ranges"].items()),
        f"- Git commit: `{metadata.get('git_commit')}`",
        "",
    ]
    if bb.get("used") and weights.get("used") == "random":
        lines += [
            "> **Warning:** the backbone has RANDOM weights (ImageNet weights were not",
            "> available when featurize ran); predictions are far weaker than with",
            "> ImageNet features.",
            "",
        ]
    tm = metadata.get("metrics", {}).get("test", {})
    if tm:
        lines += [
            f"## Accuracy ({report['checks']['parity_split']} split, {tm.get('n')} rows)",
            "",
            "| rmse | mae | pearson |",
            "|---|---|---|",
            f"| {tm['rmse']:.4f} | {tm['mae']:.4f} | {tm['pearson']:.3f} |",
            "",
        ]
    sh = metadata.get("size_head")
    if sh:
        sm = sh["metrics"]
        lines += [
            f"## Size head: log10(SVG bytes) ({sm['split']} split, {sm['n']} rows)",
            "",
            "A second MLP on the same input rows (`size_predictor.pth`); every graph below",
            "has its second output `log10_svg_bytes`. `suggest --objective size|balanced`",
            "and `svg-quality convert` use it.",
            "",
            "| r on log10 bytes | RMSE (log10) | median abs(predicted / actual bytes - 1) |",
            "|---|---|---|",
            f"| {sm['pearson_log10']:.3f} | {sm['rmse_log10']:.4f} | "
            f"{sm['median_abs_ratio_err']:.3f} |",
            "",
        ]
    lines += [
        "## Formats",
        "",
        "| format | file | MB | max abs diff vs PyTorch | tolerance |",
        "|---|---|---|---|---|",
    ]
    parity = report["parity"]
    for name, size in report["files"].items():
        p = parity.get(name)
        diff = f"{p['max_abs_diff']:.2e}" if p else "-"
        tol = f"{p['tolerance']:.0e}" if p else "-"
        lines.append(f"| {name} | `{size['file']}` | {size['mb']} | {diff} | {tol} |")
        s = parity.get(f"size/{name}")
        if s:
            lines.append(
                f"| {name}: log10_svg_bytes | | | {s['max_abs_diff']:.2e} | {s['tolerance']:.0e} |"
            )
    lines += [
        "",
        "## Latency (CPU, ms, p50 / p95)",
        "",
        "| model | runtime | batch | p50 | p95 |",
        "|---|---|---|---|---|",
    ]
    for model, by_runtime in report["latency"].items():
        if model == "threads":
            continue
        for runtime, by_batch in by_runtime.items():
            for batch, t in by_batch.items():
                lines.append(
                    f"| {model} | {runtime} | {batch} | {t['p50_ms']:.3f} | {t['p95_ms']:.3f} |"
                )
    sv = report.get("suggest_validation") or {}
    if sv.get("mean_uplift") is not None:
        lines += [
            "",
            "## Suggestion check (real VTracer conversions)",
            "",
            f"Over {sv['logos']} {report['checks']['parity_split']} logos, the top of "
            f"{sv['candidates']} candidates vs VTracer's defaults: mean SSIM "
            f"{sv['mean_ssim_suggested']:.4f} vs {sv['mean_ssim_default']:.4f} (uplift "
            f"{sv['mean_uplift']:+.4f}, median {sv['median_uplift']:+.4f}); improved "
            f"{sv['share_improved']:.0%}, worse {sv['share_worse']:.0%} of logos; mean SVG "
            f"{sv['mean_svg_bytes_suggested']:.0f} vs {sv['mean_svg_bytes_default']:.0f} bytes.",
            "",
            f"Switching from the defaults only when the predicted gain is at least "
            f"{sv['guard_margin']}: uplift {sv['guarded_mean_uplift']:+.4f}, switching on "
            f"{sv['guarded_share_switched']:.0%} of logos.",
        ]
    ch = report["checks"]
    if "features_vs_featurize_max_rel" in ch:
        lines += [
            "",
            "## Serving vs training features",
            "",
            f"Torch-free preprocessing equals backbone's to {ch['preprocess_numpy_vs_torch_max_abs']:.1e}. "
            f"fp32 ResNet-50 features differ from featurize's stored ones by at most "
            f"{ch['features_vs_featurize_max_rel']:.2%} of their range (featurize may use bf16), "
            f"which moves predictions by at most {ch['prediction_fp32_vs_featurize_features_max_abs']:.4f}.",
        ]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from svg_quality.serving.predictor import Predictor",
        'p = Predictor.load("models/export")            # ONNX Runtime, no torch needed',
        'p.predict("logo.png", {"filter_speckle": 8})  # predicted SSIM',
        'p.suggest("logo.png", top_k=5).ranked        # best parameter sets',
        "```",
        "",
        "ONNX Runtime alone: feed `quality_e2e.onnx` the preprocessed image, the raw",
        "parameters (and raw statistics), as `metadata.json` -> `signatures` describes.",
        "",
        "## Limits",
        "",
        "- Trained on the logos of this pipeline's data; other kinds of images are out of",
        "  distribution. Parameters outside the training ranges are refused.",
        "- SSIM on luma ignores hue errors and SVG size; check the suggestion with",
        "  `svg-quality suggest --verify`.",
    ]
    write_text(path, "\n".join(lines) + "\n")
