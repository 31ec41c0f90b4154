"""Server-rendered SVG charts: no JavaScript, no chart library, nothing from a CDN."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from markupsafe import Markup, escape

# Colour-blind-safe (Okabe-Ito), dark enough for lines on white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def mastery_over_time(
    points: Sequence[tuple[datetime, str, float]], names: Mapping[str, str], *, threshold: float,
    max_skills: int = 6, width: int = 720, height: int = 260,
) -> Markup:
    """One line per skill (the most recently practised ones): paced P(L) after each answer.

    x is the answer number in the student's history, y is P(L) in [0, 1]; a dashed line
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
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="12">'
                     f"{tick:.0%}</text>")
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" font-size="12">'
                 "answers, oldest to newest</text>")
    for index, skill_id in enumerate(shown):
        colour = PALETTE[index % len(PALETTE)]
        coords = " ".join(f"{x(i):.1f},{y(p):.1f}" for i, (_, s, p) in enumerate(points) if s == skill_id)
        parts.append(f'<polyline class="series" data-skill="{escape(skill_id)}" fill="none" '
                     f'stroke="{colour}" stroke-width="2" points="{coords}"/>')
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" data-colour="{PALETTE[i % len(PALETTE)]}">'
        f'<svg width="14" height="14" aria-hidden="true"><rect width="14" height="14" '
        f'fill="{PALETTE[i % len(PALETTE)]}"/></svg></span> {escape(names.get(s, s))}</li>'
        for i, s in enumerate(shown))
    return Markup("".join(parts) + f'<ul class="legend">{legend}</ul>')
