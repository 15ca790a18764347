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
- the loop body is built once; the runtime runs it with one ``session.run`` per iteration.
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
    body: list  # ops to run once per iteration
    until: object | None  # the tensor that stops the loop
    reads: dict[str, object]  # variable node -> a tensor reading it
    max_iterations: int
    variables: dict[str, object] = field(default_factory=dict)
    # every read written by its owner as a serialized TensorProto into the directory fed
    # to ``dump_dir``: (placeholder, the op, variable node -> file name)
    dump: tuple | None = None
    checkpoint: Checkpointing | None = None  # with ``loop.checkpoint``


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


def lower(g: nx.DiGraph) -> Lowered:
    """Build the TF graph of a placed, comm-expanded IR. Imports TensorFlow."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    L = Lowering(g, tf)
    graph = tf.Graph()
    dynamic = instances(L)
    in_dynamic = {n.name for ns in dynamic.values() for n in ns}
    with graph.as_default():
        for n in topo(g):
            if n.name not in in_dynamic:
                _lower_node(L, n)
        if dynamic:
            lower_dynamic(L, dynamic)
        init = tf.compat.v1.variables_initializer(list(L.vars.values()))
        prologue = [tf.group(*L.prologue, name="dfc_prologue")] if L.prologue else []
        body = [tf.group(*L.body, name="dfc_body")] if L.body else []
        reads, dump = _dump(L)
        loop = g.nodes["loop"]["node"] if "loop" in g else None
        checkpoint = checkpointing(L, state_variables(g)) if loop is not None and loop.data.checkpoint_every else None
    return Lowered(graph, init, prologue, body, L.until, reads, loop.data.max if loop else 0, L.vars, dump, checkpoint)
