"""One lowering rule per node kind: ``RULES[kind](lowering, node)`` builds the node's TF
ops (under its device and control dependencies, set by the driver) and records them in
the :class:`~dfc.lower.state.Lowering`. Ops come from the registry's TF rules: nothing
here branches on an op."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Callable

import numpy as np

from ..ir.initexpr import tf_values
from ..ir.node import Node
from ..ops import REGISTRY
from ..ops.npyfile import checked_header
from .state import Lowering, safe


def const(L: Lowering, n: Node) -> None:
    pass  # made where it is used, in the consumer's dtype (Lowering.arg)


def task(L: Lowering, n: Node) -> None:
    raise ValueError(f"cannot lower an unexpanded task node ({n.name})")


def variable(L: Lowering, n: Node) -> None:
    """A resource variable on its owner, initialised there: the client ships no tile."""
    tf, v = L.tf, n.data
    dtype = L.dtype(n.dtype)
    if v.init == "constant":
        initial = tf.fill(list(n.shape), L.constant(v.value, dtype)) if n.shape else L.constant(v.value, dtype)
    elif v.init == "random":
        t = v.tile
        coords = L.random.tile_indices(t.tiling, t.tile, t.index, t.grid)
        initial = L.random.generate(v.random.dist, asdict(v.random), coords, t.array_shape, n.shape, dtype)
    elif v.init == "expr":
        t = v.tile
        coords = L.random.tile_indices(t.tiling, t.tile, t.index, t.grid)
        initial = tf_values(tf, v.expr, coords, v.names, L.facts.params, n.shape, dtype)
    elif v.init == "copy":
        initial = tf.identity(L.vars[v.source_tile()].initial_value)
    elif v.init == "file":
        initial = read_npy(L, n, dtype)
    else:
        raise ValueError(f"unknown init {v.init!r}")
    L.vars[n.name] = tf.compat.v1.Variable(initial, name=safe(n.name), use_resource=True, trainable=False)


def read_npy(L: Lowering, n: Node, dtype):
    """Read this tile from a .npy file on the owner: the client reads only the header
    (and checks the file again: it may have changed since validation). A block tile
    reads only its band of rows (the file is C-ordered, so they are one byte range);
    a cyclic tile, or an untiled array, the whole data."""
    tf, file, t = L.tf, n.data.file, n.data.tile
    offset = checked_header(file, t.array_shape, n.dtype, n.pos).offset
    shape, index, tile, grid = list(t.array_shape), t.index, t.tile, t.grid
    row = math.prod(shape[1:]) * np.dtype(n.dtype).itemsize
    first, count = 0, (shape[0] if shape else 1)
    if t.tiling == "block" and index and grid[0] > 1:
        first, count = index[0] * tile[0], tile[0]
        index, grid = (0, *index[1:]), (1, *grid[1:])
    start, length = offset + first * row, count * row
    size = offset + shape[0] * row if shape else offset + row
    band = tf.data.experimental.get_single_element(
        tf.data.FixedLengthRecordDataset(
            file, record_bytes=length, header_bytes=start, footer_bytes=size - start - length
        )
    )
    part = tf.reshape(tf.io.decode_raw(band, dtype), [count, *shape[1:]] if shape else [])
    return REGISTRY["take_tile"].tf(tf, part, tiling=t.tiling, index=index, tile=tile, grid=grid)


def compute(L: Lowering, n: Node) -> None:
    """The registry op's TF rule (also a reducer's ``accumulate``)."""
    out = L.apply(n, L.arg)
    L.values[n.name] = out
    L.collect(n, out)


def broadcast(L: Lowering, n: Node) -> None:
    """The reduced value, copied back to every consumer device through a second queue
    (seed 000, Fig. 5): one ``enqueue_many`` of one copy per consumer device; each
    consumer device dequeues its copy (see :func:`recv`)."""
    tf = L.tf
    compute(L, n)
    sends = [s for s in L.g.successors(n.name) if L.node(s).kind == "send"]
    if not sends:
        return
    value = L.values[n.name]
    name = safe(f"{L.facts.name}/{n.data.queue}/broadcast/{n.name}")
    with L.outside_loop():
        queue = tf.queue.FIFOQueue(
            len(sends), [value.dtype], shapes=[list(n.shape)], shared_name=name, name=safe(f"queue/broadcast/{n.name}")
        )
    L.broadcasts[n.name] = queue
    L.collect(n, queue.enqueue_many([tf.stack([value] * len(sends))]))


#: TensorFlow's collective merge op for each reduction.
MERGE = {"sum": "Add", "prod": "Mul", "max": "Max", "min": "Min"}


def allreduce(L: Lowering, n: Node) -> None:
    """This device's part of an all-reduce: its own partial in, the reduction of every
    member's out (TF's collective ops; the other members' partials are their nodes' inputs)."""
    from tensorflow.python.ops import collective_ops

    c = n.data
    mine = L.arg(n.inputs[c.members.index(n.device)], L.dtype(n.dtype))
    base = L.collective_keys
    op = MERGE[dict(c.kwargs)["op"]]
    out = collective_ops.all_reduce(mine, len(c.members), base + c.group_key, base + c.instance_key, op, "Id")
    L.values[n.name] = out
    L.collect(n, out)


def assign(L: Lowering, n: Node) -> None:
    tf = L.tf
    var = L.vars[n.data.target]
    value = L.arg(n.inputs[0], var.dtype)
    # the assign op itself must carry the node's control dependencies (write after
    # write, write after read). TF adds none to an op whose input was made in the same
    # control context, and Grappler may drop the ones on a no-op reshape, so the
    # reshape is made outside it and the assign is a raw op (Variable.assign takes none)
    with L.no_control_dependencies():
        value = tf.reshape(value, list(n.shape))
    done = tf.raw_ops.AssignVariableOp(resource=var.handle, value=value)
    with tf.control_dependencies([done]):
        out = var.read_value()
    L.values[n.name] = out
    L.collect(n, out)


def enqueue(L: Lowering, n: Node, value=None) -> None:
    """A push: into the queue of its dequeue's key; a ``pop:`` queue's items carry their
    place in key order, so the consumer can put them back in order."""
    tf = L.tf
    q, key = n.data.queue, n.data.key
    consumers = [L.node(s) for s in L.g.successors(n.name)]
    dq = next((c for c in consumers if c.kind == "dequeue"), None)
    if value is None:
        value = L.arg(n.inputs[0], L.dtype(n.dtype))
    if dq is not None and dq.data.key == "*":
        order = list(dq.inputs).index(n.name)
        op = L.queue(q, "*", n, True).enqueue([tf.constant(order, tf.int64), value])
    else:
        group = dq.name if dq is not None else ",".join(map(str, key))  # one TF queue per dequeue
        op = L.queue(q, group, n, False).enqueue([value])
    L.values[n.name] = op
    L.collect(n, op)


def dequeue(L: Lowering, n: Node) -> None:
    tf = L.tf
    q, key, count = n.data.queue, n.data.key, n.data.count
    item = L.node(n.inputs[0])
    if key == "*":
        index, items = L.queue(q, "*", item, True).dequeue_many(count)
        out = tf.gather(items, tf.argsort(index))
    else:
        out = L.queue(q, n.name, item, False).dequeue_many(count)
    L.values[n.name] = out
    L.collect(n, out)


def send(L: Lowering, n: Node) -> None:
    L.values[n.name] = L.arg(n.inputs[0], None)


def recv(L: Lowering, n: Node) -> None:
    """An identity on the destination device: each tensor crosses to a device once (TF
    inserts its own ``_Send``/``_Recv`` for it); a broadcast value is this device's copy."""
    origin = L.node(n.inputs[0]).inputs[0]
    if origin in L.broadcasts:
        out = L.broadcasts[origin].dequeue()
    else:
        out = L.tf.identity(L.values[n.inputs[0]])
    L.values[n.name] = out
    L.collect(n, out)


def loop(L: Lowering, n: Node) -> None:
    if n.inputs:
        L.until = L.values[n.inputs[0]]  # the loop's condition, read by the driver (lower/__init__.py)


RULES: dict[str, Callable[[Lowering, Node], None]] = {
    "const": const,
    "task": task,
    "variable": variable,
    "compute": compute,
    "reduce": compute,
    "broadcast": broadcast,
    "allreduce": allreduce,
    "assign": assign,
    "enqueue": enqueue,
    "dequeue": dequeue,
    "send": send,
    "recv": recv,
    "loop": loop,
}
