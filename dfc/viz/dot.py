"""The placed graph as Graphviz DOT, coloured by device, Send/Recv drawn as arrows
between device clusters; past ``collapse_at`` nodes, collapsed by task class."""

from __future__ import annotations

import shutil
import subprocess

from ..cost.plan import Plan
from ..ir.devices import short
from ..ir.node import Node, nodes

PALETTE = (
    "#8dd3c7",
    "#ffffb3",
    "#bebada",
    "#fb8072",
    "#80b1d3",
    "#fdb462",
    "#b3de69",
    "#fccde5",
    "#d9d9d9",
    "#bc80bd",
    "#ccebc5",
    "#ffed6f",
)
SHAPES = {
    "variable": "cylinder",
    "send": "rarrow",
    "recv": "larrow",
    "enqueue": "invhouse",
    "dequeue": "house",
    "reduce": "invtrapezium",
    "broadcast": "trapezium",
    "assign": "note",
    "loop": "doubleoctagon",
    "const": "plain",
}


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(plan: Plan, collapse_at: int = 300) -> str:
    g = plan.graph
    color = {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(plan.devices)}
    lines = [
        f"digraph {_q(plan.name)} {{",
        "  rankdir=TB; node [style=filled, fontname=Helvetica, fontsize=10];",
        '  edge [color="#555555"];',
    ]
    shown = [n for n in nodes(g) if n.kind != "const"]
    legend = " ".join(f"{short(d)}" for d in plan.devices)
    if len(shown) <= collapse_at:
        for n in shown:
            label = f"{n.name}\\n{n.op}" if n.op and n.op != n.kind else n.name
            lines.append(
                f"  {_q(n.name)} [label={_q(label)}, shape={SHAPES.get(n.kind, 'box')}, "
                f"fillcolor={_q(color.get(n.device, '#ffffff'))}, tooltip={_q(short(n.device) if n.device else '')}];"
            )
        for u, v, data in sorted(g.edges(data=True)):
            if g.nodes[u]["node"].kind == "const":
                continue
            style = ", style=dashed" if not data["bytes"] else ""
            lines.append(f"  {_q(u)} -> {_q(v)} [tooltip={_q(str(data['bytes']) + ' B')}{style}];")
    else:
        key = {n.name: f"{n.group}:{n.kind}@{short(n.device) if n.device else '-'}" for n in shown}
        counts: dict[str, int] = {}
        for n in shown:
            counts[key[n.name]] = counts.get(key[n.name], 0) + 1
        first: dict[str, Node] = {}
        for n in shown:
            first.setdefault(key[n.name], n)
        for k in sorted(counts):
            n = first[k]
            lines.append(
                f"  {_q(k)} [label={_q(f'{n.group} {n.kind}' + chr(10) + f'x{counts[k]} on ' + (short(n.device) if n.device else '-'))}, "
                f"shape={SHAPES.get(n.kind, 'box')}, fillcolor={_q(color.get(n.device, '#ffffff'))}];"
            )
        edges: dict[tuple[str, str], int] = {}
        for u, v, data in g.edges(data=True):
            if u in key and v in key and key[u] != key[v]:
                edges[(key[u], key[v])] = edges.get((key[u], key[v]), 0) + data["bytes"]
        for (a, b), nbytes in sorted(edges.items()):
            lines.append(f"  {_q(a)} -> {_q(b)} [label={_q(f'{nbytes / 2**20:.1f} MiB' if nbytes else '')}];")
    lines.append(f"  label={_q(plan.name + ' — devices: ' + legend)}; labelloc=t;")
    lines.append("}")
    return "\n".join(lines) + "\n"


class RenderError(Exception):
    pass


def to_image(dot_text: str, fmt: str, timeout: float = 120) -> bytes:
    """SVG or PNG bytes from DOT, with Graphviz's ``dot``."""
    exe = shutil.which("dot")
    if exe is None:
        raise RenderError(
            f"drawing {fmt.upper()} needs Graphviz's `dot` (apt-get install graphviz, "
            "brew install graphviz); --format dot writes the graph without it"
        )
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RenderError(f"Graphviz took longer than {timeout:.0f} s; try --format dot") from None
    if proc.returncode != 0:
        raise RenderError("Graphviz failed: " + proc.stderr.decode(errors="replace")[:500])
    return proc.stdout
