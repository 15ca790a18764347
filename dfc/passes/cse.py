"""cse: common-subexpression elimination. Two pure nodes (``compute`` or ``const``) with
the same op, inputs, attributes, scope and placement constraint compute the same value:
keep one (the first in topological order) and point every consumer at it. Effectful
nodes (variables, assigns, queue operations, transfers) are never merged, nor computes
without inputs (a boundary tile's `fill`, `eye`, `rand`): each is made where it is used,
where one shared by tiles on two devices would be shipped."""

from __future__ import annotations

import networkx as nx

from ..ir.node import EFFECTFUL, copy_graph, topo
from .context import PassContext


def cse(g: nx.DiGraph, ctx: PassContext | None = None) -> nx.DiGraph:
    canon: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    changed = []
    for n in topo(g):
        if canon and (any(i in canon for i in n.inputs) or any(i in canon for i in n.after)):
            n = n.evolve(
                inputs=tuple(canon.get(i, i) for i in n.inputs), after=tuple(sorted({canon.get(i, i) for i in n.after}))
            )
            changed.append(n)
        if n.kind not in EFFECTFUL and (n.inputs or n.kind == "const"):
            key = (n.kind, n.op, n.inputs, n.data, n.scope, n.allowed, n.shape, n.dtype)
            if key in seen:
                canon[n.name] = seen[key]
            else:
                seen[key] = n.name
    if not canon:  # nothing merged: the same graph
        return g
    g2 = copy_graph(g)
    for n in changed:  # rewire consumers of merged nodes, then drop the duplicates
        for p in list(g2.predecessors(n.name)):
            g2.remove_edge(p, n.name)
        g2.nodes[n.name]["node"] = n
        for src in n.inputs:
            g2.add_edge(src, n.name, bytes=g2.nodes[src]["node"].out_bytes)
        for src in n.after:
            if not g2.has_edge(src, n.name):
                g2.add_edge(src, n.name, bytes=0)
    g2.remove_nodes_from(canon)
    return g2
