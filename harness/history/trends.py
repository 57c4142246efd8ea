"""The report's Trends section: each metric over the last runs as an inline SVG chart (the stable band
shaded, change points marked by a dashed line, bad runs red, the latest run ringed). Pure: the
``regressions`` block of a summary in, HTML text out; no file, no plotting library.
"""
from __future__ import annotations

import html
from typing import Any, Mapping

__all__ = ["trends_html", "trend_svg"]

_STATUS_COLOUR = {"regression": "#cf222e", "suspect": "#bc4c00", "improved": "#1a7f37", "pass": "#1a7f37",
                  "acknowledged": "#57606a", "no baseline": "#57606a", "not measured": "#9a6700"}
_FLAG_COLOUR = {"bad": "#cf222e", "better": "#1a7f37", "ok": "#0969da", "-": "#8c959f"}
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 460, 150, 52, 10, 12, 22


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def trend_svg(item: Mapping[str, Any]) -> str:
    """One metric's chart as an ``<svg>`` element."""
    series = [p for p in item.get("series") or []]
    values = [p["value"] for p in series if p.get("value") is not None]
    band = item.get("band")
    lo_hi = values + ([band["low"], band["high"]] if band else [])
    if not lo_hi:
        return "<svg width='0' height='0'></svg>"
    lo, hi = min(lo_hi), max(lo_hi)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    margin = (hi - lo) * 0.08
    lo, hi = lo - margin, hi + margin
    n = max(len(series), 2)

    def x(i: int) -> float:
        return PAD_L + i * (W - PAD_L - PAD_R) / (n - 1)

    def y(v: float) -> float:
        return PAD_T + (hi - v) * (H - PAD_T - PAD_B) / (hi - lo)

    parts = [f"<svg class='trend' width='{W}' height='{H}' viewBox='0 0 {W} {H}' xmlns='http://www.w3.org/2000/svg' "
             f"role='img' aria-label='{html.escape(item['scenario'])} {html.escape(item['metric'])}'>",
             f"<rect x='{PAD_L}' y='{PAD_T}' width='{W - PAD_L - PAD_R}' height='{H - PAD_T - PAD_B}' fill='#fff' "
             "stroke='#d0d7de'/>"]
    if band:
        top, bottom = y(band["high"]), y(band["low"])
        parts.append(f"<rect class='band' x='{PAD_L}' y='{top:.1f}' width='{W - PAD_L - PAD_R}' "
                     f"height='{max(bottom - top, 1):.1f}' fill='#0969da' fill-opacity='0.12'>"
                     f"<title>stable range {_fmt(band['low'])} to {_fmt(band['high'])} (median {_fmt(band['median'])}, "
                     f"{band['runs']} runs)</title></rect>")
        parts.append(f"<line x1='{PAD_L}' x2='{W - PAD_R}' y1='{y(band['median']):.1f}' y2='{y(band['median']):.1f}' "
                     "stroke='#0969da' stroke-opacity='0.5' stroke-dasharray='2 2'/>")
    index = {p["run_id"]: i for i, p in enumerate(series)}
    for cp in item.get("change_points") or []:
        if cp.get("run_id") in index:
            cx = x(index[cp["run_id"]]) - (W - PAD_L - PAD_R) / (n - 1) / 2
            parts.append(f"<line class='change' x1='{cx:.1f}' x2='{cx:.1f}' y1='{PAD_T}' y2='{H - PAD_B}' "
                         f"stroke='{'#cf222e' if cp.get('worse') else '#1a7f37'}' stroke-dasharray='5 3'>"
                         f"<title>change point at {html.escape(cp['run_id'])}: {_fmt(cp['before'])} → "
                         f"{_fmt(cp['after'])} (p={cp['p_value']})</title></line>")
    points = [(x(i), y(p["value"])) for i, p in enumerate(series) if p.get("value") is not None and p.get("valid")]
    if len(points) > 1:
        parts.append("<polyline fill='none' stroke='#57606a' stroke-width='1.2' points='"
                     + " ".join(f"{a:.1f},{b:.1f}" for a, b in points) + "'/>")
    for i, p in enumerate(series):
        if p.get("value") is None:
            continue
        colour = _FLAG_COLOUR.get(p.get("flag", "-"), "#8c959f") if p.get("valid") else "#ffffff"
        stroke = "#9a6700" if not p.get("valid") else colour
        latest = i == len(series) - 1
        parts.append(f"<circle cx='{x(i):.1f}' cy='{y(p['value']):.1f}' r='{4.5 if latest else 3}' fill='{colour}' "
                     f"stroke='{'#1f2328' if latest else stroke}' stroke-width='{1.5 if latest else 1}'>"
                     f"<title>{html.escape(p['run_id'])}: {_fmt(p['value'])} {html.escape(item.get('unit', ''))}"
                     f"{'' if p.get('valid') else ' (not valid: never a baseline)'} [{p.get('flag', '-')}]</title>"
                     "</circle>")
    for v in (hi - margin, lo + margin):
        parts.append(f"<text x='{PAD_L - 4}' y='{y(v) + 4:.1f}' font-size='10' text-anchor='end' fill='#57606a'>"
                     f"{_fmt(v)}</text>")
    parts.append(f"<text x='{PAD_L}' y='{H - 6}' font-size='10' fill='#57606a'>{len(series)} runs, oldest left; "
                 f"{html.escape(item.get('unit', ''))}, {html.escape(item.get('direction', ''))} is better</text>")
    parts.append("</svg>")
    return "".join(parts)


def trends_html(block: Mapping[str, Any] | None) -> list[str]:
    """The Trends section (empty when the run has no history block)."""
    if not block:
        return []
    parts = ["<h2 id='trends'>Trends</h2>"]
    if block.get("error"):
        return parts + [f"<p><b>history error:</b> {html.escape(block['error'])}</p>"]
    counts = block.get("counts") or {}
    parts.append("<p>Each metric of this run against the comparable runs before it (same fingerprint "
                 f"{html.escape(str(block.get('fingerprint_id')))}, {block.get('comparable_runs', 0)} runs in "
                 f"<code>{html.escape(str(block.get('history')))}</code>): "
                 + html.escape(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing tracked")
                 + ". Shaded: the stable range since the last change; dashed: change points; red points: runs "
                 "worse than their baseline; hollow: not valid (inconclusive), never a baseline. A single bad run "
                 "is <i>suspect</i>; 2 of the last 3 make a <i>regression</i>.</p>")
    order = {s: i for i, s in enumerate(("regression", "suspect", "improved", "acknowledged", "pass", "no baseline",
                                         "not measured"))}
    parts.append("<div style='display:flex;flex-wrap:wrap;gap:12px'>")
    for item in sorted(block.get("metrics") or [], key=lambda i: (order.get(i["status"], 9), i["scenario"], i["metric"])):
        colour = _STATUS_COLOUR.get(item["status"], "#57606a")
        parts.append(f"<figure style='margin:0;border:1px solid #d0d7de;padding:6px;border-radius:4px;width:{W}px'>"
                     f"<figcaption><span class='v' style='background:{colour}'>{html.escape(item['status'])}</span> "
                     f"<b>{html.escape(item['metric'])}</b> <small>{html.escape(item['scenario'])}</small><br>"
                     f"<small>{html.escape(item.get('explanation', ''))}</small></figcaption>"
                     + trend_svg(item) + "</figure>")
    parts.append("</div>")
    return parts
