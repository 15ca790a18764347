"""Lowering: the placed IR -> a ``tf.compat.v1`` graph.

Every node is built under ``tf.device`` of its placement by the rule of its kind
(``rules.RULES``); a compute node by its op's TF rule in the registry. No rule branches on
an op.

- ``variable``: a resource variable on its owner, initialised there (counter-based random
  numbers computed on the device, a constant, a copy of another tile, or a ``.npy`` read by
  the owner): the client never ships a tile through ``feed_dict``;
- reads of a variable are made per consumer, after the consumer's control dependencies,
  so writes-after-reads keep their order;
- ``enqueue``/``dequeue``: one ``FIFOQueue`` per dequeue (a queue's key in one scope) with a
  ``shared_name`` on the shard's task; a reducer takes a key's items with ``dequeue_many``
  and accumulates them; a queue drained by a ``pop:`` task carries (key index, item) pairs
  and the consumer puts them back in key order;
- ``send``/``recv``: an identity on the destination device, so each tensor crosses to a
  device once (TF inserts its own ``_Send``/``_Recv`` for it);
- ``schedule: dynamic`` tasks: a work queue per task (``dynamic.py``);
- checkpoints: save and restore ops on each owner (``save.py``);
- the loop body is built once, inside a ``tf.while_loop`` (TF1 control flow, which TF
  partitions across the tasks): one ``session.run`` runs up to ``chunk`` iterations
  (fed; 1 by default) and leaves early when ``until`` holds; it returns how many it ran
  and whether ``until`` held. Iterations never overlap (``parallel_iterations=1``, and the
  next iteration waits for every op of the last), so each reads what the last wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from ..ir.node import Node, state_variables, topo
from .dynamic import instances, lower_dynamic
from .rules import RULES
from .save import Checkpointing, checkpointing
from .state import Lowering

__all__ = ["Lowered", "Checkpointing", "lower"]


@dataclass
class Lowered:
    graph: object  # tf.Graph
    init: object  # the op initialising every variable
    prologue: list  # ops to run once, after init
    loop: tuple | None  # (iterations run, until held): up to ``chunk`` iterations of the loop
    chunk: object | None  # the placeholder of how many iterations one run may run
    reads: dict[str, object]  # variable node -> a tensor reading it
    max_iterations: int
    variables: dict[str, object] = field(default_factory=dict)
    # every read written by its owner as a serialized TensorProto into the directory fed
    # to ``dump_dir``: (placeholder, the op, variable node -> file name)
    dump: tuple | None = None
    checkpoint: Checkpointing | None = None  # with ``loop.checkpoint``
    done: object | None = None  # the placeholder of the iterations run before this run of the loop


def _lower_node(L: Lowering, n: Node) -> None:
    tf = L.tf
    control = [L.op_of(a) for a in n.after if a in L.values or a in L.vars]
    with tf.device(n.device or None), tf.control_dependencies([c for c in control if c is not None]):
        RULES[n.kind](L, n)


def _dump(L: Lowering) -> tuple[dict, tuple]:
    """A read of every variable, and the op that writes each, as a serialized tensor, into a folder."""
    tf = L.tf
    reads, files, writes = {}, {}, []
    folder = tf.compat.v1.placeholder(tf.string, [], name="dfc_dump_dir")
    for i, (name, var) in enumerate(L.vars.items()):
        with tf.device(L.node(name).device or None):
            reads[name] = var.read_value()
            files[name] = f"{i}.tensor"
            writes.append(
                tf.io.write_file(tf.strings.join([folder, files[name]], "/"), tf.io.serialize_tensor(reads[name]))
            )
    return reads, (folder, tf.group(*writes, name="dfc_dump"), files)


#: How the loop body is built: inside a ``while_loop`` (``graph``: many iterations per
#: ``session.run``), or once outside any (``steps``: one ``session.run`` per iteration, the
#: lowering the in-graph loop replaced; kept for the tests that compare the two).
LOOPS = ("graph", "steps")


def lower(g: nx.DiGraph, loop: str = "graph") -> Lowered:
    """Build the TF graph of a placed, comm-expanded IR. Imports TensorFlow."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    L = Lowering(g, tf)
    graph = tf.Graph()
    dynamic = instances(L)
    in_dynamic = {n.name for ns in dynamic.values() for n in ns}
    order = [n for n in topo(g) if n.name not in in_dynamic]
    v2 = tf.compat.v1.control_flow_v2_enabled()
    tf.compat.v1.disable_control_flow_v2()  # while building: v1 loops are partitioned across the tasks
    try:
        with graph.as_default():
            for n in order:
                if n.scope != "loop":
                    _lower_node(L, n)
            if dynamic:
                lower_dynamic(L, dynamic)
            init = tf.compat.v1.variables_initializer(list(L.vars.values()))
            prologue = [tf.group(*L.prologue, name="dfc_prologue")] if L.prologue else []
            body = [n for n in order if n.scope == "loop"]
            chunk, loop_out = (_while(L, g, body) if loop == "graph" else _steps(L, body)) if body else (None, None)
            reads, dump = _dump(L)
            control = g.nodes["loop"]["node"] if "loop" in g else None
            state = state_variables(g)
            checkpoint = checkpointing(L, state) if control is not None and control.data.checkpoint_every else None
    finally:
        if v2:
            tf.compat.v1.enable_control_flow_v2()
    return Lowered(
        graph,
        init,
        prologue,
        loop_out,
        chunk,
        reads,
        control.data.max if control else 0,
        L.vars,
        dump,
        checkpoint,
        L.done,
    )


def _steps(L: Lowering, body: list[Node]) -> tuple:
    """The loop body built once, outside any loop: each run is one iteration."""
    tf = L.tf
    L.done = tf.compat.v1.placeholder_with_default(tf.constant(0, tf.int64), [], name="dfc_done")
    L.iteration = L.done
    for n in body:
        _lower_node(L, n)
    return None, (tf.constant(1, tf.int64), _held(L))


def _held(L: Lowering):
    """Whether ``until`` holds after an iteration, once every op of it has run (so the next
    iteration, or the next run, waits for all of them)."""
    tf = L.tf
    with tf.control_dependencies(L.body):
        return tf.identity(L.until) if L.until is not None else tf.constant(False)


def _while(L: Lowering, g: nx.DiGraph, body: list[Node]) -> tuple:
    """The loop body in a ``while_loop``: (the chunk placeholder, (iterations run, until held))."""
    tf = L.tf
    chunk = tf.compat.v1.placeholder_with_default(tf.constant(1, tf.int64), [], name="dfc_chunk")
    L.done = tf.compat.v1.placeholder_with_default(tf.constant(0, tf.int64), [], name="dfc_done")

    def go_on(i, held):
        return tf.logical_and(i < chunk, tf.logical_not(held))

    def iteration(i, held):
        L.body, L.until = [], None
        L.iteration = L.done + i  # the iteration's number in the whole run (for `rand`)
        for n in body:
            _lower_node(L, n)
        return i + 1, _held(L)

    # the loop's own bookkeeping lives with the task the client talks to (its first device)
    with tf.device(g.graph["facts"].devices[0]):
        out = tf.compat.v1.while_loop(
            go_on,
            iteration,
            [tf.constant(0, tf.int64), tf.constant(False)],
            parallel_iterations=1,
            back_prop=False,
            name="dfc_loop",
        )
    return chunk, tuple(out)
