"""Tiny, dependency-free SVG charts for the self-contained KPI report.

Every chart is a string of inline `<svg>` markup (no `xmlns` URL, no external fonts,
scripts or stylesheets), so the report opens offline and contains no http(s) reference.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2")
FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="11"'

Formatter = Callable[[float], str]


def fmt_number(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.1f}M"
    if a >= 1e4:
        return f"{v / 1e3:.0f}k"
    if a >= 1e3:
        return f"{v / 1e3:.1f}k"
    if a == int(a):
        return f"{int(v)}"
    return f"{v:.2f}"


def fmt_pct(v: float) -> str:
    return f"{v * 100:.0f}%" if v is not None else "–"


def fmt_usd(v: float) -> str:
    return "$" + fmt_number(v)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (at most about n+2 of them)."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t < hi + step * 0.999:
        ticks.append(round(t, 10))
        t += step
    return ticks


@dataclass
class Series:
    name: str
    x: Sequence[date]
    y: Sequence[float | None]
    color: str | None = None
    dashed: bool = False


@dataclass
class Band:
    name: str
    x: Sequence[date]
    lower: Sequence[float]
    upper: Sequence[float]
    color: str = "#d97706"


def _legend(items: list[tuple[str, str, bool]], x0: float, y: float) -> str:
    out, x = [], x0
    for name, color, dashed in items:
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        out.append(
            f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 18:.1f}" y2="{y - 4:.1f}" '
            f'stroke="{color}" stroke-width="2.5"{dash}/>'
            f'<text x="{x + 23:.1f}" y="{y:.1f}" {FONT} fill="#374151">{escape(name)}</text>'
        )
        x += 23 + 7 * len(name) + 18
    return "".join(out)


def line_chart(
    series: Sequence[Series],
    *,
    band: Band | None = None,
    y_format: Formatter = fmt_number,
    title: str = "",
    width: int = 860,
    height: int = 260,
    y_zero: bool = True,
) -> str:
    """A time-series line chart; `band` draws a shaded interval (e.g. a forecast's)."""
    pts = [(x, y) for s in series for x, y in zip(s.x, s.y) if y is not None]
    if band is not None:
        pts += [(x, v) for x, lo, hi in zip(band.x, band.lower, band.upper) for v in (lo, hi) if v is not None]
    if not pts:
        return ""
    ml, mr, mt, mb = 58, 16, 30, 28
    pw, ph = width - ml - mr, height - mt - mb
    xs = [p[0].toordinal() for p in pts]
    ys = [float(p[1]) for p in pts]
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    ticks = nice_ticks(min(min(ys), 0.0) if y_zero else min(ys), max(ys))
    y0, y1 = ticks[0], ticks[-1]
    y1 = y1 if y1 > y0 else y0 + 1

    def sx(d: date) -> float:
        return ml + (d.toordinal() - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return mt + ph - (float(v) - y0) / (y1 - y0) * ph

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" aria-label="{escape(title)}">'
    ]
    if title:
        parts.append(f"<title>{escape(title)}</title>")
    for t in ticks:
        parts.append(
            f'<line x1="{ml}" x2="{width - mr}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#e5e7eb"/>'
            f'<text x="{ml - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" {FONT} fill="#6b7280">'
            f"{escape(y_format(t))}</text>"
        )
    # x ticks: about 6 evenly spaced dates
    span = x1 - x0
    for i in range(7):
        d = date.fromordinal(x0 + round(span * i / 6))
        anchor = "start" if i == 0 else "end" if i == 6 else "middle"
        parts.append(
            f'<text x="{sx(d):.1f}" y="{height - 8}" text-anchor="{anchor}" {FONT} fill="#6b7280">'
            f"{d.isoformat()}</text>"
        )
    legend: list[tuple[str, str, bool]] = []
    if band is not None:
        fwd = [(sx(x), sy(hi)) for x, lo, hi in zip(band.x, band.lower, band.upper) if lo is not None and hi is not None]
        back = [(sx(x), sy(lo)) for x, lo, hi in zip(band.x, band.lower, band.upper) if lo is not None and hi is not None]
        if fwd:
            poly = " ".join(f"{a:.1f},{b:.1f}" for a, b in fwd + back[::-1])
            parts.append(f'<polygon points="{poly}" fill="{band.color}" fill-opacity="0.18" stroke="none"/>')
            legend.append((band.name, band.color, False))
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        seg: list[str] = []
        segments: list[list[str]] = [seg]
        for x, y in zip(s.x, s.y):
            if y is None:
                seg = []
                segments.append(seg)
                continue
            seg.append(f"{sx(x):.1f},{sy(y):.1f}")
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        for sg in segments:
            if len(sg) == 1:
                cx, cy = sg[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
            elif sg:
                parts.append(
                    f'<polyline points="{" ".join(sg)}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
                )
        legend.append((s.name, color, s.dashed))
    parts.append(_legend(legend, ml, 16))
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    value_format: Formatter = fmt_number,
    title: str = "",
    color: str = PALETTE[0],
    horizontal: bool = False,
    annotations: Sequence[str] | None = None,
    width: int = 860,
    height: int | None = None,
) -> str:
    """Bars with their values printed; horizontal bars suit a funnel, vertical a histogram."""
    if not values:
        return ""
    vmax = max(max(float(v) for v in values), 0.0) or 1.0
    n = len(values)
    notes = list(annotations) if annotations else [""] * n
    if horizontal:
        row = 30
        height = height or 20 + n * row
        ml = min(220, 12 + 7 * max(len(lb) for lb in labels))
        mr = 190
        pw = width - ml - mr
        parts = [
            f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
            f'aria-label="{escape(title)}">'
        ]
        for i, (lb, v) in enumerate(zip(labels, values)):
            y = 10 + i * row
            w = max(float(v) / vmax * pw, 1.0)
            parts.append(
                f'<text x="{ml - 8}" y="{y + 17}" text-anchor="end" {FONT} fill="#374151">{escape(lb)}</text>'
                f'<rect x="{ml}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" rx="3" fill="{color}"/>'
                f'<text x="{ml + w + 6:.1f}" y="{y + 17}" {FONT} fill="#111827">{escape(value_format(v))}'
                f'<tspan fill="#6b7280"> {escape(notes[i])}</tspan></text>'
            )
        parts.append("</svg>")
        return "".join(parts)
    height = height or 240
    ml, mr, mt, mb = 50, 10, 16, 44
    pw, ph = width - ml - mr, height - mt - mb
    slot = pw / n
    bw = slot * 0.78
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" aria-label="{escape(title)}">'
    ]
    parts.append(f'<line x1="{ml}" x2="{width - mr}" y1="{mt + ph}" y2="{mt + ph}" stroke="#9ca3af"/>')
    for i, (lb, v) in enumerate(zip(labels, values)):
        h = float(v) / vmax * ph
        x = ml + i * slot + (slot - bw) / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{mt + ph - h:.1f}" width="{bw:.1f}" height="{h:.1f}" rx="2" fill="{color}">'
            f"<title>{escape(lb)}: {escape(value_format(v))}</title></rect>"
            f'<text x="{x + bw / 2:.1f}" y="{mt + ph - h - 4:.1f}" text-anchor="middle" {FONT} fill="#111827">'
            f"{escape(value_format(v))}</text>"
            f'<text x="{x + bw / 2:.1f}" y="{mt + ph + 16}" text-anchor="middle" {FONT} fill="#6b7280">'
            f"{escape(lb)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def heat_color(v: float | None) -> str:
    """White (0) to deep blue (1) for a 0..1 share; grey when missing."""
    if v is None:
        return "#f3f4f6"
    v = max(0.0, min(1.0, float(v)))
    # interpolate #eff6ff -> #1d4ed8 on a sqrt scale (retention decays fast)
    t = math.sqrt(v)
    a, b = (0xEF, 0xF6, 0xFF), (0x1D, 0x4E, 0xD8)
    r, g, bl = (round(a[k] + (b[k] - a[k]) * t) for k in range(3))
    return f"#{r:02x}{g:02x}{bl:02x}"
