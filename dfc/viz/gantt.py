"""The simulated schedule as a Gantt chart: one row per device and per busy link, the
prologue and one loop iteration. SVG is written directly (no dependency); PNG needs
matplotlib (the optional extra ``dfc[plot]``)."""

from __future__ import annotations

import io
from html import escape

from ..cost.plan import Plan
from ..ir.devices import short
from .dot import PALETTE


def _rows(plan: Plan):
    rows = [d for d in plan.devices]
    links = sorted({s.resource for s in plan.schedule.timeline if "->" in s.resource})
    return rows + links


def _label(resource: str) -> str:
    if "->" in resource:
        a, b = resource.split("->")
        return f"{short(a)} > {short(b)}"
    return short(resource)


def svg(plan: Plan, width: int = 1100) -> str:
    rows = _rows(plan)
    slots = plan.schedule.timeline
    end = max((s.end for s in slots), default=1e-9) or 1e-9
    left, row_h, top = 150, 22, 30
    height = top + row_h * len(rows) + 40
    scale = (width - left - 20) / end
    groups = sorted({s.group for s in slots})
    colour = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="Helvetica" font-size="11">',
        f'<text x="10" y="18" font-size="13">{escape(plan.name)}: prologue and one iteration, '
        f"{plan.strategy} ({end * 1e3:.3f} ms shown)</text>",
    ]
    for i, r in enumerate(rows):
        y = top + i * row_h
        out.append(f'<text x="10" y="{y + 15}">{escape(_label(r))}</text>')
        out.append(f'<line x1="{left}" x2="{width - 20}" y1="{y + row_h}" y2="{y + row_h}" stroke="#eee"/>')
    index = {r: i for i, r in enumerate(rows)}
    for s in slots:
        if s.resource not in index:
            continue
        y = top + index[s.resource] * row_h + 3
        x, w = left + s.start * scale, max((s.end - s.start) * scale, 0.5)
        out.append(
            f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{row_h - 6}" fill="{colour[s.group]}" '
            f'stroke="#333" stroke-width="0.3"><title>{escape(s.node)} {s.start * 1e3:.3f}-{s.end * 1e3:.3f} ms</title></rect>'
        )
    y = top + len(rows) * row_h + 25
    for k, gname in enumerate(groups[:12]):
        out.append(
            f'<rect x="{left + k * 80}" y="{y - 10}" width="10" height="10" fill="{colour[gname]}"/>'
            f'<text x="{left + k * 80 + 14}" y="{y}">{escape(gname[:10])}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def png(plan: Plan) -> bytes:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError(
            "a PNG Gantt chart needs matplotlib (pip install 'dfc[plot]'); an .svg file needs nothing"
        ) from None
    rows = _rows(plan)
    index = {r: i for i, r in enumerate(rows)}
    groups = sorted({s.group for s in plan.schedule.timeline})
    colour = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(12, 0.4 * len(rows) + 1.5))
    for s in plan.schedule.timeline:
        if s.resource in index:
            ax.barh(
                index[s.resource],
                (s.end - s.start) * 1e3,
                left=s.start * 1e3,
                color=colour[s.group],
                edgecolor="#333",
                linewidth=0.3,
            )
    ax.set_yticks(range(len(rows)), [_label(r) for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ms")
    ax.set_title(f"{plan.name}: prologue and one iteration ({plan.strategy})")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, dpi=120, format="png")
    plt.close(fig)
    return out.getvalue()
