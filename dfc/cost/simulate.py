"""The schedule simulator: replay a placed graph and predict its run.

Each device runs one op at a time, the ready ones in the order they became ready (as
TensorFlow's executor does; upward rank breaks ties); a ``send`` occupies its device for the
transfer's CPU at that end (``bytes * cpu`` of the link), a ``recv`` the link between its two
devices for ``latency + bytes / bandwidth`` and then its device for the CPU at the
receiving end (``unpack``, a step of its own in the schedule). The prologue
(scope ``""``) runs once, then the loop body ``iterations`` times.

The lower bound of any schedule of the same graph on the same devices is
``max(critical path, work bound)`` with every op at its cheapest allowed device and
transfers free; the work bound divides the work constrained to a set of devices (``on:``,
a queue's job) by that set's size, the largest over the sets. The predicted makespan is
never below it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable

import networkx as nx

from ..ir.node import Node, each_node, gc_paused, node_table, pred_of, succ_of, topo
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
    init: float = 0.0  # the init phase before it: every device initialises its variables


def _scope_nodes(order: list[Node], scope: str) -> list[Node]:
    return [n for n in order if n.scope == scope and n.kind not in ("const", "task")]


def _list_schedule(
    names: list, cost: dict, resource: dict, succ: dict, idle: set, index: dict, record: Callable | None = None
) -> float:
    """The simulator's core: ``names`` (a topological order) run on their ``resource``, one
    at a time, ready ones in the order they became ready, upward rank breaking ties and then
    ``index`` (the order the graph was built in); names in ``idle`` take no resource.
    Successors outside ``names`` are ignored. Returns the time the last one ends.

    Works on positions in ``names`` (lists, not dicts keyed by name: this loop runs once
    per node of graphs of a million)."""
    at = {k: i for i, k in enumerate(names)}
    kids = [[at[s] for s in succ[k] if s in at] for k in names]
    costs = [cost[k] for k in names]
    rank = costs[:]
    for i in range(len(names) - 1, -1, -1):
        tail = 0.0
        for j in kids[i]:
            if rank[j] > tail:
                tail = rank[j]
        rank[i] += tail
    waiting = [0] * len(names)
    for ks in kids:
        for j in ks:
            waiting[j] += 1
    busy = [k not in idle for k in names]
    where = [resource[k] for k in names]
    ready_at = [0.0] * len(names)
    heap = [(0.0, -rank[i], index[names[i]], i) for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush
    free: dict[str, float] = {}
    end_all = 0.0
    while heap:
        i = pop(heap)[3]
        res = where[i]
        start = free.get(res, 0.0)
        if ready_at[i] > start:
            start = ready_at[i]
        end = start + costs[i]
        if busy[i]:
            free[res] = end
            if record is not None:
                record(names[i], res, start, end)
        if end > end_all:
            end_all = end
        for j in kids[i]:
            if end > ready_at[j]:
                ready_at[j] = end
            waiting[j] -= 1
            if not waiting[j]:
                push(heap, (ready_at[j], -rank[j], index[names[j]], j))
    return end_all


def _simulate_scope(
    inside: dict[str, Node],
    succ: dict,
    cost: dict[str, float],
    resource: dict[str, str],
    idle: set[str],
    scope: str,
    offset: float,
    timeline: list[Slot] | None,
    index: dict,
    unpack: dict[str, tuple[float, str]],
) -> float:
    if not inside:
        return 0.0

    def record(name, res: str, start: float, end: float) -> None:
        assert timeline is not None
        if isinstance(name, tuple):  # a recv's unpack: its CPU on the receiving device
            n = inside[name[1]]
            timeline.append(Slot(n.name, n.group, "unpack", res, offset + start, offset + end, scope))
            return
        n = inside[name]
        timeline.append(Slot(name, n.group, n.kind, res, offset + start, offset + end, scope))

    names: list = []
    for k in inside:
        names.append(k)
        if k in unpack:
            names.append(("unpack", k))
    return _list_schedule(names, cost, resource, succ, idle, index, record if timeline is not None else None)


def _with_unpacks(succ: dict, unpack: dict, cost: dict, resource: dict, index: dict) -> dict:
    """``succ`` with each recv of ``unpack`` followed by its unpack step (the receiving
    end's CPU, on its device) before the recv's consumers; ``cost``, ``resource`` and
    ``index`` (just after the recv's) get the steps' entries."""
    if not unpack:
        return succ
    succ = dict(succ)
    for k, (cpu, device) in unpack.items():
        step = ("unpack", k)
        succ[step], succ[k] = succ[k], {step: None}
        cost[step], resource[step], index[step] = cpu, device, index[k] + 0.5
    return succ


class Predictor:
    """The simulator's makespan for many placements of one unplaced graph, without building
    the placed graph each time (what the placement search calls). A cross-device input
    becomes what ``comm`` would make of it, one send and one transfer per (tensor,
    destination device, scope), and the unpack step after it where the link's transfers
    cost CPU, made in the same order, so the prediction equals
    ``simulate(comm(placed graph))`` exactly."""

    def __init__(self, g: nx.DiGraph, cm: CostModel):
        self.cm = cm
        order = topo(g)
        loop = g.nodes["loop"]["node"] if "loop" in g else None
        self.iterations = loop.data.max if loop else 0
        self.nodes = {n.name: n for n in order}
        self.scopes = {scope: [n.name for n in _scope_nodes(order, scope)] for scope in ("", "loop")}
        self.made_order = [
            n
            for n in each_node(g)  # in the order comm walks them
            if n.kind not in ("const", "task")
        ]
        self.index = {k: i for i, k in enumerate(node_table(g))}

    def __call__(self, where: dict[str, str]) -> float:
        cm, nodes = self.cm, self.nodes
        succ: dict = {}
        cost: dict = {}
        resource: dict = {}
        idle: set = set()
        index: dict = dict(self.index)  # names, then the (send, ...) and transfer keys
        sent: dict[str, list[tuple]] = {}  # source -> its sends and transfers, in order
        made: set[tuple] = set()
        arrived: dict[tuple, list] = {}  # transfer -> the consumers that wait for it
        for n in self.made_order:
            d = where.get(n.name, "")
            succ.setdefault(n.name, [])
            cost[n.name] = cm.compute(n, d) if d else 0.0
            resource[n.name] = d
            if n.kind == "loop":
                idle.add(n.name)
            for src in n.after:
                succ.setdefault(src, []).append(n.name)
            for src in n.inputs:
                s = nodes[src]
                ds = where.get(src, "")
                if s.kind == "const" or not ds or not d or ds == d:
                    succ.setdefault(src, []).append(n.name)
                    continue
                key = (src, d, n.scope if s.kind == "variable" else s.scope)
                if key not in made:  # a send (its end's CPU on its device), the transfer, its unpack
                    made.add(key)
                    send, cpu = ("send", *key), cm.transfer_cpu(s.out_bytes, ds, d)
                    index[send], index[key] = len(index), len(index) + 1
                    succ.setdefault(src, []).append(send)
                    succ[send] = [key]
                    cost[send], cost[key] = cpu, cm.transfer(s.out_bytes, ds, d)
                    resource[send], resource[key] = ds, (ds, d)
                    if not cpu:
                        idle.add(send)
                        sent.setdefault(src, []).extend((send, key))
                        succ[key] = arrived[key] = []
                    else:
                        step = ("unpack", key)
                        index[step] = index[key] + 0.5
                        sent.setdefault(src, []).extend((send, key, step))
                        succ[key], succ[step] = [step], []
                        cost[step], resource[step], arrived[key] = cpu, d, succ[step]
                arrived[key].append(n.name)

        def scope_of(t: tuple) -> str:
            return t[1][-1] if t[0] == "unpack" else t[-1]

        def scope_order(scope: str) -> list:  # topological: each transfer right after its source
            out: list = [t for src, ts in sent.items() if nodes[src].scope != scope for t in ts if scope_of(t) == scope]
            for name in self.scopes[scope]:
                out.append(name)
                out.extend(t for t in sent.get(name, ()) if scope_of(t) == scope)
            return out

        prologue = _list_schedule(scope_order(""), cost, resource, succ, idle, index)
        iteration = _list_schedule(scope_order("loop"), cost, resource, succ, idle, index) if self.iterations else 0.0
        return prologue + self.iterations * iteration


def _work_bound(work: dict[frozenset, float]) -> float:
    """The least time the work can take on the devices it may run on: for every set S of
    devices some work is constrained to, the work that may run only within S, divided by
    |S| (products that may run on the two workers alone take at least half their work,
    however many reducers idle); the largest such figure."""
    best = 0.0
    for s in work:
        inside = sum(w for a, w in work.items() if a <= s)
        best = max(best, inside / len(s))
    return best


#: Past this many nodes the simulator keeps no timeline unless asked (it is for pictures).
TIMELINE_LIMIT = 20_000


@gc_paused()
def simulate(
    g: nx.DiGraph, cm: CostModel, iterations: int | None = None, timeline: bool | None = None, bound: bool = True
) -> Schedule:
    """``bound=False`` skips the lower bound (reported as 0): for the placement search."""
    loop = g.nodes["loop"]["node"] if "loop" in g else None
    iters = (loop.data.max if iterations is None else iterations) if loop else 0
    keep = g.number_of_nodes() <= TIMELINE_LIMIT if timeline is None else timeline
    slots: list[Slot] | None = [] if keep else None
    order = topo(g)
    index = {k: i for i, k in enumerate(node_table(g))}  # ties: build order (program order), never names
    # one walk over the nodes for everything but the schedule itself: each node's time and
    # resource (a ``recv`` occupies the link ``src->dst`` and its unpack step the receiving
    # device, a ``send`` its device for the sending end's CPU, ``loop`` no time),
    # the totals of the report, and the lower bound's longest path (every op on its
    # cheapest device, transfers free: it holds for any placement)
    inside: dict[str, dict[str, Node]] = {"": {}, "loop": {}}
    cost: dict[str, float] = {}
    resource: dict[str, str] = {}
    idle: set[str] = set()
    busy = {d: 0.0 for d in cm.devices}
    flops = {d: 0.0 for d in cm.devices}
    memory = {d: 0 for d in cm.devices}
    links: dict[tuple[str, str], int] = {}
    init = {d: 0.0 for d in cm.devices}
    longest: dict[str, dict[str, float]] = {"": {}, "loop": {}}  # paths within each scope
    total: dict[str, dict[frozenset, float]] = {"": {}, "loop": {}}  # work, by the devices it may run on
    unpack: dict[str, tuple[float, str]] = {}  # recv -> (the CPU spent receiving, its device)
    pred = pred_of(g)
    table = node_table(g)
    everywhere = frozenset(cm.devices)
    for n in order:
        kind, name = n.kind, n.name
        if kind in ("const", "task"):
            continue
        inside[n.scope][name] = n
        times = iters if n.scope == "loop" else 1
        best = 0.0
        if kind == "recv":
            src = n.data.from_
            cost[name] = cm.transfer(n.out_bytes, src, n.device)
            resource[name] = f"{src}->{n.device}"
            key = (src, n.device)
            links[key] = links.get(key, 0) + n.out_bytes * times
            cpu = cm.transfer_cpu(n.out_bytes, src, n.device)
            if cpu:
                unpack[name] = (cpu, n.device)
                busy[n.device] += cpu * times
        elif kind in ("send", "loop"):
            cpu = cm.transfer_cpu(n.out_bytes, n.device, n.data.to) if kind == "send" else 0.0
            cost[name], resource[name] = cpu, n.device
            if cpu:  # the sending end's CPU
                busy[n.device] += cpu * times
            else:
                idle.add(name)
        else:
            cost[name] = cm.compute(n, n.device)
            resource[name] = n.device
            if bound:
                best = cm.cheapest(n, n.allowed)
            if kind == "variable":
                if n.device:
                    memory[n.device] += n.out_bytes
                    init[n.device] += cm.init(n, n.device)
            elif n.device:
                busy[n.device] += cost[name] * times
                flops[n.device] += n.flops * times
        if bound:  # (an assign runs where its variable lives: it is confined as the variable is)
            confined = n.allowed or (table[n.data.target]["node"].allowed if kind == "assign" else ())
            where = frozenset(confined) if confined else everywhere
            total[n.scope][where] = total[n.scope].get(where, 0.0) + best
            within = longest[n.scope]
            before = 0.0
            for p in pred[name]:
                t = within.get(p, 0.0)
                if t > before:
                    before = t
            within[name] = best + before
    succ = _with_unpacks(succ_of(g), unpack, cost, resource, index)
    prologue = _simulate_scope(inside[""], succ, cost, resource, idle, "", 0.0, slots, index, unpack)
    iteration = (
        _simulate_scope(inside["loop"], succ, cost, resource, idle, "loop", prologue, slots, index, unpack)
        if loop
        else 0.0
    )
    lb = 0.0
    if bound:
        for scope, times in (("", 1), ("loop", iters)):
            path = max(longest[scope].values(), default=0.0)
            lb += times * max(path, _work_bound(total[scope]))
    return Schedule(
        prologue + iters * iteration,
        lb,
        prologue,
        iteration,
        iters,
        busy,
        flops,
        memory,
        links,
        sum(links.values()),
        slots or [],
        max(init.values(), default=0.0),
    )
