"""comm: make every cross-device transfer explicit.

For each tensor consumed on another device, one ``send`` (on the producer's device) and
one ``recv`` (on the consumer's) — exactly one pair per (tensor, destination device), however
many consumers read it there. Constants are never sent (each device makes its own). A
value computed before the loop and read inside it is sent once; a variable read inside
the loop is sent every iteration (it changes)."""

from __future__ import annotations

from dataclasses import replace

import networkx as nx

from ..ir.devices import short
from ..ir.node import Node, nodes, rebuild, verify_ir


def comm(g: nx.DiGraph) -> nx.DiGraph:
    by_name = {n.name: n for n in nodes(g)}
    out: list[Node] = []
    pairs: dict[tuple[str, str], str] = {}
    for n in nodes(g):
        inputs = []
        for src_name in n.inputs:
            src = by_name[src_name]
            if src.kind == "const" or not src.device or not n.device or src.device == n.device:
                inputs.append(src_name)
                continue
            scope = n.scope if src.kind == "variable" else src.scope
            key = (src_name, n.device, scope)
            if key not in pairs:
                dest = short(n.device)
                tag = "@loop" if scope != src.scope else ""
                common = dict(shape=src.shape, dtype=src.dtype, out_bytes=src.out_bytes, scope=scope,
                              group=src.group, pos=src.pos)
                send = Node(f"send:{src_name}->{dest}{tag}", "send", "send", (src_name,), device=src.device,
                            allowed=(src.device,), attrs=(("to", n.device),), **common)
                recv = Node(f"recv:{src_name}@{dest}{tag}", "recv", "recv", (send.name,), device=n.device,
                            allowed=(n.device,), attrs=(("from", src.device),), **common)
                out += [send, recv]
                pairs[key] = recv.name
            inputs.append(pairs[key])
        out.append(replace(n, inputs=tuple(inputs)))
    g2 = rebuild(out, g.graph)
    verify_ir(g2, "comm")
    return g2
