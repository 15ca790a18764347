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

from ..ir.devices import task_of
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
    # of the makespan, what is not the ops' schedule: each session.run's round trip, each
    # graph's first run (TF partitions it), the loop's passing of control between tasks
    overhead: float = 0.0


def overheads(cm: CostModel, prologue: tuple[int, float], loop: tuple[int, float], tasks: int, iters: int) -> tuple:
    """(seconds an iteration costs besides its schedule, seconds of the whole run's
    overheads) for a prologue and a loop body of (IR nodes, scheduled seconds), the loop's
    body on ``tasks`` tasks, run ``iters`` times: the loop's control passed between its
    tasks every iteration, a round trip per ``session.run`` (one for the first pass, the
    loop in chunks as the engine runs it) and each graph's first run, by its nodes."""
    p = cm.profile
    per_iteration = cm.loop_overhead(tasks) if iters else 0.0
    calls = cm.calls(prologue[0] > 0, iters, loop[1] + per_iteration)
    first = (p.first_run + p.first_run_node * prologue[0] if prologue[0] else 0.0) + (
        p.first_run_loop + p.first_run_loop_node * loop[0] if iters else 0.0
    )
    return per_iteration, calls * p.run_overhead + first + iters * per_iteration


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
    arrival: dict[str, list[tuple]],
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
        names.extend(arrival.get(k, ()))
    return _list_schedule(names, cost, resource, succ, idle, index, record if timeline is not None else None)


def _arrival_steps(key, latency: float, cpu: float, device: str, cost: dict, resource: dict, index: dict, idle: set):
    """The steps after a transfer ``key`` leaves its link: its flight (``latency``, on no
    resource) and the receiving end's CPU (``cpu``, on ``device``), each present when not
    zero; their entries go into ``cost``, ``resource``, ``index`` (just after the
    transfer's) and ``idle``. Returns them in order."""
    steps = []
    if latency:
        step = ("wait", key)
        cost[step], resource[step], index[step] = latency, device, index[key] + 0.25
        idle.add(step)
        steps.append(step)
    if cpu:
        step = ("unpack", key)
        cost[step], resource[step], index[step] = cpu, device, index[key] + 0.5
        steps.append(step)
    return steps


def _chained(succ: dict, arrival: dict[str, list[tuple]]) -> dict:
    """``succ`` with each transfer of ``arrival`` followed by its steps, in order, before
    the transfer's consumers."""
    if not arrival:
        return succ
    succ = dict(succ)
    for k, steps in arrival.items():
        consumers = succ[k]
        prev: str | tuple = k
        for step in steps:
            succ[prev] = {step: None}
            prev = step
        succ[prev] = consumers
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
        nodes = self.nodes
        cm = self.cm.sharing(_work(self.made_order, self.cm, self.iterations, lambda n: where.get(n.name, "")))
        succ: dict = {}
        cost: dict = {}
        resource: dict = {}
        idle: set = set()
        index: dict = dict(self.index)  # names, then the (send, ...) and transfer keys
        sent: dict[str, list[tuple]] = {}  # source -> its sends and transfers, in order
        made: set[tuple] = set()
        arrival: dict = {}  # transfer -> its flight and unpack steps
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
                if key not in made:  # a send (its end's CPU on its device), the transfer, its arrival
                    made.add(key)
                    send, cpu = ("send", *key), cm.transfer_cpu(s.out_bytes, ds, d)
                    index[send], index[key] = len(index), len(index) + 1
                    succ.setdefault(src, []).append(send)
                    succ[send] = [key]
                    busy, latency = cm.wire(s.out_bytes, ds, d)
                    cost[send], cost[key] = cpu, busy
                    resource[send], resource[key] = ds, (ds, d)
                    if not cpu:
                        idle.add(send)
                    steps = _arrival_steps(key, latency, cpu, d, cost, resource, index, idle)
                    sent.setdefault(src, []).extend((send, key, *steps))
                    succ[key] = []
                    if steps:
                        arrival[key] = steps
                succ[key].append(n.name)

        def scope_of(t: tuple) -> str:
            return t[1][-1] if t[0] in ("unpack", "wait") else t[-1]

        def scope_order(scope: str) -> list:  # topological: each transfer right after its source
            out: list = [t for src, ts in sent.items() if nodes[src].scope != scope for t in ts if scope_of(t) == scope]
            for name in self.scopes[scope]:
                out.append(name)
                out.extend(t for t in sent.get(name, ()) if scope_of(t) == scope)
            return out

        succ = _chained(succ, arrival)  # each transfer's consumers wait for its arrival
        order = {scope: scope_order(scope) for scope in ("", "loop")}
        prologue = _list_schedule(order[""], cost, resource, succ, idle, index)
        iteration = _list_schedule(order["loop"], cost, resource, succ, idle, index) if self.iterations else 0.0
        # the IR nodes a first run builds: the scope's own, a recv per transfer
        counts = {
            scope: sum(1 for t in names if not isinstance(t, tuple) and nodes[t].kind not in UNBUILT)
            + sum(1 for t in names if isinstance(t, tuple) and t[0] == "send")
            for scope, names in order.items()
        }
        tasks = len({task_of(where[k]) for k in self.scopes["loop"] if where.get(k)})
        _, extra = overheads(cm, (counts[""], prologue), (counts["loop"], iteration), tasks, self.iterations)
        return prologue + self.iterations * iteration + extra


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


#: Kinds whose time is not a device's computing (sharing the host's cores).
NOT_WORK = frozenset({"const", "task", "variable", "loop", "send", "recv"})
#: Kinds a graph's first run does not build: variables (the init phase did), sends (a
#: recv's lowering is the transfer; TF adds its own send and receive to it).
UNBUILT = frozenset({"const", "variable", "send"})


def _work(nodes, cm: CostModel, iters: int, device_of: Callable) -> dict[str, float]:
    """Seconds of work each device is given (its ops, the loop's ``iters`` times), under ``cm``."""
    work: dict[str, float] = {}
    for n in nodes:
        d = device_of(n)
        if d and n.kind not in NOT_WORK:
            work[d] = work.get(d, 0.0) + cm.compute(n, d) * (iters if n.scope == "loop" else 1)
    return work


def _fewest_tasks(nodes, table) -> int:
    """A lower bound on the tasks a loop body spans under any placement: its nodes' sets of
    allowed tasks (an assign's: its variable's), as many as are pairwise disjoint (each
    needs a task of its own). Any such packing bounds the fewest tasks that meet every
    set; sets taken smallest first."""
    sets = set()
    for n in nodes:
        allowed = n.allowed or (table[n.data.target]["node"].allowed if n.kind == "assign" else ())
        if allowed:
            sets.add(frozenset(task_of(d) for d in allowed))
    taken: list[frozenset] = []
    for s in sorted(sets, key=lambda s: (len(s), sorted(s))):
        if all(not (s & t) for t in taken):
            taken.append(s)
    return max(len(taken), 1)


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
    arrival: dict[str, list[tuple]] = {}  # recv -> its flight and unpack steps
    cm = cm.sharing(_work(order, cm, iters, lambda n: n.device))  # the host's cores go to the tasks that compute
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
            cost[name], latency = cm.wire(n.out_bytes, src, n.device)
            resource[name] = f"{src}->{n.device}"
            key = (src, n.device)
            links[key] = links.get(key, 0) + n.out_bytes * times
            cpu = cm.transfer_cpu(n.out_bytes, src, n.device)
            busy[n.device] += cpu * times
            steps = _arrival_steps(name, latency, cpu, n.device, cost, resource, index, idle)
            if steps:
                arrival[name] = steps
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
    succ = _chained(succ_of(g), arrival)
    prologue = _simulate_scope(inside[""], succ, cost, resource, idle, "", 0.0, slots, index, arrival)
    iteration = (
        _simulate_scope(inside["loop"], succ, cost, resource, idle, "loop", prologue, slots, index, arrival)
        if loop
        else 0.0
    )
    tasks = len({task_of(n.device) for n in inside["loop"].values() if n.device})
    counts = {scope: sum(1 for n in inside[scope].values() if n.kind not in UNBUILT) for scope in inside}
    _, extra = overheads(cm, (counts[""], prologue), (counts["loop"], iteration), tasks, iters)
    lb = 0.0
    if bound:
        for scope, times in (("", 1), ("loop", iters)):
            path = max(longest[scope].values(), default=0.0)
            lb += times * max(path, _work_bound(total[scope]))
        # what any placement pays: the runs' round trips, the first runs of the nodes
        # that are not transfers, the loop's control among the fewest tasks it can span
        bare = {
            scope: sum(1 for n in inside[scope].values() if n.kind not in ("variable", "send", "recv"))
            for scope in inside
        }
        least = _fewest_tasks(inside["loop"].values(), table)
        lb += overheads(cm, (bare[""], prologue), (bare["loop"], iteration), least, iters)[1]
    return Schedule(
        prologue + iters * iteration + extra,
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
        extra,
    )
