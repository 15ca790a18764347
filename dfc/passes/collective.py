"""collective: a reduction through a queue becomes an all-reduce among its producers.

A ``via:`` reduction (``sum(dot(p[i], q[i]))`` through a queue that reduces and
broadcasts) is, after placement, a partial result on each of some devices, an enqueue of
each into the queue's task, a dequeue and a sum there, the rest of the ``let`` expression,
and a broadcast back: four cross-process hops on the critical path. Its alternative (seed
004, seed 000 §VIII) is an all-reduce: each device sums its own partials, the devices
exchange them with TensorFlow's collective ops (one ``allreduce`` node per device, all
with one instance key), and every device ends with the reduction. What the ``let`` does
with it (``rr / sum(...)``) is then computed on each device that uses the broadcast value,
from its own copy, instead of once and shipped.

The queue's ``reduce: {via: ...}`` chooses: ``queue`` keeps seed 000's form, ``collective``
asks for the all-reduce, ``auto`` (the default) takes the one the simulator predicts is
faster for this placement (on graphs up to :data:`COMPARE_LIMIT` nodes; larger ones keep
the queue). What was chosen, and the two predictions, are in ``g.graph["reductions"]``:
``dfc plan`` prints them. Reductions of items pushed into a queue (``push:``), or reduced
into an array's tiles (``into:``), keep the queue (validation refuses ``collective``
there)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import networkx as nx

from ..cost.model import CostModel
from ..ir.devices import short
from ..ir.node import Node, edit_graph, node_table, with_nodes
from ..ir.payload import Collective, Compute
from ..lang.checks import COLLECTIVE_DTYPES
from .context import PassContext

#: Past this many nodes ``auto`` keeps the queue without comparing (two more simulations).
COMPARE_LIMIT = 20_000


def collective(g: nx.DiGraph, ctx: PassContext) -> nx.DiGraph:
    return collective_with(g, ctx.cost_model)


def collective_with(g: nx.DiGraph, cm: CostModel) -> nx.DiGraph:
    """The pass, with the cost model that decides ``auto``."""
    facts = g.graph["facts"]
    report: dict[str, dict] = {}
    for q in sorted(facts.queues):
        qf = facts.queues[q]
        if qf.reduce is None:
            continue
        dequeues = via_reductions(g, q, any_dtype=True)
        if not dequeues:
            continue
        if qf.via == "queue":
            report[q] = {"asked": "queue", "form": "queue"}
            continue
        odd = sorted({n.dtype for n in dequeues if n.dtype not in COLLECTIVE_DTYPES})
        if odd:  # validation refuses complex values; any other such item stays in the queue, said
            why = f"{', '.join(odd)} items: TensorFlow's collectives reduce {', '.join(sorted(COLLECTIVE_DTYPES))}"
            report[q] = {"asked": qf.via, "form": "queue", "why": why}
            continue
        if qf.via == "collective":
            g = _all_reduce(g, q, dequeues)
            report[q] = {"asked": "collective", "form": "collective"}
            continue
        if g.number_of_nodes() > COMPARE_LIMIT:
            report[q] = {"asked": "auto", "form": "queue", "why": f"not compared: over {COMPARE_LIMIT:,} nodes"}
            continue
        other = _all_reduce(g, q, dequeues)
        through_queue, all_reduce = predict(g, cm), predict(other, cm)
        form = "collective" if all_reduce < through_queue else "queue"
        if form == "collective":
            g = other
        report[q] = {"asked": "auto", "form": form, "queue_s": through_queue, "collective_s": all_reduce}
    return with_nodes(g, [], {"reductions": report}) if report else g


def predict(g: nx.DiGraph, cm: CostModel) -> float:
    """The makespan the plan will report for a placed graph: after the combiner and comm
    (what ``auto`` and HEFT's final comparison of its candidates go by)."""
    from ..cost.simulate import simulate
    from .combine import combine_with
    from .comm import comm

    return simulate(comm(combine_with(g, cm)), cm, timeline=False, bound=False).makespan


def via_reductions(g: nx.DiGraph, q: str, any_dtype: bool = False) -> list[Node]:
    """The dequeues of ``q`` that an all-reduce can replace: a ``via:`` reduction's (its
    items keyed by the reduction's name, none from a dynamic task), read by one ``reduce``,
    of a dtype TensorFlow's collectives take (unless ``any_dtype``)."""
    nodes_ = node_table(g)
    out = []
    for d in nodes_.values():
        n = d["node"]
        if n.kind != "dequeue" or n.data.queue != q or n.data.key == "*":
            continue
        enqs = [nodes_[e]["node"] for e in n.inputs]
        readers = list(g._succ[n.name])
        if (
            enqs
            and all(isinstance(e.data.key[0], str) and e.data.instance is None for e in enqs)
            and len(readers) == 1
            and nodes_[readers[0]]["node"].kind == "reduce"
            and (any_dtype or n.dtype in COLLECTIVE_DTYPES)
        ):
            out.append(n)
    return sorted(out, key=lambda n: n.name)


def _all_reduce(g: nx.DiGraph, q: str, dequeues: list[Node]) -> nx.DiGraph:
    nodes_ = node_table(g)
    order = {d: i for i, d in enumerate(g.graph["facts"].devices)}
    h, succ, pred = edit_graph(g)
    data = node_table(h)
    removed: dict[str, tuple[str, ...]] = {}  # a removed node -> what stands for it in `after`
    keys = dict(g.graph.get("collective_keys", {"groups": {}, "instances": 0}))
    groups: dict[tuple, int] = dict(keys["groups"])

    def add(n: Node) -> str:
        data[n.name] = {"node": n}
        h._succ[n.name], h._pred[n.name] = {}, {}
        for src in (*n.inputs, *n.after):
            succ(src)[n.name] = pred(n.name)[src] = {"bytes": data[src]["node"].out_bytes if src in n.inputs else 0}
        return n.name

    def drop(name: str, standing_for: tuple[str, ...]) -> None:
        removed[name] = standing_for
        for src in list(h._pred[name]):
            del succ(src)[name]
        for dst in list(h._succ[name]):
            del pred(dst)[name]
        del data[name], h._succ[name], h._pred[name]

    for deq in dequeues:
        red = nodes_[next(iter(g._succ[deq.name]))]["node"]
        enqs = [nodes_[e]["node"] for e in deq.inputs]
        terms = [nodes_[e.inputs[0]]["node"] for e in enqs]
        members = tuple(sorted({t.device for t in terms}, key=lambda d: order.get(d, len(order))))
        prefix = "loop/" if red.scope == "loop" else ""
        label = f"{q}[{deq.data.key}]"
        size = math.prod(red.shape)

        def summing(kind: str, name: str, inputs: tuple[str, ...], device: str, payload) -> str:
            """A node on ``device`` reducing ``inputs`` with ``red``'s op."""
            k = len(inputs)
            changes = dict(flops=size * (k - 1), mem_bytes=red.out_bytes * (k + 1), device=device, allowed=(device,))
            return add(red.evolve(name=name, kind=kind, inputs=inputs, data=payload, after=(), **changes))

        partials = []
        for d in members:
            mine = tuple(t.name for t in terms if t.device == d)
            partials.append(
                mine[0]
                if len(mine) == 1
                else summing("compute", f"{prefix}partial:{label}@{short(d)}", mine, d, Compute(red.data.kwargs))
            )
        value: dict[str, str] = {}
        if len(members) == 1:  # every partial on one device: its sum is the reduction
            value[members[0]] = partials[0]
        else:
            group = groups.setdefault(members, len(groups) + 1)
            keys["instances"] += 1
            ring = Collective(red.data.kwargs, None, q, members, group, keys["instances"])
            for d in members:
                value[d] = summing("allreduce", f"{prefix}allreduce:{label}@{short(d)}", tuple(partials), d, ring)
        _replicate(h, red, q, value, members[0], add, drop, succ, pred)
        drop(red.name, tuple(value.values()))
        drop(deq.name, tuple(value.values()))
        for e in enqs:
            drop(e.name, (e.inputs[0],))
    # control dependencies on a removed node: on what stands for it
    for name, d in list(data.items()):
        n = d["node"]
        if any(a in removed for a in n.after):
            after = tuple(sorted({x for a in n.after for x in (removed.get(a, (a,)))} - {name}))
            for a in n.after:
                if a in h._pred[name] and a not in n.inputs:
                    del succ(a)[name], pred(name)[a]
            data[name] = {"node": n.evolve(after=after)}
            for a in after:
                if a not in h._pred[name]:
                    succ(a)[name] = pred(name)[a] = {"bytes": 0}
    h.graph["collective_keys"] = {"groups": groups, "instances": keys["instances"]}
    return h


def _replicate(
    h: nx.DiGraph,
    red: Node,
    q: str,
    value: dict[str, str],
    first: str,
    add: Callable[[Node], str],
    drop: Callable[[str, tuple], None],
    succ: Callable[[str], dict],
    pred: Callable[[str], dict],
) -> None:
    """Point every reader of ``red`` at the all-reduce on its own device (or the first
    member's), and make what the ``let`` computes from it between ``red`` and its
    broadcast — a few scalar ops — on every device that reads the broadcast value, from
    that device's copy: the broadcast itself goes."""
    data = node_table(h)
    # the let's own nodes: compute nodes on paths from red to a broadcast of its queue
    region: set[str] = set()

    def reaches_broadcast(name: str, seen: dict[str, bool]) -> bool:
        if name in seen:
            return seen[name]
        seen[name] = False
        n = data[name]["node"]
        if n.group != red.group:  # another let's (or task's): not this reduction's to remake
            pass
        elif n.kind == "broadcast" and n.data.queue == q:
            seen[name] = True
        elif n.kind == "compute" and n.scope == red.scope:
            seen[name] = any([reaches_broadcast(s, seen) for s in h._succ[name]])
        return seen[name]

    seen: dict[str, bool] = {}
    for s in list(h._succ[red.name]):
        reaches_broadcast(s, seen)
    region = {k for k, v in seen.items() if v}
    made: dict[tuple[str, str], str] = {}

    def on(name: str, device: str) -> str:
        """The value of ``red`` or of a region node, made on ``device``."""
        if name == red.name:
            return value.get(device, value[first])
        if (name, device) in made:
            return made[(name, device)]
        n = data[name]["node"]
        if n.kind == "broadcast":
            out = on(n.inputs[0], device)
        else:
            out = add(
                n.evolve(
                    name=f"{n.name}@{short(device)}",
                    inputs=tuple(on(i, device) if i == red.name or i in region else i for i in n.inputs),
                    device=device,
                    allowed=(device,),
                    after=tuple(a for a in n.after if a in data),
                )
            )
        made[(name, device)] = out
        return out

    readers = {r for k in (red.name, *region) for r in h._succ[k] if r not in region}
    for r in sorted(readers):
        n = data[r]["node"]
        inputs = tuple(on(i, n.device) if i == red.name or i in region else i for i in n.inputs)
        for old in set(n.inputs) - set(inputs):
            del succ(old)[r], pred(r)[old]
        for new in set(inputs) - set(n.inputs):
            succ(new)[r] = pred(r)[new] = {"bytes": data[new]["node"].out_bytes}
        changes: dict = {"inputs": inputs}
        if n.kind == "loop":  # its payload names its condition too
            changes["data"] = replace(n.data, until=inputs[0])
        data[r] = {"node": n.evolve(**changes)}
    for k in sorted(region, key=lambda k: -len(h._pred[k])):  # readers first: every one is a copy's now
        copies = tuple(v for (name, _), v in made.items() if name == k)
        drop(k, copies)
