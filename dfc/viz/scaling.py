"""`dfc plan --sweep ... --format svg`: the predicted speedup against the swept value, with
the ideal (linear in the value) beside it. SVG written directly (no dependency)."""

from __future__ import annotations

from html import escape


def svg(title: str, key: str, rows: list[dict], width: int = 640, height: int = 420) -> str:
    """``rows``: the sweep's rows (``key``'s value, ``speedup``), in the order swept."""
    xs = [float(r[key]) for r in rows]
    ys = [float(r["speedup"]) for r in rows]
    ideal = [x / xs[0] if xs[0] else 1.0 for x in xs]
    left, right, top, bottom = 60, 20, 40, 50
    x_max, y_max = max(xs) * 1.05 or 1.0, max(ys + ideal) * 1.1 or 1.0
    x_min = min(0.0, min(xs))

    def px(x: float) -> float:
        return left + (x - x_min) / (x_max - x_min) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - y / y_max * (height - top - bottom)

    def line(values: list[float], colour: str, dash: str = "") -> str:
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, values))
        style = f' stroke-dasharray="{dash}"' if dash else ""
        dots = "".join(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>' for x, y in zip(xs, values))
        return f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{style}/>{dots}'

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="Helvetica" font-size="11">',
        f'<text x="10" y="20" font-size="13">{escape(title)}</text>',
        f'<line x1="{left}" y1="{py(0)}" x2="{width - right}" y2="{py(0)}" stroke="black"/>',
        f'<line x1="{left}" y1="{py(0)}" x2="{left}" y2="{top}" stroke="black"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">{escape(key)}</text>',
        f'<text x="14" y="{(top + height - bottom) / 2}" transform="rotate(-90 14 {(top + height - bottom) / 2})" '
        'text-anchor="middle">predicted speedup</text>',
    ]
    for x in xs:
        out.append(f'<text x="{px(x):.1f}" y="{py(0) + 14:.1f}" text-anchor="middle">{x:g}</text>')
    for k in range(0, int(y_max) + 1):
        out.append(f'<text x="{left - 6}" y="{py(k) + 4:.1f}" text-anchor="end">{k}</text>')
    out.append(line(ideal, "#999999", "5,4"))
    out.append(line(ys, "#1f77b4"))
    out.append(f'<text x="{width - right - 120}" y="{top + 4}" fill="#1f77b4">predicted</text>')
    out.append(f'<text x="{width - right - 120}" y="{top + 18}" fill="#999999">ideal</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
