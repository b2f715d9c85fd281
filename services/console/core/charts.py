"""Small inline SVG charts drawn on the server (no chart library, nothing fetched by the browser): a line chart of
time series, a bar chart of one metric across versions, and a trace's waterfall rows. Pure functions of plain
values; every text is XML-escaped."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from html import escape

from services.console.core.domain import Series, Span, Trace

__all__ = ["PALETTE", "WaterfallRow", "bar_chart", "fmt_duration", "fmt_number", "line_chart", "waterfall"]

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 56, 12, 10, 22


def fmt_number(v: float) -> str:
    if v != v:  # NaN
        return "NaN"
    if v == 0 or 0.01 <= abs(v) < 100_000:
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:.2e}"


def fmt_duration(us: float) -> str:
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1_000_000:
        return f"{us / 1000:.1f} ms"
    return f"{us / 1_000_000:.2f} s"


def _ticks(lo: float, hi: float) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / 3))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= 5:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def line_chart(series: list[Series], *, title: str, width: int = 640, height: int = 180, label_keys: tuple[str,
               ...] = (), threshold: float | None = None) -> str:
    """An SVG line chart of `series` (time on x), one colour each with a legend; `threshold` draws a dashed line."""
    points = [p for s in series for p in s.points if math.isfinite(p[1])]
    full = height + 18 * min(len(series), 8)  # room for the legend
    head = (f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{full}" '
            f'viewBox="0 0 {width} {full}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>')
    if not points:
        return (f'<svg class="chart empty" role="img" aria-label="{escape(title)}" width="{width}" height="40" '
                f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title><text x="8" y="24" '
                f'fill="#6b7280">no data in range</text></svg>')
    t0, t1 = min(p[0] for p in points), max(p[0] for p in points)
    values = [p[1] for p in points] + ([threshold] if threshold is not None else [])
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - (abs(lo) or 1) * 0.1, hi + (abs(hi) or 1) * 0.1
    t1 = t1 if t1 > t0 else t0 + 1
    iw, ih = width - _PAD_L - _PAD_R, height - _PAD_T - _PAD_B

    def x(t: float) -> float:
        return _PAD_L + (t - t0) / (t1 - t0) * iw

    def y(v: float) -> float:
        return _PAD_T + (1 - (v - lo) / (hi - lo)) * ih

    out = [head, f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{iw}" height="{ih}" fill="#f9fafb" stroke="#e5e7eb"/>']
    for v in _ticks(lo, hi):
        out.append(f'<line x1="{_PAD_L}" x2="{_PAD_L + iw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e5e7eb"/>'
                   f'<text x="{_PAD_L - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end" '
                   f'fill="#4b5563">{escape(fmt_number(v))}</text>')
    for t, anchor in ((t0, "start"), (t1, "end")):
        out.append(f'<text x="{x(t):.1f}" y="{height - 6}" font-size="10" text-anchor="{anchor}" fill="#4b5563">'
                   f'{time.strftime("%H:%M:%S", time.gmtime(t))}Z</text>')
    if threshold is not None:
        out.append(f'<line x1="{_PAD_L}" x2="{_PAD_L + iw}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" '
                   f'stroke="#dc2626" stroke-dasharray="4 3"/>')
    for i, s in enumerate(series[:8]):
        colour = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.points if math.isfinite(v))
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{pts}"/>')
        if len(s.points) <= 20:  # few points (a series just begun): mark each, a lone point draws no line
            out += [f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}"/>'
                    for t, v in s.points if math.isfinite(v)]
        ly = height + 14 + 18 * i
        last = s.points[-1][1] if s.points else float("nan")
        out.append(f'<rect x="{_PAD_L}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{_PAD_L + 16}" y="{ly}" font-size="11" fill="#111827">'
                   f'{escape(s.label(*label_keys))} (last {escape(fmt_number(last))})</text>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(items: list[tuple[str, float]], *, title: str, highlight: str = "", width: int = 480,
              bar_height: int = 18) -> str:
    """Horizontal bars, one per (label, value); the bar labelled `highlight` (the champion) stands out."""
    finite = [(k, v) for k, v in items if math.isfinite(v)]
    height = 8 + bar_height * max(1, len(finite))
    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    top = max((abs(v) for _, v in finite), default=1.0) or 1.0
    for i, (label, value) in enumerate(finite):
        w = (width - 150) * abs(value) / top
        yy = 4 + i * bar_height
        colour = "#16a34a" if label == highlight else "#93c5fd"
        out.append(f'<text x="60" y="{yy + 13}" font-size="11" text-anchor="end">{escape(label)}</text>'
                   f'<rect x="66" y="{yy + 2}" width="{w:.1f}" height="{bar_height - 5}" fill="{colour}"/>'
                   f'<text x="{70 + w:.1f}" y="{yy + 13}" font-size="11">{escape(fmt_number(value))}</text>')
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True)
class WaterfallRow:
    span: Span
    depth: int
    offset_pct: float
    width_pct: float
    offset_us: int


def waterfall(trace: Trace) -> list[WaterfallRow]:
    """The trace's spans in tree order (children after their parent, by start time), each placed on the trace's
    time axis as percentages; a span whose parent is not in the trace is a root."""
    spans = sorted(trace.spans, key=lambda s: (s.start_us, s.span_id))
    if not spans:
        return []
    start = spans[0].start_us
    end = max(s.start_us + s.duration_us for s in spans)
    total = max(1, end - start)
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = {}
    for s in spans:
        children.setdefault(s.parent_id if s.parent_id in ids else "", []).append(s)
    rows: list[WaterfallRow] = []

    def walk(parent: str, depth: int) -> None:
        for s in children.get(parent, []):
            rows.append(WaterfallRow(s, depth, 100 * (s.start_us - start) / total,
                                     max(0.3, 100 * s.duration_us / total), s.start_us - start))
            if s.span_id != parent:
                walk(s.span_id, depth + 1)

    walk("", 0)
    return rows
