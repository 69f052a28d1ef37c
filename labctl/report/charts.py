"""Inline SVG bar charts of relative performance (host = 1), on a log scale.

A log scale because the levels span two orders of magnitude (TCG at a few percent of the host,
containers at 1.0): on a linear axis the emulated bars would vanish. Hand-made SVG keeps the
report self-contained and free of plotting dependencies; every text is XML-escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

COLORS = {
    "native": "#4d4d4d",
    "os-level": "#1b9e77",
    "paravirtualization": "#7570b3",
    "hardware-assisted": "#d95f02",
    "isa-emulation": "#e7298a",
}
LABEL_W, BAR_H, GAP, HEADER_H, TOP, BOTTOM, RIGHT = 150, 14, 4, 20, 58, 40, 70
LEVEL_NAMES = {
    "os-level": "OS-level",
    "paravirtualization": "paravirtual (KVM)",
    "hardware-assisted": "full virt. (KVM)",
    "isa-emulation": "ISA emulation (TCG)",
}


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float
    high: float
    level: str


def chart(title: str, groups: Sequence[tuple[str, Sequence[Bar]]], width: int = 720) -> str:
    """Grouped horizontal bars; a group with an empty name gets no header row."""
    bars = [b for _, group in groups for b in group if _ok(b.value)]
    lo, hi = _domain(bars)
    plot_w = width - LABEL_W - RIGHT
    rows = sum(len(g) for _, g in groups) * (BAR_H + GAP) + sum(HEADER_H for n, _ in groups if n)
    height = TOP + rows + BOTTOM
    x = _Scale(lo, hi, LABEL_W, plot_w)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    parts += _legend(sorted({b.level for b in bars}, key=list(COLORS).index))
    parts += _axis(lo, hi, x, TOP, TOP + rows)
    y = TOP
    for name, group in groups:
        if name:
            parts.append(f'<text x="4" y="{y + 14}" font-weight="bold">{escape(name)}</text>')
            y += HEADER_H
        for bar in group:
            parts += _bar(bar, x, y)
            y += BAR_H + GAP
    parts.append(
        f'<text x="{LABEL_W + plot_w / 2}" y="{height - 8}" text-anchor="middle">'
        "relative performance, host = 1 (log scale; higher is better; whiskers: 95% interval)</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(levels: Sequence[str]) -> list[str]:
    parts, x = [], LABEL_W
    for level in levels:
        name = LEVEL_NAMES.get(level, level)
        parts.append(f'<rect x="{x}" y="26" width="10" height="10" fill="{COLORS.get(level, "#999999")}"/>')
        parts.append(f'<text x="{x + 14}" y="35">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return parts


def _ok(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def _domain(bars: Sequence[Bar]) -> tuple[float, float]:
    values = [v for b in bars for v in (b.value, b.low, b.high) if _ok(v)] or [1.0]
    lo = 10 ** math.floor(math.log10(max(min(min(values), 1.0) * 0.9, 1e-4)))
    hi = max(2.0, max(values) * 1.2)
    return lo, hi


@dataclass(frozen=True)
class _Scale:
    lo: float
    hi: float
    left: float
    width: float

    def __call__(self, value: float) -> float:
        value = min(max(value, self.lo), self.hi)
        span = math.log10(self.hi) - math.log10(self.lo)
        return self.left + self.width * (math.log10(value) - math.log10(self.lo)) / span


def _ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    decade = lo
    while decade <= hi:
        ticks += [t for t in (decade, 2 * decade, 5 * decade) if lo <= t <= hi]
        decade *= 10
    return ticks


def _axis(lo: float, hi: float, x: _Scale, top: float, bottom: float) -> list[str]:
    parts = []
    for tick in _ticks(lo, hi):
        px = x(tick)
        parts.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}" stroke="#e0e0e0"/>')
        parts.append(f'<text x="{px:.1f}" y="{bottom + 14}" text-anchor="middle">{tick:g}</text>')
    one = x(1.0)
    parts.append(
        f'<line x1="{one:.1f}" y1="{top - 12}" x2="{one:.1f}" y2="{bottom}" stroke="#000" stroke-dasharray="4 3"/>'
    )
    parts.append(f'<text x="{one + 3:.1f}" y="{top - 2}">host</text>')
    return parts


def _bar(bar: Bar, x: _Scale, y: float) -> list[str]:
    colour = COLORS.get(bar.level, "#999999")
    parts = [f'<text x="{LABEL_W - 6}" y="{y + BAR_H - 3}" text-anchor="end">{escape(bar.label)}</text>']
    if not _ok(bar.value):
        parts.append(f'<text x="{LABEL_W + 4}" y="{y + BAR_H - 3}" fill="#999">no data</text>')
        return parts
    end = x(bar.value)
    parts.append(
        f'<rect x="{LABEL_W}" y="{y}" width="{max(end - LABEL_W, 1):.1f}" height="{BAR_H}" fill="{colour}">'
        f"<title>{escape(bar.label)}: {bar.value:.3g}</title></rect>"
    )
    if _ok(bar.low) and _ok(bar.high):
        lx, hx, mid = x(bar.low), x(bar.high), y + BAR_H / 2
        parts.append(f'<line x1="{lx:.1f}" y1="{mid}" x2="{hx:.1f}" y2="{mid}" stroke="#000"/>')
        for px in (lx, hx):
            parts.append(f'<line x1="{px:.1f}" y1="{mid - 4}" x2="{px:.1f}" y2="{mid + 4}" stroke="#000"/>')
    right = max(end, x(bar.high) if _ok(bar.high) else end)
    parts.append(f'<text x="{right + 4:.1f}" y="{y + BAR_H - 3}">{bar.value:.3g}×</text>')
    return parts
