"""cse: common-subexpression elimination. Two pure nodes (``compute`` or ``const``) with
the same op, inputs, attributes, scope and placement constraint compute the same value:
keep one (the first in topological order) and point every consumer at it. Effectful
nodes (variables, assigns, queue operations, transfers) are never merged."""

from __future__ import annotations

import networkx as nx

from ..ir.node import EFFECTFUL, rebuild, topo, verify_ir


def cse(g: nx.DiGraph) -> nx.DiGraph:
    canon: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    kept = []
    for n in topo(g):
        if canon and (any(i in canon for i in n.inputs) or any(i in canon for i in n.after)):
            n = n.evolve(inputs=tuple(canon.get(i, i) for i in n.inputs),
                         after=tuple(sorted({canon.get(i, i) for i in n.after})))
        if n.kind not in EFFECTFUL:
            key = (n.kind, n.op, n.inputs, n.attrs, n.scope, n.allowed, n.shape, n.dtype)
            if key in seen:
                canon[n.name] = seen[key]
                continue
            seen[key] = n.name
        kept.append(n)
    g2 = rebuild(kept, g.graph)
    verify_ir(g2, "cse")
    return g2
