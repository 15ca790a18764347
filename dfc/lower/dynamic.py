"""The dynamic schedule (``schedule: dynamic``): a task's instances are not pinned at
compile time; the devices allowed to run them pull instance numbers from a shared work
queue until a stop marker. Each device runs a ``while_loop`` whose body is a
``switch_case`` over the instances, each branch the instance's nodes built on that device
(the same registry rules as the static lowering, through :meth:`Lowering.apply`)."""

from __future__ import annotations

from ..ir.node import Node, topo
from .rules import enqueue
from .state import Lowering, safe


def instances(L: Lowering) -> dict[str, list[Node]]:
    """Nodes of each instance of a `schedule: dynamic` task, in topological order (with
    the transfers the static placement put around them, which the dynamic lowering
    replaces)."""
    out: dict[str, list[Node]] = {}
    of: dict[str, str] = {}
    for n in topo(L.g):
        inst = getattr(n.data, "instance", None)
        if not inst and n.kind in ("send", "recv") and n.inputs and n.inputs[0] in of:
            inst = of[n.inputs[0]]
        if inst:
            of[n.name] = inst
            out.setdefault(inst, []).append(n)
    return out


def _resolve(L: Lowering, name: str, local: dict, want):
    """An input inside a dynamic instance: its own value, a variable read where the
    instance runs, or a value computed outside (TF moves it)."""
    n = L.node(name)
    while n.kind in ("send", "recv"):
        name = n.inputs[0]
        n = L.node(name)
    if name in local:
        return L.cast(local[name], want)
    return L.arg(name, want)


def _run_instance(L: Lowering, nodes_: list[Node]):
    tf = L.tf
    local: dict[str, object] = {}
    last = []
    for n in nodes_:
        if n.kind == "compute":
            local[n.name] = L.apply(n, lambda i, want: _resolve(L, i, local, want))
        elif n.kind == "enqueue":
            before = len(L.prologue)
            enqueue(L, n, _resolve(L, n.inputs[0], local, L.dtype(n.dtype)))
            last.append(L.prologue.pop() if len(L.prologue) > before else L.values[n.name])
    with tf.control_dependencies(last):
        return tf.constant(0, tf.int32)


def lower_dynamic(L: Lowering, by_instance: dict[str, list[Node]]) -> None:
    """Workers pull instance ids from a shared work queue until a stop marker."""
    tf = L.tf
    by_task: dict[str, list[str]] = {}
    for inst, ns in by_instance.items():
        by_task.setdefault(ns[0].group, []).append(inst)
    for task, insts in by_task.items():
        first = by_instance[insts[0]][0]
        devices = sorted(
            {d for i in insts for n in by_instance[i] if n.kind == "compute" for d in (n.allowed or (n.device,))}
        ) or [first.device]
        with tf.device(devices[0]):
            work = tf.queue.FIFOQueue(
                len(insts) + len(devices),
                [tf.int64],
                shapes=[[]],
                shared_name=safe(f"{L.facts.name}/work/{task}"),
                name=safe(f"queue/work/{task}"),
            )
            fill = work.enqueue_many([tf.constant(list(range(len(insts))) + [-1] * len(devices), tf.int64)])
        L.prologue.append(fill)
        for d in devices:
            with tf.device(d):
                branches = [lambda i=i, d=d: _on(L, d, by_instance[i]) for i in insts]

                def body(index, branches=branches):
                    done = tf.switch_case(tf.cast(index, tf.int32), branches)
                    with tf.control_dependencies([done]):
                        return work.dequeue()

                loop = tf.compat.v1.while_loop(
                    lambda index: index >= 0,
                    body,
                    [work.dequeue()],
                    parallel_iterations=1,
                    name=safe(f"dynamic/{task}"),
                )
            L.prologue.append(loop.op)


def _on(L: Lowering, device: str, nodes_: list[Node]):
    with L.tf.device(device):
        return _run_instance(L, nodes_)
