"""The IR: a ``networkx.DiGraph`` whose nodes each hold one frozen :class:`Node` under the
attribute ``"node"``, and whose edges are tensors (attribute ``"bytes"``).

Kinds:

=========  ================================================================
task       a whole task or loop step, before ``expand`` (one per spec entry)
const      a number (a literal, a param, an index value)
variable   one tile of an array, or a scalar that is loop state; holds its init
compute    one registry op on whole tiles
assign     writes its input into a variable (``data.target``)
enqueue    pushes its input into a queue (``data.queue``, ``data.key``)
dequeue    takes the items of one key (or all items) out of a queue
reduce     combines items with the queue's reducer op
broadcast  the reduced value, copied to every task of a job
send/recv  a transfer between devices (inserted by the ``comm`` pass)
loop       loop control: runs the ``scope == "loop"`` nodes until ``until`` or ``max``
=========  ================================================================

What each kind carries besides the common fields is its payload, ``Node.data`` (a frozen
dataclass per kind: ``dfc/ir/payload.py``).

Node names are stable and readable (``product[i=1,j=0,k=2]``, ``A[0,1]``,
``send:A[0,1]->/job:worker/task:1``); every iteration over the graph is sorted by name.
"""

from __future__ import annotations

import gc
import itertools
import json
import operator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import networkx as nx

from ..diagnostics import Pos

KINDS = (
    "task",
    "const",
    "variable",
    "compute",
    "assign",
    "enqueue",
    "dequeue",
    "reduce",
    "broadcast",
    "allreduce",
    "send",
    "recv",
    "loop",
)
#: Kinds with effects: never merged by CSE, never dropped.
EFFECTFUL = frozenset(
    {"variable", "assign", "enqueue", "dequeue", "reduce", "broadcast", "allreduce", "send", "recv", "loop", "task"}
)


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    op: str = ""
    inputs: tuple[str, ...] = ()
    shape: tuple[int, ...] = ()
    dtype: str = "float64"
    flops: int = 0
    out_bytes: int = 0
    mem_bytes: int = 0  # bytes read and written by one execution (the memory traffic)
    device: str = ""  # full TF device string once placed
    allowed: tuple[str, ...] = ()  # devices it may run on (empty: any)
    scope: str = ""  # "" (runs once) or "loop" (the loop body)
    group: str = ""  # the task class it came from, for reports and collapsing
    pos: Pos = field(default_factory=Pos)
    data: Any = None  # what its kind carries (a payload of dfc/ir/payload.py)
    after: tuple[str, ...] = ()  # control dependencies: run after these (no data flows)

    def __init__(
        self,
        name: str,
        kind: str,
        op: str = "",
        inputs: tuple[str, ...] = (),
        shape: tuple[int, ...] = (),
        dtype: str = "float64",
        flops: int = 0,
        out_bytes: int = 0,
        mem_bytes: int = 0,
        device: str = "",
        allowed: tuple[str, ...] = (),
        scope: str = "",
        group: str = "",
        pos: Pos | None = None,
        data: Any = None,
        after: tuple[str, ...] = (),
    ):
        # the fields' own defaults (a test keeps them equal). The dataclass's generated
        # __init__ sets each field through object.__setattr__ (it is frozen); stores into
        # the instance dict, in field order, are faster and keep the dict sharing its keys
        # with every other Node, so nodes stay small (compiling makes a node per op of
        # every instance; docs/compiler.md, "Compiler speed")
        d = self.__dict__
        d["name"], d["kind"], d["op"], d["inputs"] = name, kind, op, inputs
        d["shape"], d["dtype"], d["flops"], d["out_bytes"] = shape, dtype, flops, out_bytes
        d["mem_bytes"], d["device"], d["allowed"], d["scope"] = mem_bytes, device, allowed, scope
        d["group"], d["pos"], d["data"], d["after"] = group, Pos() if pos is None else pos, data, after

    def evolve(self, **changes) -> Node:
        """A copy with some fields changed: ``dataclasses.replace`` without re-running
        ``__init__`` (graphs have hundreds of thousands of nodes)."""
        new = object.__new__(Node)
        fields_ = self.__dict__.copy()
        fields_.update(changes)
        object.__setattr__(new, "__dict__", fields_)
        return new

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "op": self.op,
            "inputs": list(self.inputs),
            "after": list(self.after),
            "shape": list(self.shape),
            "dtype": self.dtype,
            "flops": self.flops,
            "bytes": self.out_bytes,
            "mem_bytes": self.mem_bytes,
            "device": self.device,
            "scope": self.scope,
            "group": self.group,
            "pos": f"{self.pos}" if self.pos.line else "",
            "attrs": {k: _jsonable(v) for k, v in sorted(self.data.fields())} if self.data is not None else {},
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, complex):
        return [v.real, v.imag]
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


@contextmanager
def gc_paused():
    """Python's cyclic garbage collector off for the block (a decorator too). Compiling
    allocates millions of small objects that reference counting frees (the IR has no
    reference cycles: frozen Nodes of strings and tuples); the collector would scan the
    growing heap again and again (docs/compiler.md, "Compiler speed"). Cycles
    made meanwhile are collected later, by the collector's next full collection."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # what the block made goes straight to the oldest generation (freeze + unfreeze:
        # no object is kept from collection): otherwise the first young collection
        # after it traverses them all
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()


# networkx's own dicts, behind these few names (its views cost more than the rest of a
# pass on graphs of a hundred thousand nodes); only dfc/ir touches them directly


def node_of(g: nx.DiGraph, name: str) -> Node:
    return g._node[name]["node"]


def each_node(g: nx.DiGraph) -> Iterator[Node]:
    """Every node, in the order the graph was built (program order)."""
    return (d["node"] for d in g._node.values())


def node_table(g: nx.DiGraph) -> dict[str, dict]:
    """name -> {"node": Node}, in build order: the graph's own dict (never change it in place)."""
    return g._node


def succ_of(g: nx.DiGraph) -> dict[str, dict[str, dict]]:
    """name -> {successor: edge data}: the graph's own adjacency (never change it in place)."""
    return g._succ


def pred_of(g: nx.DiGraph) -> dict[str, dict[str, dict]]:
    """name -> {predecessor: edge data}: the graph's own adjacency (never change it in place)."""
    return g._pred


def nodes(g: nx.DiGraph) -> list[Node]:
    """All nodes, sorted by name."""
    return [g.nodes[n]["node"] for n in sorted(g.nodes)]


def state_variables(g: nx.DiGraph) -> list[str]:
    """The variables the program writes (in its first pass or its loop), sorted: its state."""
    return sorted({d["node"].data.target for d in g._node.values() if d["node"].kind == "assign"})


def add(g: nx.DiGraph, node: Node) -> str:
    """Add ``node`` with one edge per input and control dependency; returns its name.

    On the adjacency dicts directly, filled as ``DiGraph.add_edge`` fills them (one
    attribute dict shared by both directions): the networkx calls cost more than the rest
    of building a graph of a hundred thousand nodes."""
    name, data, succ, pred = node.name, g._node, g._succ, g._pred
    if name in data:
        data[name]["node"] = node
    else:
        data[name], succ[name], pred[name] = {"node": node}, {}, {}
    mine = pred[name]
    for src in node.inputs:
        if src not in data:
            raise IRError(f"{name!r} reads {src!r}, which is not in the IR")
        succ[src][name] = mine[src] = {"bytes": data[src]["node"].out_bytes}
    for src in node.after:
        if src not in data:
            raise IRError(f"{name!r} runs after {src!r}, which is not in the IR")
        if src not in mine:
            succ[src][name] = mine[src] = {"bytes": 0}
    return name


def copy_graph(g: nx.DiGraph) -> nx.DiGraph:
    """A structural copy: new adjacency and node-attribute dicts, the (never mutated) edge
    attribute dicts and frozen Nodes shared. ``DiGraph.copy`` copies every attribute dict
    and takes seconds on graphs of a hundred thousand nodes."""
    h = g.__class__()
    h.graph.update(g.graph)
    h.graph.pop(_VERIFIED, None)
    h._node.update((n, dict(d)) for n, d in g._node.items())
    h._succ.update((n, dict(s)) for n, s in g._succ.items())
    h._pred.update((n, dict(p)) for n, p in g._pred.items())
    return h


def edit_graph(g: nx.DiGraph) -> tuple[nx.DiGraph, Callable[[str], dict], Callable[[str], dict]]:
    """A copy of ``g`` to add nodes and edges to, with ``succ(k)``, ``pred(k)``: node ``k``'s
    adjacency row, copied from ``g``'s the first time it is asked for (rows never asked for
    stay shared). :func:`copy_graph` copies every row: a third of ``comm``'s time on 150k
    nodes, of which it changes a few. Add new nodes' rows to the copy's ``_succ``/``_pred``
    directly; change a row only through ``succ``/``pred``."""
    h = g.__class__()
    h.graph.update(g.graph)
    h.graph.pop(_VERIFIED, None)
    h._node = dict(g._node)  # attribute dicts shared: passes replace them, never change them
    h._succ = h._adj = dict(g._succ)
    h._pred = dict(g._pred)
    old_succ, old_pred = g._succ, g._pred

    def row(adj: dict, old: dict) -> Callable[[str], dict]:
        def get(k: str) -> dict:
            r: dict = adj[k]
            if r is old.get(k):
                r = adj[k] = dict(r)
            return r

        return get

    return h, row(h._succ, old_succ), row(h._pred, old_pred)


def with_nodes(g: nx.DiGraph, changed: Iterable[Node], graph_attrs: dict | None = None) -> nx.DiGraph:
    """A copy of ``g`` where some nodes are replaced by versions with the same inputs.

    The copy shares ``g``'s adjacency (the edges are the same): like every pass, whoever
    changes edges makes its own :func:`copy_graph` first, so neither graph's edges are
    ever mutated in place."""
    h = g.__class__()
    h.graph.update(g.graph)
    h.graph.update(graph_attrs or {})
    h.graph.pop(_VERIFIED, None)
    h._node = dict(g._node)  # a fresh graph has no cached views yet: safe to swap the dicts
    h._succ = h._adj = g._succ
    h._pred = g._pred
    for n in changed:
        h._node[n.name] = {"node": n}
    return h


def topo_names(g: nx.DiGraph) -> list[str]:
    """Node names in a deterministic topological order: generation by generation, each in
    the order the graph was built (what ``nx.topological_sort`` yields, on the adjacency
    dicts directly: several times faster on graphs of a hundred thousand nodes). Raises
    :class:`IRError` on a cycle. The order is kept with the graph for as long as its
    adjacency is the same object with as many nodes (passes never change a graph's edges
    in place after sorting it: they change a :func:`copy_graph`)."""
    succ = g._succ
    cached = g.graph.get("_topo")
    if cached is not None and cached[0] is succ and cached[1] == len(succ):
        return cached[2]
    indegree = {k: len(p) for k, p in g._pred.items()}
    generation = [k for k, d in indegree.items() if d == 0]
    order: list[str] = []
    while generation:
        order += generation
        following = []
        for k in generation:
            for child in succ[k]:
                left = indegree[child] - 1
                indegree[child] = left
                if not left:
                    following.append(child)
        generation = following
    if len(order) != len(indegree):
        raise IRError(f"the IR has a cycle: {nx.find_cycle(g)[:4]}")
    g.graph["_topo"] = (succ, len(succ), order)
    return order


def topo(g: nx.DiGraph, scope: str | None = None) -> list[Node]:
    """Nodes in :func:`topo_names` order (graphs are always built in a deterministic order,
    so this order is too), optionally those of one scope."""
    data = g._node
    out = [data[k]["node"] for k in topo_names(g)]
    return out if scope is None else [n for n in out if n.scope == scope]


class IRError(Exception):
    """The IR broke an invariant: a bug in a pass, never a user mistake."""


def verify_ir(g: nx.DiGraph, stage: str = "") -> None:
    """Check the invariants every pass must keep. A graph passed before, unchanged since
    (the same node and adjacency dicts: what a pass returns when it has nothing to do),
    is not checked again: verified graphs are never changed in place (the convention
    :func:`topo_names` relies on too)."""
    stamp = g.graph.get(_VERIFIED)
    if stamp is not None and stamp[0] is g._node and stamp[1] is g._succ and stamp[2] == len(g._node):
        return
    where = f" after {stage}" if stage else ""
    try:
        topo_names(g)
    except IRError as e:
        raise IRError(f"{e}{where}") from None
    kinds = frozenset(KINDS)
    pred = g._pred  # adjacency dicts: checking them directly keeps this linear and cheap
    nodes_ = g._node
    try:  # the loop body's nodes, in C loops (a node without a Node is reported below)
        looped = set(itertools.compress(nodes_, map("loop".__eq__, map(_SCOPE, map(_NODE, nodes_.values())))))
    except KeyError:
        looped = set()
    for name, data in nodes_.items():
        n = data.get("node")
        if n is None:
            raise IRError(f"node {name!r} has no Node{where}")
        if n.name != name or n.kind not in kinds:
            raise IRError(f"bad node {name!r} (kind {n.kind!r}){where}")
        p, ins = pred[name], n.inputs
        # the edges are exactly the inputs and control dependencies: the common shapes
        # (no input, or one) without building sets
        if n.after or len(ins) > 1 or len(p) != len(ins) or (ins and ins[0] not in p):
            if p.keys() != set(ins).union(n.after):
                raise IRError(f"edges of {name!r} do not match its inputs{where}")
        if looped and n.scope == "" and not looped.isdisjoint(ins):
            raise IRError(f"{name!r} runs once, before the loop, but reads a loop value{where}")
    g.graph[_VERIFIED] = (g._node, g._succ, len(g._node))


_NODE, _SCOPE = operator.itemgetter("node"), operator.attrgetter("scope")
_VERIFIED = "_verified"  # graph attribute: what verify_ir last passed (copies drop it: it would keep
# the old graph's dicts alive)


def to_json(g: nx.DiGraph) -> dict:
    return {
        "nodes": [n.to_json() for n in nodes(g)],
        "edges": [
            {"from": u, "to": v, "bytes": b}
            for u, v, b in sorted((u, v, d["bytes"]) for u, out in g._succ.items() for v, d in out.items())
        ],
    }


def describe(g: nx.DiGraph) -> str:
    """One line per node, in topological order: what ``dfc plan --print-after`` shows."""
    out = []
    for n in topo(g):
        where = f" @ {n.device}" if n.device else (f" on {'|'.join(n.allowed)}" if n.allowed else "")
        shape = f"{n.dtype}[{', '.join(map(str, n.shape))}]" if n.shape else (n.dtype or "number")
        inputs = f" <- {', '.join(n.inputs)}" if n.inputs else ""
        after = f" after {', '.join(n.after)}" if n.after else ""
        scope = " (loop)" if n.scope == "loop" else ""
        out.append(f"{n.name}: {n.kind} {n.op} {shape}{where}{scope}{inputs}{after}")
    return "\n".join(out) + "\n"


def dumps(g: nx.DiGraph) -> str:
    return json.dumps(to_json(g), indent=1)
