"""Curves as inline SVG (ROC, precision-recall): no script, no image file.

The points are the exact curve vertices given; only points closer than half a pixel to the
previous drawn one are left out of the drawing (they could not be seen)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dl_utils.report.html import esc

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def visible_points(x: np.ndarray, y: np.ndarray, min_step: float) -> np.ndarray:
    """Indices of the points kept for drawing: the first, the last, and each point at least
    `min_step` (in either coordinate) from the previous kept one."""
    keep = [0] if len(x) else []
    for i in range(1, len(x)):
        if abs(x[i] - x[keep[-1]]) >= min_step or abs(y[i] - y[keep[-1]]) >= min_step or i == len(x) - 1:
            keep.append(i)
    return np.asarray(keep, dtype=int)


def line_chart(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str, xlabel: str, ylabel: str,
               diagonal: bool = False, size: int = 300) -> str:
    """One SVG of curves on the unit square, one colour per series (its name in the legend)."""
    left, top, plot = 44, 24, size - 60
    legend_h = 16 * len(series)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + legend_h}" role="img" '
             f'aria-label="{esc(title)}"><text x="{size / 2}" y="15" text-anchor="middle" font-size="12">{esc(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{plot}" height="{plot}" fill="none" stroke="#999"/>']
    for t in np.linspace(0, 1, 5):
        px, py = left + t * plot, top + (1 - t) * plot
        parts.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{top + plot}" stroke="#eee"/>'
                     f'<line x1="{left}" y1="{py:.1f}" x2="{left + plot}" y2="{py:.1f}" stroke="#eee"/>'
                     f'<text x="{px:.1f}" y="{top + plot + 13}" text-anchor="middle" font-size="10">{t:g}</text>'
                     f'<text x="{left - 4}" y="{py + 3:.1f}" text-anchor="end" font-size="10">{t:g}</text>')
    parts.append(f'<text x="{left + plot / 2}" y="{top + plot + 27}" text-anchor="middle" font-size="11">{esc(xlabel)}</text>'
                 f'<text transform="translate(11 {top + plot / 2}) rotate(-90)" text-anchor="middle" font-size="11">'
                 f"{esc(ylabel)}</text>")
    if diagonal:
        parts.append(f'<line x1="{left}" y1="{top + plot}" x2="{left + plot}" y2="{top}" stroke="#aaa" stroke-dasharray="4 3"/>')
    for i, (name, (xs, ys)) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        keep = visible_points(x, y, 0.5 / plot)
        points = " ".join(f"{left + a * plot:.1f},{top + (1 - b) * plot:.1f}" for a, b in zip(x[keep], y[keep]))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"><title>{esc(name)}</title></polyline>')
        ly = size + 12 + 16 * i
        parts.append(f'<line x1="{left}" y1="{ly - 4}" x2="{left + 18}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>'
                     f'<text x="{left + 24}" y="{ly}" font-size="11">{esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
