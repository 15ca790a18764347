"""queues: shard every queue and pin its nodes.

Each ``enqueue`` gets its shard (the queue's ``shard`` expression, evaluated with the
pushing instance's indices) and the device of that shard: shard ``s`` of a queue on job
``J`` lives on task ``s mod |J|`` (or on the one task the queue names). The ``dequeue``,
``reduce`` and ``broadcast`` nodes of a key run where its items arrive."""

from __future__ import annotations

from dataclasses import replace

import networkx as nx

from ..ir.node import each_node, with_nodes
from ..lang.expr import compiled
from .context import PassContext


def queues(g: nx.DiGraph, ctx: PassContext | None = None) -> nx.DiGraph:
    facts = g.graph["facts"]
    placed: dict[str, str] = {}
    out = []
    kinds = ("enqueue", "dequeue", "reduce", "broadcast")
    for n in sorted((n for n in each_node(g) if n.kind in kinds), key=lambda n: n.name):
        if n.kind == "enqueue":
            q = facts.queues[n.data.queue]
            env = {**facts.params, **dict(n.data.env)}
            shard = int(compiled(q.shard)(env)) % q.shards if q.shard is not None else 0
            n = n.evolve(data=replace(n.data, shard=shard), allowed=(q.device_of_shard(shard),))
        out.append(n)
    for n in out:
        if n.kind == "enqueue":
            placed[n.name] = n.allowed[0]
    result = []
    for n in out:
        if n.kind == "dequeue":
            devs = sorted({placed[i] for i in n.inputs})
            dev = devs[0] if len(devs) == 1 else facts.queues[n.data.queue].device_of_shard(0)
            n = n.evolve(allowed=(dev,))
            placed[n.name] = dev
        result.append(n)
    final = []
    for n in result:
        if n.kind == "reduce":  # where its dequeue delivers the items
            n = n.evolve(allowed=(placed[n.inputs[0]],))
        elif n.kind == "broadcast":  # from the queue's (first) task to every consumer
            n = n.evolve(allowed=(facts.queues[n.data.queue].device_of_shard(0),))
        final.append(n)
    return with_nodes(g, [n for n in final if n.kind in ("enqueue", "dequeue", "reduce", "broadcast")])
