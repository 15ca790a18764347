"""The schedule simulator: replay a placed graph and predict its run.

Each device runs one op at a time, the ready ones in the order they became ready (as
TensorFlow's executor does; upward rank breaks ties); a ``recv`` occupies the link between its two devices for
``latency + bytes / bandwidth`` and no device; ``send`` costs nothing. The prologue
(scope ``""``) runs once, then the loop body ``iterations`` times.

The lower bound of any schedule of the same graph on the same devices is
``max(critical path, total work / devices)`` with every op at its cheapest device and
transfers free; the predicted makespan is never below it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import networkx as nx

from ..ir.node import Node, topo
from .model import CostModel


@dataclass
class Slot:
    node: str
    group: str
    kind: str
    resource: str  # a device, or "src->dst" for a transfer
    start: float
    end: float
    scope: str


@dataclass
class Schedule:
    makespan: float
    lower_bound: float
    prologue: float
    iteration: float
    iterations: int
    busy: dict[str, float]  # device -> seconds of work, whole run
    flops: dict[str, float]
    memory: dict[str, int]  # device -> bytes of variables it holds
    links: dict[tuple[str, str], int]  # (src, dst) -> bytes, whole run
    bytes_moved: int
    timeline: list[Slot] = field(default_factory=list)  # the prologue and one iteration


def _scope_nodes(order: list[Node], scope: str) -> list[Node]:
    return [n for n in order if n.scope == scope and n.kind not in ("const", "task")]


def _simulate_scope(g: nx.DiGraph, cm: CostModel, order: list[Node], scope: str, offset: float,
                    timeline: list[Slot] | None) -> float:
    ns = _scope_nodes(order, scope)
    if not ns:
        return 0.0
    succ = g._succ  # adjacency dicts: the views are too slow for graphs of a million nodes
    inside = {n.name: n for n in ns}
    cost: dict[str, float] = {}
    resource: dict[str, str] = {}
    for n in ns:
        if n.kind == "recv":
            src = n.attr("from")
            cost[n.name] = cm.transfer(n.out_bytes, src, n.device)
            resource[n.name] = f"{src}->{n.device}"
        else:
            cost[n.name] = 0.0 if n.kind in ("send", "loop") else cm.compute(n, n.device)
            resource[n.name] = n.device
    rank: dict[str, float] = {}
    for n in reversed(ns):
        rank[n.name] = cost[n.name] + max((rank[s] for s in succ[n.name] if s in rank), default=0.0)
    waiting = dict.fromkeys(inside, 0)
    for name in inside:
        for s in succ[name]:
            if s in waiting:
                waiting[s] += 1
    ready_at = dict.fromkeys(inside, 0.0)
    index = {k: i for i, k in enumerate(inside)}  # ties follow program order, never names
    heap = [(0.0, -rank[k], index[k], k) for k, w in waiting.items() if w == 0]
    heapq.heapify(heap)
    free: dict[str, float] = {}
    end_all = 0.0
    idle = ("send", "loop")
    while heap:
        name = heapq.heappop(heap)[3]
        n = inside[name]
        res = resource[name]
        start = max(ready_at[name], free.get(res, 0.0))
        end = start + cost[name]
        if n.kind not in idle:
            free[res] = end
            if timeline is not None:
                timeline.append(Slot(name, n.group, n.kind, res, offset + start, offset + end, scope))
        if end > end_all:
            end_all = end
        for s in succ[name]:
            if s in waiting:
                if end > ready_at[s]:
                    ready_at[s] = end
                waiting[s] -= 1
                if waiting[s] == 0:
                    heapq.heappush(heap, (ready_at[s], -rank[s], index[s], s))
    return end_all


def _lower_bound(g: nx.DiGraph, cm: CostModel, order: list[Node], scope: str) -> float:
    ns = _scope_nodes(order, scope)
    if not ns:
        return 0.0
    free = ("send", "recv", "loop")  # transfers count as free: the bound holds for any placement
    best = {n.name: 0.0 if n.kind in free else min(cm.compute(n, d) for d in (n.allowed or cm.devices)) for n in ns}
    longest: dict[str, float] = {}
    pred = g._pred
    for n in ns:  # topological order
        longest[n.name] = best[n.name] + max((longest[p] for p in pred[n.name] if p in longest), default=0.0)
    return max(max(longest.values()), sum(best.values()) / len(cm.devices))


#: Past this many nodes the simulator keeps no timeline unless asked (it is for pictures).
TIMELINE_LIMIT = 20_000


def simulate(g: nx.DiGraph, cm: CostModel, iterations: int | None = None, timeline: bool | None = None) -> Schedule:
    loop = g.nodes["loop"]["node"] if "loop" in g else None
    iters = (loop.attr("max") if iterations is None else iterations) if loop else 0
    keep = g.number_of_nodes() <= TIMELINE_LIMIT if timeline is None else timeline
    slots: list[Slot] | None = [] if keep else None
    order = topo(g)
    prologue = _simulate_scope(g, cm, order, "", 0.0, slots)
    iteration = _simulate_scope(g, cm, order, "loop", prologue, slots) if loop else 0.0
    busy = {d: 0.0 for d in cm.devices}
    flops = {d: 0.0 for d in cm.devices}
    memory = {d: 0 for d in cm.devices}
    links: dict[tuple[str, str], int] = {}
    for n in order:
        times = iters if n.scope == "loop" else 1
        if n.kind == "variable" and n.device:
            memory[n.device] += n.out_bytes
        if n.kind == "recv":
            key = (n.attr("from"), n.device)
            links[key] = links.get(key, 0) + n.out_bytes * times
        elif n.device and n.kind not in ("const", "send", "loop", "task"):
            busy[n.device] += cm.compute(n, n.device) * times
            flops[n.device] += n.flops * times
    lb = _lower_bound(g, cm, order, "") + iters * _lower_bound(g, cm, order, "loop")
    return Schedule(prologue + iters * iteration, lb, prologue, iteration, iters, busy, flops, memory, links,
                    sum(links.values()), slots or [])
