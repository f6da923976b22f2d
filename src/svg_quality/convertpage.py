"""The page `svg-quality convert` writes beside its SVGs: ``OUT/index.html``.

A summary, then one row per logo: the traced pixels, VTracer's defaults' SVG and the
chosen SVG side by side at the same display size, with bytes, SSIM, colour error and the
parameters. Clicking a picture (or the row's "100%" box) shows all three at their own
pixel size, so a designer can check edges and small text where they look. Static HTML
and a few lines of script; every path is relative to OUT, so the folder can be moved
or served as it is.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

SIDE = ".svg-quality"  # svg_quality.convert.SIDE (not imported: convert imports this lazily)
DISPLAY = 240  # px, the pictures' display width before zooming

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table.summary td { padding: 0 1em 0 0; }
.logo { border-top: 1px solid #ccc; padding: 1em 0; }
.logo h2 { font-size: 15px; margin: 0 0 .5em; word-break: break-all; }
.pics { display: flex; gap: 1em; flex-wrap: wrap; align-items: flex-start; }
figure { margin: 0; }
figure img { width: DISPLAYpx; height: auto; border: 1px solid #ddd; cursor: zoom-in;
  background: repeating-conic-gradient(#eee 0 25%, #fff 0 50%) 0 0 / 16px 16px; }
.zoomed figure img { width: auto; cursor: zoom-out; }
figcaption { font-size: 12px; color: #444; max-width: DISPLAYpx; }
.zoomed figcaption { max-width: none; }
.status { color: #a00; }
code { font-size: 12px; }
""".replace("DISPLAY", str(DISPLAY))

_SCRIPT = """
for (const row of document.querySelectorAll('.logo')) {
  const box = row.querySelector('input.zoom');
  const set = on => { row.classList.toggle('zoomed', on); if (box) box.checked = on; };
  if (box) box.addEventListener('change', () => set(box.checked));
  for (const img of row.querySelectorAll('figure img'))
    img.addEventListener('click', () => set(!row.classList.contains('zoomed')));
}
"""


def _url(path: str) -> str:
    return quote(path, safe="/")


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _figure(src: str, alt: str, caption: str) -> str:
    return (
        f'<figure><img src="{html.escape(_url(src))}" alt="{html.escape(alt)}" loading="lazy">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _logo(rec: Mapping[str, Any]) -> str:
    name = html.escape(rec["output"])
    if rec["status"] != "ok":
        why = html.escape(str(rec.get("error") or rec["status"]))
        return (
            f'<div class="logo" data-status="{html.escape(rec["status"])}"><h2>{name}</h2>'
            f'<p class="status">{html.escape(rec["status"])}: {why}</p></div>'
        )
    stem = rec["output"][: -len(".svg")] if rec["output"].endswith(".svg") else rec["output"]
    side = f"{SIDE}/{stem}"
    params = " ".join(f"{k}={v:g}" for k, v in rec["params"].items())
    origin = rec.get("origin") or ("defaults" if rec.get("is_default") else "model")
    size = f"{rec.get('width', '?')}&times;{rec.get('height', '?')} px"
    if rec.get("resampled"):
        size += f", traced at {rec['traced_width']}&times;{rec['traced_height']}"
    pics = [
        _figure(f"{side}.png", "original", f"original, {size}"),
        _figure(
            f"{side}.defaults.svg",
            "VTracer defaults",
            f"VTracer defaults: {rec['default_svg_bytes']:,} B, SSIM "
            f"{_fmt(rec['default_ssim'], '.4f')}, &Delta;E {_fmt(rec.get('default_delta_e'), '.2f')}",
        ),
        _figure(
            rec["output"],
            "chosen",
            f"chosen ({html.escape(origin)}): {rec['svg_bytes']:,} B "
            f"({rec['svg_bytes'] / rec['default_svg_bytes']:.0%} of the defaults'"
            + (f"; VTracer wrote {rec['vtracer_bytes']:,} B" if rec.get("minified") else "")
            + "), SSIM "
            f"{_fmt(rec['ssim'], '.4f')}, &Delta;E {_fmt(rec.get('delta_e'), '.2f')}"
            f"<br><code>{html.escape(params)}</code>",
        ),
    ]
    return (
        f'<div class="logo" data-status="ok"><h2>{name} '
        f'<label><input type="checkbox" class="zoom"> 100%</label></h2>'
        f'<div class="pics">{"".join(pics)}</div></div>'
    )


def page(report: Mapping[str, Any]) -> str:
    """The HTML of ``OUT/index.html`` for a convert report (``convert.run_batch``'s)."""
    s = report["summary"]
    st = report.get("settings", {})
    rows = [
        ("logos", f"{s['ok']} of {s['logos']} converted ({s['resumed']} done before)"),
        ("objective", html.escape(str(st.get("objective", "")))),
    ]
    if "mean_ssim" in s:
        rows.append(
            ("mean SSIM", f"{s['mean_ssim']:.4f} (defaults {s.get('mean_ssim_defaults', 0):.4f})")
        )
    if "bytes_vs_defaults" in s:
        rows.append(
            (
                "bytes",
                f"{s['total_bytes']:,} B, {s['bytes_vs_defaults']:.0%} of the defaults' "
                f"{s['total_bytes_defaults']:,} B",
            )
        )
    for k in ("bad", "failed", "exists", "refused", "skipped"):
        if s.get(k):
            rows.append((k, str(s[k])))
    summary = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    logos = "\n".join(_logo(r) for r in report["logos"])
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>svg-quality convert</title>"
        f"<style>{_STYLE}</style></head><body>\n"
        "<h1>svg-quality convert</h1>\n"
        "<p>Each logo: the pixels VTracer traced, VTracer's defaults and the chosen SVG, at "
        "the same display size. Click a picture (or tick 100%) to see all three at their own "
        "pixel size. SSIM and bytes are measured at the size of the SVG written; &Delta;E is "
        "the mean CIEDE2000 colour error.</p>\n"
        f'<table class="summary">{summary}</table>\n{logos}\n'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
