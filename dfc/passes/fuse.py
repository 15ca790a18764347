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

import itertools

import networkx as nx

from ..ir.node import EFFECTFUL, Node, add, copy_graph, node_table, topo
from ..ir.payload import Compute
from ..ops import REGISTRY, TensorType
from .context import PassContext

#: the ops ``expand`` builds a whole array with, from its tiles
ASSEMBLERS = ("interleave", "assemble")


def fuse(g: nx.DiGraph, ctx: PassContext | None = None) -> nx.DiGraph:
    table = node_table(g)
    ops = {n["node"].op for n in _computes(table)}
    if not any(REGISTRY[o].of_tiles or REGISTRY[o].part for o in ops) and "take_tile" not in ops:
        return g
    node = {k: v["node"] for k, v in table.items()}
    changed: dict[str, Node] = {}
    extra: list[Node] = []  # nodes a rewrite adds (the parts a redistribution gathers)
    took_over: dict[str, set[str]] = {}  # a node -> those that now read what it read
    for n in topo(g):
        n = changed.get(n.name, n)
        if n.kind != "compute":
            continue
        gathered = _redistributed(n, node)
        if gathered is not None:
            new, parts, reader = gathered
            extra += parts
            for p in parts:
                node[p.name] = p
            took_over.setdefault(reader, set()).update(p.name for p in parts)
            took_over.setdefault(n.inputs[0], set()).add(n.name)
            changed[n.name] = node[n.name] = new
            continue
        fused = _of_tiles(n, node) or _part(n, node)
        if fused is not None:
            took_over.setdefault(n.inputs[0], set()).add(n.name)  # the array built, or the whole result
            changed[n.name] = node[n.name] = fused
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
    for p in extra:
        add(h, p)
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


def _redistributed(n: Node, node: dict[str, Node]) -> tuple[Node, list[Node], str] | None:
    """``take_tile`` of a whole array built from another array's tiles (a copy into another
    tiling), or of its transpose (a 2-D array's rows made columns): the tile gathered from
    the parts of the source tiles it needs, each part cut where its tile lives, so only
    those elements move (an all-to-all, not every tile to one device). Returns (the node
    now computing the tile, the parts it gathers, the node whose reads they took over)."""
    if n.op != "take_tile":
        return None
    kw = dict(n.data.kwargs)
    src = node[n.inputs[0]]
    transposed = src.kind == "compute" and src.op == "transpose" and node[src.inputs[0]].op == "assemble"
    whole = node[src.inputs[0]] if transposed else src
    if whole.kind != "compute" or whole.op not in ASSEMBLERS:
        return None
    tiles = [node[t] for t in whole.inputs]
    if whole.op == "assemble":
        grid = dict(whole.data.kwargs)["grid"]
        tile = tiles[0].shape
        src_tiling = ("block", tile, grid)
    else:
        src_tiling = ("cyclic", tiles[0].shape, (len(tiles),))
    if kw["tiling"] == "cyclic":
        if transposed or src_tiling[0] != "block":
            return None
        p, count = kw["index"][0], kw["grid"][0]
        pieces = []
        for b, t in enumerate(tiles):  # elements p, p + P, ... of each block, in order
            start = (p - b * tile[0]) % count
            if start < tile[0]:
                pieces.append((t, (("s", start, None, count),)))
        how = "concat"
    else:
        lo = [i * t for i, t in zip(kw["index"], kw["tile"])]
        box = list(zip(lo, [a + t for a, t in zip(lo, kw["tile"])]))
        if transposed:
            box = box[::-1]
        if src_tiling[0] == "block":
            if len(box) > 2:
                return None
            region = _block_region(tiles, src_tiling[1], src_tiling[2], box)
            pieces, how, rows = [(t, items) for t, items, _ in region], "concat", [r for _, _, r in region]
        else:  # a block of a cyclically tiled vector: the same slice of every tile, interleaved
            count, (a, b) = len(tiles), box[0]
            if a % count or b % count:
                return None
            pieces, how = [(t, (("s", a // count, b // count, None),)) for t in tiles], "interleave"
    if not pieces:
        return None
    if len(pieces) == 1 and not transposed and how == "concat":  # one part of one tile: that part
        t, items = pieces[0]
        return _retyped(n, "part", (t.name,), {"items": items}, node), [], whole.name
    parts = [
        _retyped(n.evolve(name=f"{n.name}/part{k}"), "part", (t.name,), {"items": items}, node)
        if any(it != ("s", 0, None, None) for it in items)
        else t
        for k, (t, items) in enumerate(pieces)
    ]
    made = [p for p in parts if p.name not in node]
    for p in made:
        node[p.name] = p
    names = tuple(p.name for p in parts)
    if how == "interleave":
        out = _retyped(n, "interleave", names, {}, node)
    elif kw["tiling"] != "cyclic":
        shape = n.shape[::-1] if transposed else n.shape
        out = _joined(n.evolve(shape=shape), names, rows, node, made)
    elif len(names) > 1:
        out = _retyped(n, "concat", names, {"axis": 0}, node)
    else:
        out = _retyped(n, "copy", names, {}, node)
    if transposed:
        made.append(out.evolve(name=f"{n.name}/gathered"))
        node[made[-1].name] = made[-1]
        out = _retyped(n, "transpose", (made[-1].name,), {}, node)
    return out, made, whole.name


def _block_region(tiles: list[Node], tile: tuple, grid: tuple, box: list[tuple[int, int]]) -> list[tuple]:
    """(source tile, the element items of its part, its row among the parts) for every tile
    that overlaps ``box``, in row-major order of the tile grid."""
    ranges = []
    for d, (a, b) in enumerate(box):
        t = tile[d]
        ranges.append(
            [
                (i, max(a, i * t) - i * t, min(b, (i + 1) * t) - i * t)
                for i in range(grid[d])
                if i * t < b and (i + 1) * t > a
            ]
        )
    out = []
    for combo in itertools.product(*ranges):
        index = 0
        for d, (i, _, _) in enumerate(combo):
            index = index * grid[d] + i
        items = tuple(("s", lo, hi if hi < tile[d] else None, None) for d, (_, lo, hi) in enumerate(combo))
        out.append((tiles[index], items, combo[0][0]))
    return out


def _joined(n: Node, names: tuple[str, ...], rows: list[int], node: dict[str, Node], made: list[Node]) -> Node:
    """Parts of a region, row-major, joined: each row of parts along axis 1, then the rows
    along axis 0 (a vector's parts: along axis 0)."""
    by_row: dict[int, list[str]] = {}
    for name, r in zip(names, rows):
        by_row.setdefault(r, []).append(name)
    joined = []
    for r, members in sorted(by_row.items()):
        if len(members) == 1 or len(n.shape) == 1:
            joined += members
            continue
        row = _retyped(n.evolve(name=f"{n.name}/row{r}"), "concat", tuple(members), {"axis": 1}, node)
        made.append(row)
        node[row.name] = row
        joined.append(row.name)
    if len(joined) == 1:
        return _retyped(n, "copy", tuple(joined), {}, node)
    return _retyped(n, "concat", tuple(joined), {"axis": 0}, node)


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
