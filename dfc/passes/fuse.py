"""fuse: compute on tiles where the program names whole arrays.

A program may read a tiled array whole (``fft_merge(Y, stride=P)``) and write a result
whole into a tiled array (``out: X``); ``expand`` builds that literally: the tiles
assembled into one array (``interleave``/``assemble``), the op, and each tile of the
result taken out of it (``take_tile``), so one device holds every byte. Two rewrites, each
offered by the op's registry entry, keep the values and drop the whole arrays:

- an op whose one input is an array built from its tiles takes the tiles themselves
  (``Op.of_tiles``: ``fft_merge`` of an array's cyclic tiles is ``fft_combine`` of them);
- a block tile of a vector result is computed alone (``Op.part``: its elements lo..hi-1),
  so each tile's part can be placed with its tile and the parts run on as many devices.

Pure nodes no longer used are dropped. Ops without the hooks are left as they are."""

from __future__ import annotations

import networkx as nx

from ..ir.node import EFFECTFUL, Node, add, copy_graph, node_table, topo
from ..ir.payload import Compute
from ..ops import REGISTRY, TensorType
from .context import PassContext

#: the ops ``expand`` builds a whole array with, from its tiles
ASSEMBLERS = ("interleave", "assemble")


def fuse(g: nx.DiGraph, ctx: PassContext | None = None) -> nx.DiGraph:
    table = node_table(g)
    if not any(REGISTRY[n["node"].op].of_tiles or REGISTRY[n["node"].op].part for n in _computes(table)):
        return g
    node = {k: v["node"] for k, v in table.items()}
    changed: dict[str, Node] = {}
    took_over: dict[str, set[str]] = {}  # a node -> those that now read what it read
    for n in topo(g):
        n = changed.get(n.name, n)
        if n.kind != "compute":
            continue
        new = _of_tiles(n, node) or _part(n, node)
        if new is not None:
            took_over.setdefault(n.inputs[0], set()).add(n.name)  # the array built, or the whole result
            changed[n.name] = node[n.name] = new
    if not changed:
        return g
    # a tile's part is named for its op (``merge/1:fft_combine``), not the take_tile it was
    renamed = {
        k: n.evolve(name=k.replace(":take_tile", f":{n.op}")) for k, n in changed.items() if n.op != table[k]["node"].op
    }
    renamed = {k: n for k, n in renamed.items() if n.name == k or n.name not in node}
    changed.update(renamed)
    new_name = {k: n.name for k, n in renamed.items() if n.name != k}
    h = copy_graph(g)
    dropped = _unused(h, {p for k in changed for p in g.predecessors(k)}, changed)
    for k in dropped:
        changed.pop(k, None)
    # an assign ordered after a read (write-after-read: ``after``) of a node that no longer
    # reads, or no longer alone, comes after the nodes that took its reads over
    for k in sorted({s for x in set(took_over) | dropped | set(new_name) for s in g.successors(x)}):
        n = changed.get(k, node[k])
        after = set(n.after) - dropped
        for x in n.after:
            after |= _readers(x, took_over) - dropped - {k}
        after = {new_name.get(x, x) for x in after}
        inputs = tuple(new_name.get(i, i) for i in n.inputs)
        if after != set(n.after) or inputs != n.inputs:
            changed[k] = n.evolve(inputs=inputs, after=tuple(sorted(after)))
    h.remove_nodes_from(dropped)
    for k, n in changed.items():  # the renamed first, so that every input exists
        if n.name != k:
            h.remove_node(k)
            h.add_node(n.name, node=n)
    for n in changed.values():
        for p in list(h.predecessors(n.name)):
            h.remove_edge(p, n.name)
        add(h, n)
    return h


def _readers(x: str, took_over: dict[str, set[str]]) -> set[str]:
    """The nodes that now do ``x``'s reading (those that took it over, and so on)."""
    out: set[str] = set()
    for y in took_over.get(x, ()):
        out.add(y)
        out |= _readers(y, took_over)
    return out


def _computes(table: dict) -> list[dict]:
    return [v for v in table.values() if v["node"].kind == "compute"]


def _of_tiles(n: Node, node: dict[str, Node]) -> Node | None:
    op = REGISTRY[n.op]
    if op.of_tiles is None or len(n.inputs) != 1:
        return None
    src = node[n.inputs[0]]
    if src.kind != "compute" or src.op not in ASSEMBLERS:
        return None
    got = op.of_tiles(dict(n.data.kwargs), src.op, len(src.inputs))
    if got is None:
        return None
    name, kwargs = got
    return _retyped(n, name, src.inputs, kwargs, node)


def _part(n: Node, node: dict[str, Node]) -> Node | None:
    """``take_tile`` of a block tile of a vector an op can compute in parts: that part."""
    if n.op != "take_tile" or len(n.shape) != 1:
        return None
    kw = dict(n.data.kwargs)
    src = node[n.inputs[0]]
    op = REGISTRY.get(src.op) if src.kind == "compute" else None
    if kw["tiling"] != "block" or op is None or op.part is None:
        return None
    lo = kw["index"][0] * kw["tile"][0]
    kwargs = op.part(dict(src.data.kwargs), lo, lo + kw["tile"][0])
    if kwargs is None:
        return None
    return _retyped(n.evolve(group=src.group, pos=src.pos), src.op, src.inputs, kwargs, node)


def _retyped(n: Node, op_name: str, inputs: tuple[str, ...], kwargs: dict, node: dict[str, Node]) -> Node:
    """``n`` (its name, scope, constraints and task class kept) as ``op_name`` of ``inputs``."""
    op = REGISTRY[op_name]
    types = tuple(TensorType(node[i].shape, node[i].dtype or None) for i in inputs)
    out = op.infer(*types, **kwargs)
    return n.evolve(
        op=op_name,
        inputs=tuple(inputs),
        shape=out.shape,
        dtype=out.dtype or "",
        flops=op.count_flops(types, out, kwargs),
        out_bytes=out.nbytes,
        mem_bytes=op.bytes(types, out),
        data=Compute(tuple(sorted(kwargs.items())), n.data.instance),
    )


def _unused(g: nx.DiGraph, candidates: set[str], changed: dict[str, Node]) -> set[str]:
    """The pure nodes among ``candidates`` whose values nothing reads any more (a control
    dependency on one is not a use), and then their inputs that nothing else reads."""
    dropped: set[str] = set()
    todo = sorted(candidates)
    while todo:
        k = todo.pop()
        n = changed.get(k, g.nodes[k]["node"])
        if k in dropped or n.kind in EFFECTFUL:
            continue
        readers = (changed.get(s, g.nodes[s]["node"]) for s in g.successors(k) if s not in dropped)
        if any(k in r.inputs for r in readers):
            continue
        dropped.add(k)
        todo += [p for p in n.inputs if p not in dropped]
    return dropped
