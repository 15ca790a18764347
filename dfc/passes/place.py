"""place: map every node to a device.

Strategies (``placement.strategy`` or ``dfc plan --strategy``):

``heft`` (default)
    Heterogeneous Earliest Finish Time: rank nodes by upward rank (mean cost plus the
    costliest path to the exit, transfers included), then put each, in rank order, on the
    allowed device where it would finish first, counting the transfers of its inputs.
``round-robin``
    What ``replica_device_setter`` does: variables cycle over the ``ps`` tasks (over all
    devices when there is no ``ps`` job), every other node cycles over its allowed devices.
``greedy-bytes``
    What ``GreedyLoadBalancingStrategy`` does: each node goes to the allowed device
    holding the fewest bytes so far.
``manual``
    Only the spec's pins: each node on the first device it is allowed; unpinned nodes on
    the cluster's first device.

Whatever the strategy: constraints (``on:``, ``placement.constraints``, queue shards) are
honoured; an ``assign`` runs where its variable lives; a loop step that reads a
``resident`` tile runs where the tile lives; constants are made on every device that uses
them (device ``""``).
"""

from __future__ import annotations

import functools
from typing import Callable

import networkx as nx

from ..cost.model import CostModel
from ..ir.devices import job_of
from ..ir.node import Node, each_node, node_table, pred_of, succ_of, topo, with_nodes
from ..ops import REGISTRY
from .context import PassContext

Assignment = dict[str, str]


def _candidates(g: nx.DiGraph, n: Node, devs: tuple[str, ...], where: Assignment) -> tuple[str, ...]:
    if n.kind == "assign":
        return (where[n.data.target],)
    if n.kind == "loop":
        return (where[n.inputs[0]],) if n.inputs and n.inputs[0] in where else devs[:1]
    if n.kind == "compute" and n.op in REGISTRY and REGISTRY[n.op].owner_computes and n.inputs[0] in where:
        return (where[n.inputs[0]],)  # a halo's slice, made where its tile is: only the slice travels
    if n.scope == "loop" and n.kind == "compute":
        pinned = {where[i] for i in n.inputs if i in where and _resident(g.nodes[i]["node"])}
        if pinned:
            return tuple(sorted(pinned))
    return n.allowed or devs


def clusters(
    g: nx.DiGraph, cm: CostModel, order: list[Node], index: dict[str, int], mean: dict[str, float]
) -> tuple[dict[str, str], dict[str, frozenset | None]]:
    """Edge zeroing: join the two ends of an edge whose transfer would cost more than both
    ends compute (chains of small ops), as long as their constraints agree. Returns
    node -> cluster representative for the nodes that joined one (a node alone is its own
    cluster: left out), and each cluster's allowed devices. Heavy ops never join: their
    parallelism is kept. Ends whose own constraints are disjoint never join (a cluster's
    devices are a subset of each member's); two ends pinned to the same single device are
    not joined either: they share it anyway, and whatever joins one is held to it all the same.
    ``order``: the nodes in topological order; ``mean``: each node's mean compute cost."""
    parent: dict[str, str] = {}
    allowed: dict[str, frozenset | None] = {}
    nodes_ = node_table(g)

    def find(x: str) -> str:
        if x not in parent:  # a node alone so far
            parent[x] = x
            n = nodes_[x]["node"]
            allowed[x] = frozenset(n.allowed) if n.allowed else None
            return x
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    as_set: Callable[[tuple[str, ...]], frozenset] = functools.lru_cache(maxsize=None)(frozenset)  # one per `allowed`
    cost = {n.name: mean[n.name] for n in order if n.kind not in ("const", "variable", "assign", "loop")}
    succ = succ_of(g)  # edges in (index[u], index[v]) order (``cost`` is in topological, i.e.
    # index, order), without networkx's edge views
    edges = (
        (u, v, succ[u][v])
        for u in cost
        for v in (succ[u] if len(succ[u]) < 2 else sorted(succ[u], key=index.__getitem__))
    )
    for u, v, data in edges:
        if v not in cost or not data["bytes"]:
            continue
        if cm.mean_transfer(data["bytes"]) <= cost[u] + cost[v]:
            continue
        au, av = nodes_[u]["node"].allowed, nodes_[v]["node"].allowed
        if au and av and (len(au) == 1 and au == av or as_set(au).isdisjoint(av)):
            continue  # both on one device anyway, or never on the same one (a cluster's ⊆ its nodes')
        ru, rv = find(u), find(v)
        if ru == rv:
            continue
        au, av = allowed[ru], allowed[rv]
        both = au if av is None else av if au is None else au & av
        if both is not None and not both:
            continue
        root, child = sorted((ru, rv), key=index.__getitem__)
        parent[child] = root
        allowed[root] = both
    roots = {n: find(n) for n in parent}
    return roots, {r: allowed[r] for r in set(roots.values())}


def heft_variant(
    g: nx.DiGraph, cm: CostModel, devs: tuple[str, ...], use_clusters: bool = True, data: str = "slack"
) -> Assignment:
    """HEFT, contention-aware, scope by scope; ``use_clusters`` and ``data`` (one of
    :data:`DATA_VARIANTS`) select the variant.

    The loop body and then the prologue are scheduled as separate DAGs (the body repeats,
    each iteration starting on idle devices, so it is placed first and decides where
    loop-carried variables live); a transfer occupies its link, as in the
    simulator. Chains of small ops are clustered first (edge zeroing, :func:`clusters`).
    Data follows compute (unless ``data="cyclic"`` dealt it first): a variable free to move
    is placed with the first node that uses it, initialised there or (``data="slack"``,
    before the loop) on the device that can make and ship it soonest; a variable read in
    the loop lives with its reader (it would cross every iteration otherwise)."""
    h = _Heft(g, cm, devs, data == "slack")
    h.rank_upward()
    if use_clusters:
        h.cluster, h.cluster_allowed = clusters(g, cm, h.order, h.index, h.mean)
    h.pin_data()
    if data == "cyclic":
        h.deal_cyclic()
    h.project_work()
    for scope in ("loop", ""):  # the body repeats: it decides where loop state lives
        h.schedule(scope)
    h.place_unused()
    return h.where


class _Heft:
    """HEFT's state while it places one graph: the nodes in topological order, their mean
    costs and upward ranks, the small-op clusters, where each node is (``where``), the
    variables still free to move (``lazy``), the work each device is expected to do over the
    run (``projected``); and, for the scope being scheduled, when each node finishes, when
    each device and link is next free."""

    def __init__(self, g: nx.DiGraph, cm: CostModel, devs: tuple[str, ...], slack: bool):
        self.g, self.cm, self.devs, self.slack = g, cm, devs, slack
        self.order = topo(g)
        self.index = {n.name: i for i, n in enumerate(self.order)}  # ties follow program order, never names
        self.node = {n.name: n for n in self.order}
        self.mean = {n.name: cm.mean_compute(n, n.allowed) for n in self.order if n.kind != "const"}
        self.rank: dict[str, float] = {}
        self.cluster: dict[str, str] = {}
        self.cluster_allowed: dict[str, frozenset | None] = {}
        self.cluster_device: dict[str, str] = {}
        self.where: Assignment = {}
        # placed with their first user: unpinned data, and computes without inputs (a boundary
        # tile's fill, eye, rand), cheaper to make where they are read than to ship
        self.lazy = {
            n.name
            for n in self.order
            if (n.kind == "variable" or (n.kind == "compute" and not n.inputs)) and len(n.allowed) != 1
        }
        self.projected = {d: 0.0 for d in devs}
        self.wires = {(a, b): cm.link(a, b) for a in devs for b in devs if a != b}
        self.scope = ""
        self.finish: dict[str, float] = {}
        self.avail: dict[str, float] = {}
        self.link: dict[tuple[str, str], float] = {}

    # ---------------------------------------------------------------- before scheduling
    def rank_upward(self) -> None:
        """Each node's mean cost plus the costliest path to the exit, transfers included."""
        succ, cm = succ_of(self.g), self.cm
        for n in reversed(self.order):
            if n.kind == "const":
                continue
            tail = 0.0
            for s, e in succ[n.name].items():
                t = cm.mean_transfer(e["bytes"]) + self.rank[s]
                if t > tail:
                    tail = t
            self.rank[n.name] = max(self.mean[n.name], 1e-12) + tail

    def pin_data(self) -> None:
        """Variables pinned to one device are there."""
        for n in self.order:
            if n.kind == "variable" and n.name not in self.lazy:
                self.where[n.name] = n.allowed[0]

    def deal_cyclic(self) -> None:
        """Tiles dealt cyclically over the devices (those used only before the loop)."""
        turn: dict[tuple[str, ...], int] = {}
        succ, node = succ_of(self.g), self.node
        for n in self.order:
            if n.name in self.lazy and n.scope == "" and not any(node[s].scope == "loop" for s in succ[n.name]):
                pool = n.allowed or self.devs
                self.where[n.name] = pool[turn.get(pool, 0) % len(pool)]
                turn[pool] = turn.get(pool, 0) + 1
                self.lazy.discard(n.name)

    def project_work(self) -> None:
        """The work each device can expect over the run, each node's shared among its devices."""
        iterations = self.node["loop"].data.max if "loop" in self.node else 1
        for n in self.order:
            if n.kind not in ("const", "variable"):
                share = n.allowed or self.devs
                work = (iterations if n.scope == "loop" else 1) * self.mean[n.name] / len(share)
                for d in share:
                    self.projected[d] += work

    # ---------------------------------------------------------------- one scope
    def schedule(self, scope: str) -> None:
        """Place the nodes of ``scope`` by decreasing upward rank, each on the candidate
        device where it finishes first."""
        self.scope, self.finish, self.avail, self.link = scope, {}, {d: 0.0 for d in self.devs}, {}
        names = sorted((k for k in self.rank if self.node[k].scope == scope), key=self.index.__getitem__)
        names.sort(key=self.rank.__getitem__, reverse=True)  # stable: equal ranks stay in index order
        for name in names:
            n = self.node[name]
            if n.kind != "variable" and name not in self.lazy:  # those are placed with their first user, or pinned
                self.place(n)

    def candidates(self, n: Node) -> tuple[str, ...]:
        if n.kind == "assign" and n.data.target in self.lazy:
            return self.node[n.data.target].allowed or self.devs
        if self.cluster.get(n.name) in self.cluster_device:
            return (self.cluster_device[self.cluster[n.name]],)
        cands = _candidates(self.g, n, self.devs, self.where)
        shared = self.cluster_allowed.get(self.cluster.get(n.name, ""))
        if shared:
            cands = tuple(d for d in cands if d in shared) or cands
        return cands

    def place(self, n: Node) -> None:
        pred, where = pred_of(self.g)[n.name], self.where
        # (input, bytes, its device, when it is done there)
        preds = [(p, e["bytes"], where[p], self.finish.get(p, 0.0)) for p, e in pred.items() if p in where]
        lazy = [p for p in pred if p in self.lazy]
        fresh = [self.node[p] for p in (sorted(lazy, key=self.index.__getitem__) if len(lazy) > 1 else lazy)]
        eft, d = self.earliest_finish(n, preds, fresh)
        self.commit(n, d, eft, preds, fresh)

    def earliest_finish(self, n: Node, preds: list[tuple], fresh: list[Node]) -> tuple[float, str]:
        """(finish time, device) of ``n`` on its best candidate, its fresh inputs made for it."""
        best: tuple[float, str] | None = None
        cost_on = self.cm.costs(n)
        for d in self.candidates(n):
            links = dict(self.link)
            ready = self.ship(preds, d, links)
            unpack = self.unpack(preds, d)
            load = dict(self.avail)
            for v in fresh:
                e, at = self.make(v, d, load, links, n)
                if self.scope == "":
                    load[e] += self.cm.compute(v, e)
                    if e != d:
                        links[(e, d)] = at
                if e != d:  # made elsewhere: d receives it
                    unpack += self.cm.transfer_cpu(v.out_bytes, e, d)
                ready = max(ready, at)
            eft = max(load[d], ready) + unpack + cost_on[d]
            # ties (within a microsecond) go to the device with the most slack
            if (
                best is None
                or eft < best[0] - 1e-6
                or (eft <= best[0] + 1e-6 and self.projected[d] < self.projected[best[1]])
            ):
                best = (eft, d)
        assert best is not None, f"no device for {n.name}"
        return best

    def commit(self, n: Node, d: str, eft: float, preds: list[tuple], fresh: list[Node]) -> None:
        """Put ``n`` on ``d``, its fresh inputs where :meth:`make` says, and occupy the
        devices and links they use."""
        for v in fresh:
            e, at = self.make(v, d, self.avail, self.link, n)
            if self.scope == "" and e != d:
                self.link[(e, d)] = at
            self.where[v.name] = e
            if self.scope == "":
                self.avail[e] += self.cm.compute(v, e)
                self.projected[e] += self.cm.compute(v, e)
                self.finish[v.name] = self.avail[e]
            if e != d:  # and e sends it
                self.avail[e] += self.cm.transfer_cpu(v.out_bytes, e, d)
                self.projected[e] += self.cm.transfer_cpu(v.out_bytes, e, d)
            self.lazy.discard(v.name)
        if n.kind == "assign":
            d = self.where[n.data.target]
        self.ship(preds, d, self.link)  # the transfers now occupy their links
        for _, b, src, _ in preds:  # and their CPU at the sending end
            cpu = self.cm.transfer_cpu(b, src, d)
            if cpu:
                self.avail[src] += cpu
                self.projected[src] += cpu
        if n.name in self.cluster:
            self.cluster_device.setdefault(self.cluster[n.name], d)
        self.where[n.name], self.finish[n.name] = d, eft
        self.avail[d] = max(self.avail[d], eft)

    def ship(self, preds: list[tuple], d: str, links: dict) -> float:
        """When the inputs ``preds`` (name, bytes, device, done) are all on ``d``: each
        transfer starts once its sender has spent its end's CPU (bytes * cpu), waits for
        its link (``links``, updated), occupies it gap + bytes / bandwidth and arrives
        latency later (the cost model's transfer, with the links looked up once)."""
        ready = 0.0
        for _, b, src, t in preds:
            if src != d and b:
                busy = links.get((src, d), 0.0)
                wire = self.wires[(src, d)]
                t += wire.ends(b)
                t = (t if t > busy else busy) + wire.wire(b)
                links[(src, d)] = t
                t += wire.latency
            if t > ready:
                ready = t
        return ready

    def unpack(self, preds: list[tuple], d: str) -> float:
        """The CPU ``d`` spends receiving the inputs ``preds`` that are elsewhere."""
        return sum(self.cm.transfer_cpu(b, src, d) for _, b, src, _ in preds if src != d and b)

    def make(self, v: Node, d: str, load: dict[str, float], links: dict, user: Node) -> tuple[str, float]:
        """Where to initialise ``v`` for a use on ``d``: (device, when it is on d).
        In the loop, or when the user is the assign that writes ``v``: with its user.
        Before the loop: on another device (the one with most projected slack) when the
        transfer is hidden, i.e. the tile arrives, behind the link's other traffic,
        before ``d`` would be free anyway, and receiving it costs ``d`` no CPU; otherwise
        on ``d`` itself."""
        cm = self.cm
        if self.scope == "loop" or (user.kind == "assign" and user.data.target == v.name):
            return (d if not v.allowed or d in v.allowed else v.allowed[0]), load[d] if self.scope == "" else 0.0
        if not self.slack and (not v.allowed or d in v.allowed):
            return d, load[d] + cm.compute(v, d)
        local = not v.allowed or d in v.allowed
        remote = []
        for e in v.allowed or self.devs:
            if e != d:
                made = load[e] + cm.compute(v, e) + cm.transfer_cpu(v.out_bytes, e, d)
                at = max(made, links.get((e, d), 0.0)) + cm.transfer(v.out_bytes, e, d)
                remote.append((self.projected[e] + cm.compute(v, e), at, e))
        # arrives before d is free, and costs d no CPU to receive (else making it there is cheaper)
        hidden = [r for r in remote if r[1] <= load[d] + 1e-12 and not cm.transfer_cpu(v.out_bytes, r[2], d)]
        if hidden:
            _, at, e = min(hidden)
            return e, at
        if local:
            return d, load[d] + cm.compute(v, d)
        _, at, e = min(remote, key=lambda r: (r[1], r[2]))
        return e, at

    # ---------------------------------------------------------------- after
    def place_unused(self) -> None:
        """Variables nothing uses: wherever there is room."""
        load = {d: 0.0 for d in self.devs}
        for var in sorted(self.lazy):
            v = self.node[var]
            e = min(v.allowed or self.devs, key=lambda x: (load[x], x))
            self.where[var] = e
            load[e] += self.cm.compute(v, e)


#: Graphs up to this many nodes get HEFT's variants compared by the simulator and then a
#: local search; up to VARIANT_LIMIT, the data variants alone (each costs a simulation of
#: the whole graph); larger ones get the main variant alone (docs/compiler.md, "Compiler speed").
SEARCH_LIMIT = 600
VARIANT_LIMIT = 20_000
#: Where HEFT initialises data that no constraint pins: on the device with most slack when
#: the transfer hides behind other work ("slack", the main variant), with its first user
#: ("first-use"), or dealt cyclically over the devices like a block-cyclic distribution
#: ("cyclic"; a loop's state still lives with its reader).
DATA_VARIANTS = ("slack", "first-use", "cyclic")


def heft(g: nx.DiGraph, cm: CostModel, devs: tuple[str, ...]) -> Assignment:
    """HEFT: run its variants (small-op clustering on/off, each data variant) and keep the
    one the simulator predicts finishes first, then polish it by local search. On graphs
    the search covers, the candidates (every variant and the polished one) are finally
    compared on what the plan will be, after the later passes (the combiner changes the
    traffic a placement causes, and the collective pass the reductions it makes, which the
    search's predictor does not see). Every candidate is a HEFT schedule (compute placed by
    earliest finish time), but for two: owner-computes' placement (the data stays, the
    computation goes to it) competes in that final comparison, and where a queue's
    reductions may become all-reduces, greedy-bytes' too (:func:`_may_all_reduce`)."""
    from ..cost.simulate import Predictor

    size = g.number_of_nodes()
    if size > VARIANT_LIMIT:
        return heft_variant(g, cm, devs)
    predict = Predictor(g, cm)
    variants = [(c, d) for c in ((True, False) if size <= SEARCH_LIMIT else (True,)) for d in DATA_VARIANTS]
    candidates = [heft_variant(g, cm, devs, use_clusters, data) for use_clusters, data in variants]
    scored = [(predict(where), i) for i, where in enumerate(candidates)]
    makespan, i = min(scored)  # ties: the first variant
    if size > SEARCH_LIMIT:
        return candidates[i]
    candidates.append(refine(g, devs, candidates[i], makespan, predict, budget=min(128, 60_000 // max(size, 1))))
    candidates.append(owner_computes(g, cm, devs))
    if _may_all_reduce(g):
        candidates.append(greedy_bytes(g, cm, devs))
    return min(reversed(candidates), key=lambda where: _final_makespan(g, cm, devs, where))


def _may_all_reduce(g: nx.DiGraph) -> bool:
    """Whether a queue's reductions may become all-reduces (``reduce: {via: auto |
    collective}``). HEFT places for the queue form (the reducer's task is one more device
    to compute on, the partial sums go there anyway); without the queue, another placement
    can be faster: greedy-bytes' competes in the final
    comparison (CG: its plan, the dot products as local sums on the reducer's task, is
    predicted 3.363 s against HEFT's 3.404 s through the queue)."""
    from .collective import via_reductions

    queues = g.graph["facts"].queues.values()
    return any(q.reduce is not None and q.via != "queue" and via_reductions(g, q.name) for q in queues)


def _final_makespan(g: nx.DiGraph, cm: CostModel, devs: tuple[str, ...], where: Assignment) -> float:
    """The makespan the plan will report for this placement: after the passes that follow."""
    from .collective import collective_with, predict

    return predict(collective_with(_with_devices(g, where), cm), cm)


def refine(
    g: nx.DiGraph,
    devs: tuple[str, ...],
    where: Assignment,
    makespan: float,
    predict: Callable[[Assignment], float],
    budget: int = 48,
) -> Assignment:
    """Local search: move one variable (with the assigns that write it) to another allowed
    device; keep the move when the predicted makespan drops. Variables with the most
    cross-device traffic first; each first towards the devices it exchanges most bytes
    with, then (budget left) to any other; at most ``budget`` trials, so planning stays
    fast."""
    writers: dict[str, list[str]] = {}
    for k in g.nodes:
        n = g.nodes[k]["node"]
        if n.kind == "assign":
            writers.setdefault(n.data.target, []).append(k)

    def remote(v: Node) -> int:  # bytes this variable sends to or receives from other devices
        mine = {v.name, *writers.get(v.name, [])}
        total = 0
        for k in mine:
            for _, succ, data in g.out_edges(k, data=True):
                total += data["bytes"] if where.get(succ, where[k]) != where[k] else 0
            for pred, _, data in g.in_edges(k, data=True):
                total += data["bytes"] if where.get(pred, where[k]) != where[k] else 0
        return total

    position = {k: i for i, k in enumerate(g.nodes)}  # construction (program) order, not names
    variables = sorted(
        (g.nodes[k]["node"] for k in g.nodes if g.nodes[k]["node"].kind == "variable"),
        key=lambda n: (-remote(n), -n.out_bytes, position[n.name]),
    )

    def partners(v: Node) -> list[str]:  # devices it exchanges data with, most bytes first
        traffic: dict[str, int] = {}
        for k in (v.name, *writers.get(v.name, [])):
            for other, data in [*succ_of(g)[k].items(), *pred_of(g)[k].items()]:
                d = where.get(other)
                if d and d != where[v.name] and (not v.allowed or d in v.allowed):
                    traffic[d] = traffic.get(d, 0) + data["bytes"]
        return sorted(traffic, key=lambda d: (-traffic[d], devs.index(d)))

    tried: set[tuple[str, str]] = set()
    moves = (partners, lambda v: [d for d in v.allowed or devs if d != where[v.name]])
    for candidates in moves:  # first towards the data, then anywhere
        for v in variables:
            for d in candidates(v):
                if len(tried) >= budget or (v.name, d) in tried:
                    continue
                tried.add((v.name, d))
                trial = dict(where)
                for k in [v.name, *writers.get(v.name, [])]:
                    trial[k] = d
                t = predict(trial)
                if t < makespan - 1e-12:
                    where, makespan = trial, t
    return where


def _with_devices(g: nx.DiGraph, where: Assignment, graph_attrs: dict | None = None) -> nx.DiGraph:
    return with_nodes(g, [d["node"].evolve(device=where.get(k, "")) for k, d in node_table(g).items()], graph_attrs)


def round_robin(g: nx.DiGraph, cm: CostModel, devs: tuple[str, ...]) -> Assignment:
    ps = tuple(d for d in devs if job_of(d) == "ps") or devs
    turn: dict[tuple, int] = {}
    where: Assignment = {}
    for n in topo(g):
        if n.kind == "const":
            continue
        pool = _candidates(g, n, devs, where)
        if n.kind == "variable" and not n.allowed:
            pool = ps
        k = turn.get(pool, 0)
        where[n.name] = pool[k % len(pool)]
        turn[pool] = k + 1
    return where


def greedy_bytes(g: nx.DiGraph, cm: CostModel, devs: tuple[str, ...]) -> Assignment:
    load = {d: 0 for d in devs}
    where: Assignment = {}
    for n in topo(g):
        if n.kind == "const":
            continue
        pool = _candidates(g, n, devs, where)
        d = min(pool, key=lambda x: (load[x], devs.index(x)))
        where[n.name] = d
        load[d] += n.out_bytes
    return where


def owner_computes(g: nx.DiGraph, cm: CostModel, devs: tuple[str, ...]) -> Assignment:
    """Data stays where it lives and the computation goes to it: tiles no constraint pins
    are dealt over the devices in turn (block-cyclic, by construction order), and each op
    runs on the allowed device that holds the most bytes of its inputs (ties: the one
    with least work so far, by the cost model). An op with no inputs there (a ``rand``)
    goes to the least loaded device; a write runs where its variable lives."""
    where: Assignment = {}
    load = {d: 0.0 for d in devs}
    turn: dict[tuple, int] = {}
    for n in topo(g):
        if n.kind == "const":
            continue
        pool = _candidates(g, n, devs, where)
        if n.kind == "variable":
            k = turn.get(pool, 0)
            turn[pool] = k + 1
            where[n.name] = pool[k % len(pool)]
            continue
        held = {d: 0 for d in pool}
        for i in n.inputs:
            if where.get(i) in held:
                held[where[i]] += g.nodes[i]["node"].out_bytes
        d = min(pool, key=lambda x: (-held[x], load[x], devs.index(x)))
        where[n.name] = d
        load[d] += cm.compute(n, d)
    return where


def manual(g: nx.DiGraph, cm: CostModel, devs: tuple[str, ...]) -> Assignment:
    where: Assignment = {}
    for n in topo(g):
        if n.kind != "const":
            where[n.name] = _candidates(g, n, devs, where)[0]
    return where


STRATEGIES: dict[str, Callable[[nx.DiGraph, CostModel, tuple[str, ...]], Assignment]] = {
    "heft": heft,
    "round-robin": round_robin,
    "greedy-bytes": greedy_bytes,
    "owner-computes": owner_computes,
    "manual": manual,
}


def place(g: nx.DiGraph, ctx: PassContext) -> nx.DiGraph:
    where = STRATEGIES[ctx.strategy](g, ctx.cost_model, ctx.devices)
    g2 = _with_devices(g, where, {"strategy": ctx.strategy})
    for n in each_node(g2):
        if n.kind != "const" and n.allowed and n.device not in n.allowed and n.kind != "assign":
            raise AssertionError(f"{ctx.strategy} put {n.name} on {n.device}, outside {n.allowed}")
    return g2


def _resident(n: Node) -> bool:
    """A tile loaded once by its owner and reused every iteration."""
    return n.kind == "variable" and n.data.tile is not None and n.data.tile.resident
