"""queues: shard every queue and pin its nodes.

Each ``enqueue`` gets its shard (the queue's ``shard`` expression, evaluated with the
pushing instance's indices) and the device of that shard: shard ``s`` of a queue on job
``J`` lives on task ``s mod |J|`` (or on the one task the queue names). The ``dequeue``,
``reduce`` and ``broadcast`` nodes of a key run where its items arrive."""

from __future__ import annotations

from dataclasses import replace

import networkx as nx

from ..ir.devices import allowed
from ..ir.node import nodes, rebuild, verify_ir
from ..spec.expr import evaluate


def shard_device(spec, queue: str, shard: int) -> str:
    devs = allowed(spec, spec.queues[queue].on)
    return devs[shard % len(devs)]


def queues(g: nx.DiGraph) -> nx.DiGraph:
    spec = g.graph["spec"]
    placed: dict[str, str] = {}
    out = []
    for n in nodes(g):
        if n.kind == "enqueue":
            q = spec.queues[n.attr("queue")]
            env = {**spec.params, **dict(n.attr("env", ()))}
            shard = int(evaluate(q.shard, env)) % q.shards if q.shard is not None else 0
            dev = shard_device(spec, q.name, shard)
            n = replace(n.with_attrs(shard=shard), allowed=(dev,))
        out.append(n)
    for n in out:
        if n.kind == "enqueue":
            placed[n.name] = n.allowed[0]
    result = []
    for n in out:
        if n.kind == "dequeue":
            devs = sorted({placed[i] for i in n.inputs})
            dev = devs[0] if len(devs) == 1 else shard_device(spec, n.attr("queue"), 0)
            n = replace(n, allowed=(dev,))
            placed[n.name] = dev
        result.append(n)
    final = []
    for n in result:
        if n.kind == "reduce":  # where its dequeue delivers the items
            n = replace(n, allowed=(placed[n.inputs[0]],))
        elif n.kind == "broadcast":  # from the queue's (first) task to every consumer
            n = replace(n, allowed=(shard_device(spec, n.attr("queue"), 0),))
        final.append(n)
    g2 = rebuild(final, g.graph)
    verify_ir(g2, "queues")
    return g2

