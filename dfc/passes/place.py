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

from dataclasses import replace
from typing import Callable

import networkx as nx

from ..cost.model import CostModel
from ..cost.profile import Profile
from ..ir.devices import devices, job_of
from ..ir.node import Node, rebuild, topo, verify_ir

Assignment = dict[str, str]


def _candidates(g: nx.DiGraph, n: Node, devs: tuple[str, ...], where: Assignment) -> tuple[str, ...]:
    if n.kind == "assign":
        return (where[n.attr("target")],)
    if n.kind == "loop":
        return (where[n.inputs[0]],) if n.inputs and n.inputs[0] in where else devs[:1]
    if n.scope == "loop" and n.kind == "compute":
        pinned = {where[i] for i in n.inputs if i in where and g.nodes[i]["node"].attr("resident")}
        if pinned:
            return tuple(sorted(pinned))
    return n.allowed or devs


def clusters(g: nx.DiGraph, cm: CostModel) -> tuple[dict[str, str], dict[str, frozenset | None]]:
    """Edge zeroing: join the two ends of an edge whose transfer would cost more than both
    ends compute (chains of small ops), as long as their constraints agree. Returns
    node -> cluster representative. Heavy ops never join: their parallelism is kept."""
    parent: dict[str, str] = {}
    allowed: dict[str, frozenset | None] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    cost = {}
    for n in topo(g):
        if n.kind in ("const", "variable", "assign", "loop"):
            continue
        cost[n.name] = cm.mean_compute(n, n.allowed)
        parent[n.name] = n.name
        allowed[n.name] = frozenset(n.allowed) if n.allowed else None
    for u, v, data in sorted(g.edges(data=True)):
        if u not in cost or v not in cost or not data["bytes"]:
            continue
        if cm.mean_transfer(data["bytes"]) <= cost[u] + cost[v]:
            continue
        ru, rv = find(u), find(v)
        if ru == rv:
            continue
        au, av = allowed[ru], allowed[rv]
        both = au if av is None else av if au is None else au & av
        if both is not None and not both:
            continue
        root, child = sorted((ru, rv))
        parent[child] = root
        allowed[root] = both
    roots = {n: find(n) for n in parent}
    return roots, {r: allowed[r] for r in set(roots.values())}


def heft(g: nx.DiGraph, cm: CostModel, devs: tuple[str, ...]) -> Assignment:
    """HEFT with two refinements: chains of small ops are clustered first (edge zeroing,
    see :func:`clusters`), and data follows compute: a variable free to move is placed with
    the first node that uses it, initialised either there or on the device that can make it
    and ship it soonest."""
    order = [n for n in topo(g)]
    rank: dict[str, float] = {}
    for n in reversed(order):
        if n.kind == "const":
            continue
        succ = [s for s in g.successors(n.name)]
        tail = max((cm.mean_transfer(g.edges[n.name, s]["bytes"]) + rank[s] for s in succ), default=0.0)
        rank[n.name] = max(cm.mean_compute(n, n.allowed), 1e-12) + tail
    cluster, cluster_allowed = clusters(g, cm)
    cluster_device: dict[str, str] = {}
    where: Assignment = {}
    finish: dict[str, float] = {}
    avail = {d: 0.0 for d in devs}
    lazy = {n.name for n in order if n.kind == "variable" and len(n.allowed) != 1 and not n.inputs}

    def make(v: Node, d: str, load: dict[str, float]) -> tuple[str, float]:
        """Where to initialise variable ``v`` for a use on ``d``: (device, time it is on d)."""
        options = [(load[d] + cm.compute(v, d), d)] if not v.allowed or d in v.allowed else []
        for e in v.allowed or devs:
            if e != d:
                options.append((load[e] + cm.compute(v, e) + cm.transfer(v.out_bytes, e, d), e))
        at, e = min(options)
        return e, at

    for name in sorted(rank, key=lambda k: (-rank[k], k)):
        if name in lazy:
            continue
        n = g.nodes[name]["node"]
        if n.kind == "assign" and n.attr("target") in lazy:
            cands = g.nodes[n.attr("target")]["node"].allowed or devs
        elif cluster.get(name) in cluster_device:
            cands = (cluster_device[cluster[name]],)
        else:
            cands = _candidates(g, n, devs, where)
            shared = cluster_allowed.get(cluster.get(name, ""))
            if shared:
                cands = tuple(d for d in cands if d in shared) or cands
        preds = [(p, g.edges[p, name]["bytes"]) for p in g.predecessors(name) if p in where]
        fresh = [g.nodes[p]["node"] for p in sorted(g.predecessors(name)) if p in lazy]
        best = None
        for d in cands:
            ready = max((finish[p] + cm.transfer(b, where[p], d) for p, b in preds), default=0.0)
            load = dict(avail)
            for v in fresh:
                e, at = make(v, d, load)
                load[e] += cm.compute(v, e)
                ready = max(ready, at)
            eft = max(load[d], ready) + cm.compute(n, d)
            if best is None or eft < best[0] - 1e-15:
                best = (eft, d)
        d = best[1]
        for v in fresh:
            e, _ = make(v, d, avail)
            where[v.name], finish[v.name] = e, avail[e] + cm.compute(v, e)
            avail[e] = finish[v.name]
            lazy.discard(v.name)
        if n.kind == "assign":
            d = where[n.attr("target")]
        if name in cluster:
            cluster_device.setdefault(cluster[name], d)
        where[name], finish[name] = d, best[0]
        avail[d] = max(avail[d], best[0])
    for var in sorted(lazy):  # never used: wherever there is room
        v = g.nodes[var]["node"]
        e = min(v.allowed or devs, key=lambda x: (avail[x], x))
        where[var] = e
        avail[e] += cm.compute(v, e)
    return where


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


def manual(g: nx.DiGraph, cm: CostModel, devs: tuple[str, ...]) -> Assignment:
    where: Assignment = {}
    for n in topo(g):
        if n.kind != "const":
            where[n.name] = _candidates(g, n, devs, where)[0]
    return where


STRATEGIES: dict[str, Callable[[nx.DiGraph, CostModel, tuple[str, ...]], Assignment]] = {
    "heft": heft, "round-robin": round_robin, "greedy-bytes": greedy_bytes, "manual": manual,
}


def place(g: nx.DiGraph, strategy: str, profile: Profile) -> nx.DiGraph:
    spec = g.graph["spec"]
    devs = devices(spec)
    cm = CostModel(profile, devs)
    where = STRATEGIES[strategy](g, cm, devs)
    placed = []
    for name in sorted(g.nodes):
        n = g.nodes[name]["node"]
        placed.append(replace(n, device=where.get(name, "")))
    g2 = rebuild(placed, {**g.graph, "strategy": strategy, "profile": profile, "devices": devs})
    verify_ir(g2, "place")
    for n in placed:
        if n.kind != "const" and n.allowed and n.device not in n.allowed and n.kind != "assign":
            raise AssertionError(f"{strategy} put {n.name} on {n.device}, outside {n.allowed}")
    return g2
