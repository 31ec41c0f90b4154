"""Server-rendered SVG charts: no JavaScript, no chart library, nothing from a CDN."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from markupsafe import Markup, escape

# Colour-blind-safe (Okabe-Ito), dark enough for lines on white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def mastery_over_time(
    points: Sequence[tuple[datetime, str, float]],
    names: Mapping[str, str],
    *,
    threshold: float,
    max_skills: int = 6,
    width: int = 720,
    height: int = 260,
) -> Markup:
    """One line per skill (the most recently practised ones): the mastery estimate after each answer.

    x is the answer number in the student's history, y is the estimate in [0, 1]; a dashed line
    marks the mastery threshold.
    """
    if not points:
        return Markup('<p class="muted">No answers yet: nothing to plot.</p>')
    recent: list[str] = []
    for _, skill_id, _ in reversed(points):
        if skill_id not in recent:
            recent.append(skill_id)
    shown = recent[:max_skills]
    left, right, top, bottom = 40, 10, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(points)

    def x(i: int) -> float:
        return left + (plot_w * i / max(n - 1, 1))

    def y(p: float) -> float:
        return top + plot_h * (1 - p)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart-title"><title id="chart-title">Mastery over the last {n} answers '
        f"for {len(shown)} skill(s)</title>",
        f'<line x1="{left}" y1="{y(0)}" x2="{left + plot_w}" y2="{y(0)}" stroke="#4a5563"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{y(0)}" stroke="#4a5563"/>',
        f'<line x1="{left}" y1="{y(threshold):.1f}" x2="{left + plot_w}" y2="{y(threshold):.1f}" '
        'stroke="#4a5563" stroke-dasharray="4 4"/>',
    ]
    for tick in (0.0, 0.5, 1.0):
        parts.append(
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="12">{tick:.0%}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" font-size="12">'
        "answers, oldest to newest</text>"
    )
    for index, skill_id in enumerate(shown):
        colour = PALETTE[index % len(PALETTE)]
        coords = " ".join(f"{x(i):.1f},{y(p):.1f}" for i, (_, s, p) in enumerate(points) if s == skill_id)
        parts.append(
            f'<polyline class="series" data-skill="{escape(skill_id)}" fill="none" '
            f'stroke="{colour}" stroke-width="2" points="{coords}"/>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" data-colour="{PALETTE[i % len(PALETTE)]}">'
        f'<svg width="14" height="14" aria-hidden="true"><rect width="14" height="14" '
        f'fill="{PALETTE[i % len(PALETTE)]}"/></svg></span> {escape(names.get(s, s))}</li>'
        for i, s in enumerate(shown)
    )
    return Markup("".join(parts) + f'<ul class="legend">{legend}</ul>')


def interval_chart(
    title: str,
    rows: Sequence[tuple[str, float, float | None, float | None]],
    *,
    reference: float | None = None,
    width: int = 520,
) -> Markup:
    """One row per group: the estimate as a dot and its 95% interval as a line, on a shared axis."""
    if not rows:
        return Markup("")
    values = [e for _, v, lo, hi in rows for e in (v, lo, hi) if e is not None]
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    pad = (high - low) * 0.1
    low, high = low - pad, high + pad
    # Room for the longest group name (about 6.5 px a character at 12 px), within reason.
    left, right, row_h = min(260, max(90, 12 + round(6.5 * max(len(name) for name, *_ in rows)))), 20, 26
    height = row_h * len(rows) + 30

    def x(v: float) -> float:
        return left + (width - left - right) * (v - low) / (high - low)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
    ]
    if reference is not None and low <= reference <= high:
        parts.append(
            f'<line x1="{x(reference):.1f}" y1="4" x2="{x(reference):.1f}" y2="{height - 24}" '
            'stroke="#4a5563" stroke-dasharray="3 3"/>'
        )
    for i, (name, value, lo, hi) in enumerate(rows):
        y = 16 + i * row_h
        parts.append(
            f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" font-size="12">{escape(name)}</text>'
        )
        if lo is not None and hi is not None:
            parts.append(
                f'<line x1="{x(lo):.1f}" y1="{y}" x2="{x(hi):.1f}" y2="{y}" stroke="#0072B2" '
                'stroke-width="2"/>'
            )
        parts.append(f'<circle cx="{x(value):.1f}" cy="{y}" r="4" fill="#0072B2"/>')
    for tick in (low + pad, (low + high) / 2, high - pad):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{height - 8}" text-anchor="middle" font-size="11">{tick:.2f}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
