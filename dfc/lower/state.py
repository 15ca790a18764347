"""The state of one lowering: the TF values made so far, per IR node, and the helpers
every rule shares (an input in the dtype its consumer wants, a registry op applied, a
queue by its key, the ops to run)."""

from __future__ import annotations

import re
import secrets
from contextlib import contextmanager
from typing import Any

import networkx as nx
import numpy as np

from ..ir.node import Node
from ..ops import REGISTRY
from ..ops.random import TFRandom


def safe(name: str) -> str:
    """A TF op or queue name for an IR name."""
    return re.sub(r"[^A-Za-z0-9_.\-/]", "_", name).lstrip("_./-") or "n"


class Lowering:
    def __init__(self, g: nx.DiGraph, tf):
        self.g, self.tf = g, tf
        self.facts = g.graph["facts"]
        # TF objects (typed Any: TensorFlow is imported lazily and has no stubs)
        self.values: dict[str, Any] = {}  # node -> its tensor (or op)
        self.vars: dict[str, Any] = {}  # variable node -> tf.Variable
        self.queues: dict[tuple, Any] = {}  # (queue, key) -> tf.queue.FIFOQueue
        self.broadcasts: dict[str, Any] = {}  # broadcast node -> the queue of its copies
        self.random = TFRandom(tf)
        self.prologue: list = []  # ops run once, before the loop
        self.body: list = []  # ops run every iteration
        self.until: Any = None
        self.done: Any = None  # the placeholder: iterations run before this run of the loop
        self.iteration: Any = None  # the loop's iteration number, while its body is built
        # TF's collective group and instance keys are the plan's plus a number of this
        # lowering's: servers remember a key's members and shape across sessions (a `dfc
        # serve` server outlives a run), so two runs must not share keys
        self.collective_keys = 1 + secrets.randbelow(1 << 30)

    def node(self, name: str) -> Node:
        return self.g.nodes[name]["node"]

    def dtype(self, name: str):
        return self.tf.as_dtype(name) if name else None

    def arg(self, name: str, want):
        """The value of input ``name`` for a consumer that wants dtype ``want`` (or None)."""
        n = self.node(name)
        if n.kind == "const":
            return self.constant(n.data.value, want)
        if n.kind == "variable":
            value = self.vars[name].read_value()
        else:
            value = self.values[name]
        return self.cast(value, want)

    def cast(self, value, want):
        tf = self.tf
        if want is None or isinstance(value, list) or value.dtype == want:
            return value
        if want.is_complex and not value.dtype.is_complex:
            real = tf.cast(value, want.real_dtype)
            return tf.complex(real, tf.zeros_like(real))
        return tf.cast(value, want)

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

    def apply(self, n: Node, value_of) -> object:
        """``n``'s registry op on its inputs (``value_of(input, dtype)`` gives each), in ``n``'s dtype."""
        op = REGISTRY[n.op]
        want = self.common_dtype(n) if op.cast_inputs else None
        args = (value_of(i, want if k >= op.conditions else None) for k, i in enumerate(n.inputs))
        kwargs = dict(n.data.kwargs)
        if op.iteration and "iteration" not in kwargs:  # in the while_loop: this iteration's number
            kwargs["iteration"] = self.iteration + 1
        out = op.tf(self.tf, *args, **kwargs)
        if n.dtype and n.dtype != "bool" and out.dtype != self.dtype(n.dtype):
            out = self.tf.cast(out, self.dtype(n.dtype))
        return out

    def queue(self, q: str, key, n: Node, with_index: bool):
        """The FIFO queue of one key of ``q`` (one per dequeue), on ``n``'s device, shared by name."""
        tf = self.tf
        ident = (q, key)
        if ident not in self.queues:
            dtypes = [tf.int64, self.dtype(n.dtype)] if with_index else [self.dtype(n.dtype)]
            shapes = [[], list(n.shape)] if with_index else [list(n.shape)]
            name = safe(f"{self.facts.name}/{q}[{key}]")
            with self.outside_loop(), tf.device(n.device or None):
                self.queues[ident] = tf.queue.FIFOQueue(
                    self.facts.queues[q].capacity,
                    dtypes,
                    shapes=shapes,
                    shared_name=name,
                    name=safe(f"queue/{q}[{key}]"),
                )
        return self.queues[ident]

    @contextmanager
    def outside_loop(self):
        """Ops made in this block belong to no loop and carry no control dependencies: a
        queue is made once, outside the loop that uses it every iteration."""
        graph = self.tf.compat.v1.get_default_graph()
        with self.tf.control_dependencies(None):  # clears the control-flow context too
            graph._set_control_flow_context(None)
            yield

    @contextmanager
    def no_control_dependencies(self):
        """Ops made in this block carry none of the enclosing control dependencies, but stay
        in the loop (if any) they are made in."""
        graph = self.tf.compat.v1.get_default_graph()
        context = graph._get_control_flow_context()
        with self.tf.control_dependencies(None):
            graph._set_control_flow_context(context)
            yield

    def op_of(self, name: str):
        """The op that stands for node ``name`` in a control dependency (None for a variable)."""
        if name in self.vars:  # variables are initialised by a run of their own, first
            return None
        v = self.values.get(name)
        if isinstance(v, list):
            return v[0].op if v else None
        return getattr(v, "op", v)

    def collect(self, n: Node, out) -> None:
        """Remember the op to *run* (never a tensor: running a tensor fetches its value)."""
        (self.body if n.scope == "loop" else self.prologue).append(getattr(out, "op", out))
