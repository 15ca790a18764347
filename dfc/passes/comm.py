"""comm: make every cross-device transfer explicit.

For each tensor consumed on another device, one ``send`` (on the producer's device) and
one ``recv`` (on the consumer's) — exactly one pair per (tensor, destination device), however
many consumers read it there. Constants are never sent (each device makes its own). A
value computed before the loop and read inside it is sent once; a variable read inside
the loop is sent every iteration (it changes)."""

from __future__ import annotations

import networkx as nx

from ..ir.devices import short
from ..ir.node import Node, edit_graph, node_table
from ..ir.payload import Transfer
from .context import PassContext


def comm(g: nx.DiGraph, ctx: PassContext | None = None) -> nx.DiGraph:
    # the adjacency dicts directly (as networkx's add_edge fills them, one attribute dict
    # shared by both directions): several times faster than the API on 100k-node graphs;
    # only the rows this pass changes are copied
    g2, succ, pred = edit_graph(g)
    data = node_table(g2)
    nodes_ = node_table(g)
    pairs: dict[tuple[str, str, str], str] = {}
    short_of: dict[str, str] = {}
    sends_to: dict[str, Transfer] = {}
    recvs_from: dict[str, Transfer] = {}

    def edge(u: str, v: str, nbytes: int) -> None:
        succ(u)[v] = pred(v)[u] = {"bytes": nbytes}

    for name, d in nodes_.items():
        n = d["node"]
        if not n.device:
            continue
        inputs = None
        for i, src_name in enumerate(n.inputs):
            src = nodes_[src_name]["node"]
            if src.kind == "const" or not src.device or src.device == n.device:
                continue
            if n.kind == "allreduce":  # another member's partial: the collective carries it
                continue
            scope = n.scope if src.kind == "variable" else src.scope
            key = (src_name, n.device, scope)
            if key not in pairs:
                dest = short_of.get(n.device) or short_of.setdefault(n.device, short(n.device))
                tag = "@loop" if scope != src.scope else ""
                fields = (src.shape, src.dtype, 0, src.out_bytes, 0)
                # payloads are immutable: one per device pair, shared by its transfers
                to = sends_to.get(n.device) or sends_to.setdefault(n.device, Transfer(to=n.device))
                from_ = recvs_from.get(src.device) or recvs_from.setdefault(src.device, Transfer(from_=src.device))
                send = Node(
                    f"send:{src_name}->{dest}{tag}", "send", "send", (src_name,), *fields,
                    src.device, (src.device,), scope, src.group, src.pos, to,
                )  # fmt: skip
                recv = Node(
                    f"recv:{src_name}@{dest}{tag}", "recv", "recv", (send.name,), *fields,
                    n.device, (n.device,), scope, src.group, src.pos, from_,
                )  # fmt: skip
                for x in (send, recv):
                    data[x.name] = {"node": x}
                    g2._succ[x.name], g2._pred[x.name] = {}, {}
                edge(src_name, send.name, src.out_bytes)
                edge(send.name, recv.name, src.out_bytes)
                pairs[key] = recv.name
            if inputs is None:
                inputs = list(n.inputs)
            inputs[i] = pairs[key]
        if inputs is not None:
            before, now = set(n.inputs), set(inputs)
            for old in before - now - set(n.after):
                del succ(old)[name], pred(name)[old]
            for new in now - before:
                edge(new, name, data[new]["node"].out_bytes)
            data[name] = {"node": n.evolve(inputs=tuple(inputs))}
    return g2
