"""Spec -> the task-level IR: one ``task`` node per task, scalar initialisation and loop
step, with an edge wherever one reads what another writes. The ``expand`` pass turns it
into tile-level nodes; this graph is what ``dfc plan --print-after build`` shows."""

from __future__ import annotations

import networkx as nx

from ..lang.model import Let, Spec, Task
from .facts import facts_of
from .node import Node


def entries(spec: Spec) -> list[tuple[str, object, str]]:
    """(template name, spec object, scope) for everything that computes, in program order."""
    out: list[tuple[str, object, str]] = [(f"scalar:{s.name}", s, "") for s in spec.scalars.values() if s.init]
    out += [(f"task:{t.name}", t, "") for t in spec.tasks.values()]
    if spec.loop:
        seen: dict[str, int] = {}
        for s in spec.loop.steps:
            name = f"loop/{s.name}" if isinstance(s, Task) else f"loop/let:{s.let}"
            seen[name] = seen.get(name, 0) + 1  # a name bound again later in the body: numbered
            out.append((name if seen[name] == 1 else f"{name}.{seen[name] - 1}", s, "loop"))
    return out


def reads_writes(spec: Spec, obj) -> tuple[set[str], set[str]]:
    if isinstance(obj, Task):
        reads = {n for e in (obj.compute, *(v for _, v in obj.update)) if e for n in e.names()}
        writes = {t.base() for t, _ in obj.update} | {obj.out.base() if obj.out else None}
        queue = obj.queue
        if queue is not None and queue in spec.queues:
            writes.add(queue)
            r = spec.queues[queue].reduce
            if r and r.into:
                writes.add(r.into)
        if obj.pop:
            reads.add(obj.pop)
        return reads, {w for w in writes if w is not None}
    if isinstance(obj, Let):
        e = obj.reduce or obj.value
        return set(e.names()) if e else set(), {obj.let}
    return set(obj.init.names()) if obj.init else set(), {obj.name}


def build(spec: Spec) -> nx.DiGraph:
    g = nx.DiGraph(facts=facts_of(spec))
    items = entries(spec)
    rw = {name: reads_writes(spec, obj) for name, obj, _ in items}
    for name, obj, scope in items:
        g.add_node(
            name,
            node=Node(
                name,
                "task",
                group=name.split(":")[-1].split("/")[-1],
                scope=scope,
                pos=getattr(obj, "pos", spec.source.value(())),
            ),
        )
    prologue = [n for n, _, s in items if s == ""]
    for a in prologue:
        for b in prologue:
            if a != b and rw[a][1] & rw[b][0]:
                g.add_edge(a, b, bytes=0)
    body = [n for n, _, s in items if s == "loop"]
    for a, b in zip(body, body[1:]):
        g.add_edge(a, b, bytes=0)
    for a in prologue:
        for b in body[:1]:
            g.add_edge(a, b, bytes=0)
    for n in g.nodes:  # keep Node.inputs equal to the predecessors (an IR invariant)
        node = g.nodes[n]["node"]
        g.nodes[n]["node"] = Node(**{**node.__dict__, "inputs": tuple(sorted(g.predecessors(n)))})
    return g
