"""combine: a combiner on each reducing queue.

When several pushes placed on one device send items to the same key of a queue that
reduces them (``reduce: {op: sum | max | min | prod}``), that device combines them first
(one ``accumulate`` with the queue's op) and pushes the result once: one transfer and
one item for the reducer instead of ``k``. The op is associative and commutative, so the
reduced value is the same up to floating-point rounding. Only where the saving is in
bytes: items whose transfer costs more in bandwidth than in latency, by the cost model's
links; small items (a CG dot product) go as they are, in parallel. Pushes of a ``schedule:
dynamic`` task are left alone (where they run is decided at run time), as are queues that
deliver their items (``pop:``)."""

from __future__ import annotations

import math
from dataclasses import replace

import networkx as nx

from ..cost.model import CostModel
from ..ir.devices import short
from ..ir.node import Node, copy_graph, node_table
from ..ir.payload import Compute
from .context import PassContext


def _worth_it(cm: CostModel, nbytes: int, src: str, dst: str) -> bool:
    return src == dst or cm.transfer(nbytes, src, dst) > 2 * cm.link(src, dst).latency


def combine(g: nx.DiGraph, ctx: PassContext) -> nx.DiGraph:
    return combine_with(g, ctx.cost_model)


def combine_with(g: nx.DiGraph, cm: CostModel) -> nx.DiGraph:
    """The pass, with the cost model that decides where combining is worth it."""
    queues = g.graph["facts"].queues
    nodes_ = node_table(g)
    plan = []  # (dequeue, queue op, [(device, [enqueue, ...]), ...]) with something to combine
    for d in (data["node"] for data in nodes_.values()):
        if d.kind != "dequeue" or d.data.key == "*":
            continue
        q = queues[d.data.queue]
        if q.reduce is None:
            continue
        groups: dict[tuple[str, str], list[Node]] = {}
        for e in d.inputs:
            enq = nodes_[e]["node"]
            producer = nodes_[enq.inputs[0]]["node"]
            if (
                enq.data.instance is None
                and producer.device
                and _worth_it(cm, enq.out_bytes, producer.device, enq.device or enq.allowed[0])
            ):
                groups.setdefault((producer.device, enq.scope), []).append(enq)
        merged = [(dev, members) for (dev, _), members in groups.items() if len(members) > 1]
        if merged:
            plan.append((d, q.reduce, merged))
    if not plan:
        return g
    g2 = copy_graph(g)
    replaced: dict[str, str] = {}  # removed enqueue -> the one that now carries its item
    for d, op, merged in plan:
        for dev, members in merged:
            first = members[0]
            prefix = "loop/" if first.scope == "loop" else ""
            size = math.prod(first.shape)
            acc = Node(
                f"{prefix}combine:{d.data.queue}[{d.data.key}]@{short(dev)}",
                "compute",
                "accumulate",
                tuple(m.inputs[0] for m in members),
                first.shape,
                first.dtype,
                size * (len(members) - 1),
                first.out_bytes,
                first.out_bytes * (len(members) + 1),
                device=dev,
                allowed=(dev,),
                scope=first.scope,
                group=d.data.queue,
                pos=first.pos,
                data=Compute((("op", op),)),
            )
            g2.add_node(acc.name, node=acc)
            for m in members:
                g2.add_edge(m.inputs[0], acc.name, bytes=first.out_bytes)
            kept = first.evolve(inputs=(acc.name,))
            g2.remove_edge(first.inputs[0], first.name)
            g2.add_edge(acc.name, first.name, bytes=first.out_bytes)
            g2.nodes[first.name]["node"] = kept
            for m in members[1:]:
                replaced[m.name] = first.name
                g2.remove_node(m.name)
        inputs = tuple(e for e in d.inputs if e not in replaced)
        item = d.out_bytes // max(d.data.count, 1)
        g2.nodes[d.name]["node"] = d.evolve(
            data=replace(d.data, count=len(inputs)), inputs=inputs, out_bytes=item * len(inputs)
        )
        for r in list(g2.successors(d.name)):
            red = g2.nodes[r]["node"]
            if red.kind == "reduce":
                g2.nodes[r]["node"] = red.evolve(flops=red.flops // max(d.data.count - 1, 1) * (len(inputs) - 1))
    for name in list(g2.nodes):  # control dependencies on a removed push: on the one that carries it
        n = g2.nodes[name]["node"]
        if any(a in replaced for a in n.after):
            after = tuple(sorted({replaced.get(a, a) for a in n.after}))
            for a in after:
                if not g2.has_edge(a, name):
                    g2.add_edge(a, name, bytes=0)
            g2.nodes[name]["node"] = n.evolve(after=after)
    return g2
