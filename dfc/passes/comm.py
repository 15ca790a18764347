"""comm: make every cross-device transfer explicit.

For each tensor consumed on another device, one ``send`` (on the producer's device) and
one ``recv`` (on the consumer's) — exactly one pair per (tensor, destination device), however
many consumers read it there. Constants are never sent (each device makes its own). A
value computed before the loop and read inside it is sent once; a variable read inside
the loop is sent every iteration (it changes)."""

from __future__ import annotations

import networkx as nx

from ..ir.devices import short
from ..ir.node import Node, copy_graph, verify_ir


def comm(g: nx.DiGraph, verify: bool = True) -> nx.DiGraph:
    """``verify=False`` skips the IR check: for the placement search's trial graphs."""
    g2 = copy_graph(g)
    pairs: dict[tuple[str, str, str], str] = {}
    for name in list(g.nodes):
        n = g.nodes[name]["node"]
        if not n.device:
            continue
        inputs = list(n.inputs)
        for i, src_name in enumerate(n.inputs):
            src = g.nodes[src_name]["node"]
            if src.kind == "const" or not src.device or src.device == n.device:
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
                g2.add_node(send.name, node=send)
                g2.add_node(recv.name, node=recv)
                g2.add_edge(src_name, send.name, bytes=src.out_bytes)
                g2.add_edge(send.name, recv.name, bytes=src.out_bytes)
                pairs[key] = recv.name
            inputs[i] = pairs[key]
        if inputs != list(n.inputs):
            for old in set(n.inputs) - set(inputs) - set(n.after):
                g2.remove_edge(old, name)
            for new in set(inputs) - set(n.inputs):
                g2.add_edge(new, name, bytes=g2.nodes[new]["node"].out_bytes)
            g2.nodes[name]["node"] = n.evolve(inputs=tuple(inputs))
    if verify:
        verify_ir(g2, "comm")
    return g2
