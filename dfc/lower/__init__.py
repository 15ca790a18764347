"""Lowering: the placed IR -> a ``tf.compat.v1`` graph.

Every node is built under ``tf.device`` of its placement, by its op's TF lowering in the
registry (no per-op branches here: only one rule per node *kind*).

- ``variable``: a resource variable on its owner, initialised there (counter-based random
  numbers computed on the device, a constant, a copy of another tile, or a ``.npy`` read by
  the owner): the client never ships a tile through ``feed_dict``;
- reads of a variable are made per consumer, after the consumer's control dependencies,
  so writes-after-reads keep their order;
- ``enqueue``/``dequeue``: one ``FIFOQueue`` per dequeue (a queue's key in one scope) with a ``shared_name`` on the
  shard's task; a reducer takes a key's items with ``dequeue_many`` and accumulates them;
  a queue drained by a ``pop:`` task carries (key index, item) pairs and the consumer puts
  them back in key order;
- ``send``/``recv``: an identity on the destination device, so each tensor crosses to a
  device once (TF inserts its own ``_Send``/``_Recv`` for it);
- the loop body is built once; the runtime runs it with one ``session.run`` per iteration.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from ..ir.node import Node, topo
from ..ops import REGISTRY
from ..ops import random as rnd
from ..ops.npyfile import checked_header


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


@dataclass
class Checkpointing:
    """Each task saves and restores its own state variables (see dfc/runtime/checkpoint.py):
    run ``save`` feeding ``folder`` (the slot), ``stamp`` and ``note`` (the manifest, a copy
    kept next to each owner's files); run ``restore`` with ``stamps`` (one per owner)."""

    folder: object
    stamp: object
    note: object
    save: object
    restore: object
    stamps: list
    owners: list[str]  # 'job:task', in the order of ``stamps``
    nbytes: int


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-/]", "_", name).lstrip("_./-") or "n"


class TFRandom:
    """The counter-based generator of ``dfc.ops.random``, in TF ops on the owner device."""

    def __init__(self, tf):
        self.tf = tf

    def splitmix(self, index, seed: int, stream: int):
        tf = self.tf
        u64 = lambda v: tf.constant(v, dtype=tf.uint64)  # noqa: E731
        z = tf.cast(index, tf.uint64) + u64(rnd.offset(seed, stream))
        z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, u64(30))) * u64(rnd.MIX1)
        z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, u64(27))) * u64(rnd.MIX2)
        return tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, u64(31)))

    def uniform(self, index, seed: int, stream: int = 0):
        tf = self.tf
        bits = tf.bitwise.right_shift(self.splitmix(index, seed, stream), tf.constant(11, dtype=tf.uint64))
        return tf.cast(bits, tf.float64) * (2.0 ** -53)

    def normal(self, index, seed: int, stream: int = 0):
        tf = self.tf
        u1 = self.uniform(index, seed, 2 * stream)
        u2 = self.uniform(index, seed, 2 * stream + 1)
        return tf.sqrt(-2.0 * tf.math.log1p(-u1)) * tf.cos(2.0 * math.pi * u2)

    def coords(self, a: dict):
        tf = self.tf
        if a["kind"] == "cyclic":
            return [tf.range(a["tile"][0], dtype=tf.int64) * a["grid"][0] + a["index"][0]]
        out = []
        rank = len(a["tile"])
        for d, (t, i) in enumerate(zip(a["tile"], a["index"])):
            r = tf.range(t, dtype=tf.int64) + i * t
            out.append(tf.reshape(r, [-1 if k == d else 1 for k in range(rank)]))
        return out

    def tile(self, a: dict, shape: tuple, dtype):
        tf = self.tf
        coords = self.coords(a)
        dims = a["array_shape"]
        seed = int(a.get("seed", 0))
        if a["dist"] == "spd":
            i, j = coords
            n = dims[0]
            u = 0.5 * (self.uniform(i * n + j, seed) + self.uniform(j * n + i, seed))
            out = u + tf.where(tf.equal(i, j), tf.constant(rnd.spd_diagonal(a, n), tf.float64), tf.constant(0.0, tf.float64))
        else:
            flat = tf.zeros([], tf.int64)
            for c, n in zip(coords, dims):
                flat = flat * n + c
            one = self.uniform if a["dist"] == "uniform" else self.normal
            # as dfc.ops.random.generate: the (complex) value first, then one affine map
            out = tf.complex(one(flat, seed, 0), one(flat, seed, 1)) if dtype.is_complex else one(flat, seed, 0)
            if a["dist"] == "uniform":
                offset, factor = float(a.get("low", 0.0)), float(a.get("high", 1.0)) - float(a.get("low", 0.0))
            else:
                offset, factor = float(a.get("mean", 0.0)), float(a.get("std", 1.0))
            out = tf.cast(offset, out.dtype) + tf.cast(factor, out.dtype) * out
        return tf.cast(tf.broadcast_to(out, shape), dtype)


class Lowering:
    def __init__(self, g: nx.DiGraph, tf):
        self.g, self.tf = g, tf
        self.spec = g.graph["spec"]
        self.values: dict[str, object] = {}
        self.vars: dict[str, object] = {}
        self.queues: dict[tuple, object] = {}
        self.broadcasts: dict[str, object] = {}
        self.random = TFRandom(tf)
        self.prologue: list = []
        self.body: list = []
        self.until = None

    def node(self, name: str) -> Node:
        return self.g.nodes[name]["node"]

    def dtype(self, name: str):
        return self.tf.as_dtype(name) if name else None

    # ------------------------------------------------------------------ values
    def arg(self, name: str, want):
        """The value of input ``name`` for a consumer that wants dtype ``want`` (or None)."""
        tf = self.tf
        n = self.node(name)
        if n.kind == "const":
            return self.constant(n.attr("value"), want)
        if n.kind == "variable":
            value = self.vars[name].read_value()
        else:
            value = self.values[name]
        if want is not None and not isinstance(value, list) and value.dtype != want:
            if want.is_complex and not value.dtype.is_complex:
                value = tf.complex(tf.cast(value, want.real_dtype), tf.zeros_like(tf.cast(value, want.real_dtype)))
            else:
                value = tf.cast(value, want)
        return value

    def constant(self, v, dtype):
        """A number in ``dtype``, converted as NumPy's ``astype`` does (0.5 -> 0 for ints)."""
        tf = self.tf
        if dtype is None:
            return tf.constant(v)
        if dtype.is_integer and not isinstance(v, int):
            return tf.cast(tf.constant(v, tf.float64), dtype)
        return tf.constant(v, dtype=dtype)

    def common_dtype(self, n: Node):
        if n.dtype and n.dtype != "bool":
            return self.dtype(n.dtype)
        kinds = [self.node(i) for i in n.inputs]
        real = [k.dtype for k in kinds if k.kind != "const" and k.dtype and k.dtype != "bool"]
        if real:
            return self.dtype(max(real, key=lambda d: (d.startswith("complex"), np.dtype(d).itemsize)))
        return self.tf.float64

    # ------------------------------------------------------------------ kinds
    def lower(self, n: Node) -> None:
        tf = self.tf
        control = [self.op_of(a) for a in n.after if a in self.values or a in self.vars]
        control = [c for c in control if c is not None]
        with tf.device(n.device or None), tf.control_dependencies(control):
            getattr(self, f"lower_{n.kind}")(n)

    def op_of(self, name: str):
        if name in self.vars:  # variables are initialised by a run of their own, first
            return None
        v = self.values.get(name)
        if isinstance(v, list):
            return v[0].op if v else None
        return getattr(v, "op", v)

    def lower_const(self, n: Node) -> None:
        pass

    def lower_task(self, n: Node) -> None:
        raise ValueError(f"cannot lower an unexpanded task node ({n.name})")

    def lower_variable(self, n: Node) -> None:
        tf = self.tf
        a = dict(n.attrs)
        dtype = self.dtype(n.dtype)
        kind = a["init"]
        if kind == "constant":
            initial = tf.fill(list(n.shape), self.constant(a["value"], dtype)) if n.shape \
                else self.constant(a["value"], dtype)
        elif kind == "random":
            initial = self.random.tile(a, n.shape, dtype)
        elif kind == "copy":
            source = f"{a['source']}[{','.join(map(str, a['index']))}]"
            initial = tf.identity(self.vars[source].initial_value)
        elif kind == "file":
            initial = self.read_npy(a, n, dtype)
        else:
            raise ValueError(f"unknown init {kind!r}")
        var = tf.compat.v1.Variable(initial, name=_safe(n.name), use_resource=True, trainable=False)
        self.vars[n.name] = var

    def read_npy(self, a: dict, n: Node, dtype):
        """Read this tile from a .npy file on the owner: the client reads only the header
        (and checks the file again: it may have changed since validation). A block tile
        reads only its band of rows (the file is C-ordered, so they are one byte range);
        a cyclic tile, or an untiled array, the whole data."""
        tf = self.tf
        offset = checked_header(a["file"], a["array_shape"], n.dtype, n.pos).offset
        shape, index, tile, grid = list(a["array_shape"]), a["index"], a["tile"], a["grid"]
        row = math.prod(shape[1:]) * np.dtype(n.dtype).itemsize
        first, count = 0, (shape[0] if shape else 1)
        if a["kind"] == "block" and index and grid[0] > 1:
            first, count = index[0] * tile[0], tile[0]
            index, grid = (0, *index[1:]), (1, *grid[1:])
        start, length = offset + first * row, count * row
        size = offset + shape[0] * row if shape else offset + row
        band = tf.data.experimental.get_single_element(tf.data.FixedLengthRecordDataset(
            a["file"], record_bytes=length, header_bytes=start, footer_bytes=size - start - length))
        part = tf.reshape(tf.io.decode_raw(band, dtype), [count, *shape[1:]] if shape else [])
        return REGISTRY["take_tile"].tf(tf, part, tiling=a["kind"], index=index, tile=tile, grid=grid)

    def lower_compute(self, n: Node) -> None:
        tf = self.tf
        op = REGISTRY[n.op]
        want = self.common_dtype(n) if op.cast_inputs else None
        args = [self.arg(i, want) for i in n.inputs]
        kwargs = {k: v for k, v in n.attrs if k in op.kwargs}
        out = op.tf(tf, *args, **kwargs)
        if n.dtype and n.dtype != "bool" and out.dtype != self.dtype(n.dtype):
            out = tf.cast(out, self.dtype(n.dtype))
        self.values[n.name] = out
        self.collect(n, out)

    lower_reduce = lower_compute

    def lower_broadcast(self, n: Node) -> None:
        """The reduced value, copied back to every consumer device through a second queue
        (seed 000, Fig. 5): one ``enqueue_many`` of one copy per consumer device; each
        consumer device dequeues its copy (see :meth:`lower_recv`)."""
        tf = self.tf
        self.lower_compute(n)
        sends = [s for s in self.g.successors(n.name) if self.node(s).kind == "send"]
        if not sends:
            return
        value = self.values[n.name]
        name = _safe(f"{self.spec.name}/{n.attr('queue')}/broadcast/{n.name}")
        queue = tf.queue.FIFOQueue(len(sends), [value.dtype], shapes=[list(n.shape)], shared_name=name,
                                   name=_safe(f"queue/broadcast/{n.name}"))
        self.broadcasts[n.name] = queue
        self.collect(n, queue.enqueue_many([tf.stack([value] * len(sends))]))

    def lower_assign(self, n: Node) -> None:
        var = self.vars[n.attr("target")]
        tf = self.tf
        value = self.arg(n.inputs[0], var.dtype)
        # the assign op itself must carry the node's control dependencies (write after
        # write, write after read). TF adds none to an op whose input was made in the same
        # control context, and Grappler may drop the ones on a no-op reshape, so the
        # reshape is made outside it and the assign is a raw op (Variable.assign takes none).
        # control_dependencies(None) also leaves any control-flow context: assigns are never
        # lowered inside the dynamic schedule's while_loop (run_instance makes none)
        with tf.control_dependencies(None):
            value = tf.reshape(value, list(n.shape))
        assign = tf.raw_ops.AssignVariableOp(resource=var.handle, value=value)
        with tf.control_dependencies([assign]):
            out = var.read_value()
        self.values[n.name] = out
        self.collect(n, out)

    def queue(self, q: str, key, n: Node, with_index: bool):
        tf = self.tf
        spec_q = self.spec.queues[q]
        ident = (q, key)
        if ident not in self.queues:
            dtypes = [tf.int64, self.dtype(n.dtype)] if with_index else [self.dtype(n.dtype)]
            shapes = [[], list(n.shape)] if with_index else [list(n.shape)]
            name = _safe(f"{self.spec.name}/{q}[{key}]")
            with tf.device(n.device or None):
                self.queues[ident] = tf.queue.FIFOQueue(spec_q.capacity, dtypes, shapes=shapes, shared_name=name,
                                                        name=_safe(f"queue/{q}[{key}]"))
        return self.queues[ident]

    def lower_enqueue(self, n: Node, value=None) -> None:
        tf = self.tf
        q, key = n.attr("queue"), n.attr("key")
        consumers = [self.node(s) for s in self.g.successors(n.name)]
        dq = next((c for c in consumers if c.kind == "dequeue"), None)
        pop = dq is not None and dq.attr("key") == "*"
        if value is None:
            value = self.arg(n.inputs[0], self.dtype(n.dtype))
        if pop:
            order = self.pop_index(dq, n.name)
            op = self.queue(q, "*", n, True).enqueue([tf.constant(order, tf.int64), value])
        else:
            group = dq.name if dq is not None else ",".join(map(str, key))  # one TF queue per dequeue
            op = self.queue(q, group, n, False).enqueue([value])
        self.values[n.name] = op
        self.collect(n, op)

    def pop_index(self, dq: Node, enqueue: str) -> int:
        return list(dq.inputs).index(enqueue)

    def lower_dequeue(self, n: Node) -> None:
        tf = self.tf
        q, key, count = n.attr("queue"), n.attr("key"), n.attr("count")
        item = self.node(n.inputs[0])
        if key == "*":
            index, items = self.queue(q, "*", item, True).dequeue_many(count)
            out = tf.gather(items, tf.argsort(index))
        else:
            out = self.queue(q, n.name, item, False).dequeue_many(count)
        self.values[n.name] = out
        self.collect(n, out)

    def lower_send(self, n: Node) -> None:
        self.values[n.name] = self.arg(n.inputs[0], None)

    def lower_recv(self, n: Node) -> None:
        origin = self.node(n.inputs[0]).inputs[0]
        if origin in self.broadcasts:  # this device's copy of a broadcast value
            out = self.broadcasts[origin].dequeue()
        else:
            out = self.tf.identity(self.values[n.inputs[0]])
        self.values[n.name] = out
        self.collect(n, out)

    def lower_loop(self, n: Node) -> None:
        if n.inputs:
            self.until = self.values[n.inputs[0]]

    # ------------------------------------------------------------------ dynamic schedule
    def instances(self) -> dict[str, list[Node]]:
        """Nodes of each instance of a `schedule: dynamic` task, in topological order (with
        the transfers the static placement put around them, which the dynamic lowering
        replaces)."""
        out: dict[str, list[Node]] = {}
        of: dict[str, str] = {}
        for n in topo(self.g):
            inst = n.attr("instance")
            if not inst and n.kind in ("send", "recv") and n.inputs and n.inputs[0] in of:
                inst = of[n.inputs[0]]
            if inst:
                of[n.name] = inst
                out.setdefault(inst, []).append(n)
        return out

    def resolve(self, name: str, local: dict, want):
        """An input inside a dynamic instance: its own value, a variable read where the
        instance runs, or a value computed outside (TF moves it)."""
        tf = self.tf
        n = self.node(name)
        while n.kind in ("send", "recv"):
            name = n.inputs[0]
            n = self.node(name)
        if name in local:
            value = local[name]
            if want is not None and value.dtype != want:
                value = tf.cast(value, want)
            return value
        return self.arg(name, want)

    def run_instance(self, nodes_: list[Node]):
        tf = self.tf
        local: dict[str, object] = {}
        last = []
        for n in nodes_:
            if n.kind == "compute":
                op = REGISTRY[n.op]
                want = self.common_dtype(n) if op.cast_inputs else None
                args = [self.resolve(i, local, want) for i in n.inputs]
                out = op.tf(tf, *args, **{k: v for k, v in n.attrs if k in op.kwargs})
                if n.dtype and n.dtype != "bool" and out.dtype != self.dtype(n.dtype):
                    out = tf.cast(out, self.dtype(n.dtype))
                local[n.name] = out
            elif n.kind == "enqueue":
                before = len(self.prologue)
                self.lower_enqueue(n, self.resolve(n.inputs[0], local, self.dtype(n.dtype)))
                last.append(self.prologue.pop() if len(self.prologue) > before else self.values[n.name])
        with tf.control_dependencies(last):
            return tf.constant(0, tf.int32)

    def lower_dynamic(self, instances: dict[str, list[Node]]) -> None:
        """Workers pull instance ids from a shared work queue until a stop marker."""
        tf = self.tf
        by_task: dict[str, list[str]] = {}
        for inst, ns in instances.items():
            by_task.setdefault(ns[0].group, []).append(inst)
        for task, insts in by_task.items():
            first = self.instance_nodes[insts[0]][0]
            devices = sorted({d for i in insts for n in self.instance_nodes[i] if n.kind == "compute"
                              for d in (n.allowed or (n.device,))}) or [first.device]
            with tf.device(devices[0]):
                work = tf.queue.FIFOQueue(len(insts) + len(devices), [tf.int64], shapes=[[]],
                                          shared_name=_safe(f"{self.spec.name}/work/{task}"),
                                          name=_safe(f"queue/work/{task}"))
                fill = work.enqueue_many([tf.constant(list(range(len(insts))) + [-1] * len(devices), tf.int64)])
            self.prologue.append(fill)
            for d in devices:
                with tf.device(d):
                    branches = [lambda i=i, d=d: self._on(d, i) for i in insts]

                    def body(index, branches=branches):
                        done = tf.switch_case(tf.cast(index, tf.int32), branches)
                        with tf.control_dependencies([done]):
                            return work.dequeue()

                    loop = tf.compat.v1.while_loop(lambda index: index >= 0, body, [work.dequeue()],
                                                   parallel_iterations=1, name=_safe(f"dynamic/{task}"))
                self.prologue.append(loop.op)

    def _on(self, device: str, inst: str):
        with self.tf.device(device):
            return self.run_instance(self.instance_nodes[inst])

    def collect(self, n: Node, out) -> None:
        """Remember the op to *run* (never a tensor: running a tensor fetches its value)."""
        (self.body if n.scope == "loop" else self.prologue).append(getattr(out, "op", out))

    # ------------------------------------------------------------------ driver
    def build(self) -> Lowered:
        tf = self.tf
        graph = tf.Graph()
        self.instance_nodes = self.instances()
        dynamic = {n.name for ns in self.instance_nodes.values() for n in ns}
        with graph.as_default():
            for n in topo(self.g):
                if n.name not in dynamic:
                    self.lower(n)
            if self.instance_nodes:
                self.lower_dynamic(self.instance_nodes)
            init = tf.compat.v1.variables_initializer(list(self.vars.values()))
            prologue = [tf.group(*self.prologue, name="dfc_prologue")] if self.prologue else []
            body = [tf.group(*self.body, name="dfc_body")] if self.body else []
            reads, files, writes = {}, {}, []
            folder = tf.compat.v1.placeholder(tf.string, [], name="dfc_dump_dir")
            for i, (name, var) in enumerate(self.vars.items()):
                with tf.device(self.node(name).device or None):
                    reads[name] = var.read_value()
                    files[name] = f"{i}.tensor"
                    writes.append(tf.io.write_file(tf.strings.join([folder, files[name]], "/"),
                                                   tf.io.serialize_tensor(reads[name])))
            dump = (folder, tf.group(*writes, name="dfc_dump"), files)
            loop = self.g.nodes["loop"]["node"] if "loop" in self.g else None
            checkpoint = self.checkpointing() if loop is not None and loop.attr("checkpoint_every") else None
        return Lowered(graph, init, prologue, body, self.until, reads,
                       loop.attr("max") if loop else 0, self.vars, dump, checkpoint)

    def checkpointing(self) -> Checkpointing:
        """Save and restore ops for the variables the program writes, on their owners' CPUs."""
        from ..ir.devices import device_name, task_of
        from ..runtime.checkpoint import state_variables

        tf = self.tf
        string = lambda name: tf.compat.v1.placeholder(tf.string, [], name=name)  # noqa: E731
        folder, stamp, note = string("dfc_checkpoint_dir"), string("dfc_checkpoint_stamp"), string("dfc_checkpoint_note")
        by_task: dict[tuple, list[str]] = {}
        for name in state_variables(self.g):
            by_task.setdefault(task_of(self.node(name).device), []).append(name)
        saves, assigns, stamps, owners = [], [], [], []
        for (job, task), names in sorted(by_task.items()):
            keys = [*names, "dfc:stamp"]
            values = []
            for name in names:
                with tf.device(self.node(name).device):
                    values.append(self.vars[name].read_value())
            with tf.device(device_name(job, task)):
                prefix = tf.strings.join([folder, f"{job}-{task}"], "/")
                # WriteFile makes the folder on the owner's machine, which SaveV2 does not
                copy = tf.io.write_file(tf.strings.join([prefix, ".json"]), note)
                with tf.control_dependencies([copy]):
                    saves.append(tf.raw_ops.SaveV2(prefix=prefix, tensor_names=keys, shape_and_slices=[""] * len(keys),
                                                   tensors=[*values, stamp]))
                loaded = tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=keys, shape_and_slices=[""] * len(keys),
                                              dtypes=[*(self.vars[n].dtype for n in names), tf.string])
            for name, value in zip(names, loaded):
                with tf.device(self.node(name).device):
                    assigns.append(tf.raw_ops.AssignVariableOp(resource=self.vars[name].handle, value=value))
            stamps.append(loaded[-1])
            owners.append(f"{job}:{task}")
        nbytes = sum(self.node(n).out_bytes for ns in by_task.values() for n in ns)
        return Checkpointing(folder, stamp, note, tf.group(*saves, name="dfc_checkpoint_save"),
                             tf.group(*assigns, name="dfc_checkpoint_restore"), stamps, owners, nbytes)


def lower(g: nx.DiGraph):
    """Build the TF graph of a placed, comm-expanded IR. Imports TensorFlow."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    return Lowering(g, tf).build()
