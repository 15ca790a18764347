"""The NumPy engine: executes the (placed or unplaced) IR in one process with the op
registry's NumPy references. It is the reference every other engine is tested against.

Semantics it defines:

- the nodes of scope ``""`` run once, in topological order (ties by name);
- then the ``"loop"`` nodes run in topological order, once per iteration, until the
  ``until`` node is true (checked after each iteration) or ``max`` iterations;
- a ``variable`` holds storage; reading it gives its current value; ``assign`` writes it;
- queues deliver items in key order; ``send``/``recv`` move values unchanged.
"""

from __future__ import annotations

import mmap
import time
from dataclasses import asdict, dataclass, field
from typing import Mapping

import networkx as nx
import numpy as np

from ..ops import REGISTRY, npyfile
from ..ops import random as rnd
from .initexpr import numpy_values
from .node import Node, topo


@dataclass
class Result:
    arrays: dict[str, np.ndarray]  # every array, assembled from its tiles
    scalars: dict[str, float]
    iterations_run: int  # in all, with those before the checkpoint a run resumed from
    seconds: dict[str, float] = field(default_factory=dict)
    resumed_at: int = 0  # the iteration of the checkpoint this run resumed from
    checkpoints: dict | None = None  # what the run's checkpoints cost (Checkpointer.report)


def init_tile(node: Node, initial: dict[str, np.ndarray], params: Mapping) -> np.ndarray:
    """The initial value of one tile (or scalar) variable."""
    v, dtype = node.data, node.dtype
    if v.init == "constant":
        return np.full(node.shape, v.value, dtype=dtype)
    if v.init == "copy":  # the source tile's initial value (whatever route its data takes)
        return initial[v.source_tile()].copy()
    t = v.tile
    coords = rnd.tile_indices(t.array_shape, t.tiling, t.tile, t.index, t.grid)
    if v.init == "random":
        return rnd.generate(v.random.dist, asdict(v.random), coords, t.array_shape, dtype)
    if v.init == "expr":
        return numpy_values(v.expr, coords, v.names, params, node.shape, dtype)
    if v.init == "file":
        whole = npyfile.load(v.file, t.array_shape, dtype, node.pos)
        return np.array(
            REGISTRY["take_tile"].numpy(whole, tiling=t.tiling, index=t.index, tile=t.tile, grid=t.grid), dtype=dtype
        )
    raise ValueError(f"unknown init {v.init!r}")


class NumpyEngine:
    def __init__(self, g: nx.DiGraph):
        self.g = g
        self.storage: dict[str, np.ndarray] = {}
        self.initial: dict[str, np.ndarray] = {}
        self.values: dict[str, object] = {}
        self.iteration = 0  # the loop's, while its body runs

    def val(self, name: str):
        node = self.g.nodes[name]["node"]
        return self.storage[name] if node.kind == "variable" else self.values[name]

    def numbers_in_dtype(self, node: Node, args: list) -> list:
        """A number takes the dtype it meets: 2.5 in an int64 expression is 2 (as in TF)."""
        if node.dtype not in ("", "bool") and np.dtype(node.dtype).kind not in "iu":
            return args  # the common case, a float or complex result: NumPy's own rule agrees
        number = [self.g.nodes[i]["node"].dtype == "" for i in node.inputs]  # consts, and sums of them
        dtype = (
            node.dtype
            if node.dtype not in ("", "bool")
            else next((np.asarray(a).dtype for a, n in zip(args, number) if not n), None)
        )
        if dtype is None or np.dtype(dtype).kind not in "iu":
            return args
        return [np.asarray(a).astype(dtype)[()] if n else a for a, n in zip(args, number)]

    def step(self, node: Node) -> None:
        kind = node.kind
        if kind == "const":
            self.values[node.name] = node.data.value
        elif kind == "variable":
            value = init_tile(node, self.initial, self.g.graph["facts"].params)
            self.initial[node.name] = value
            self.storage[node.name] = value.copy()
        elif kind in ("compute", "reduce", "broadcast", "allreduce"):  # an all-reduce: of every member's partial
            args = [self.val(i) for i in node.inputs]
            op = REGISTRY[node.op]
            if op.cast_inputs:
                args = self.numbers_in_dtype(node, args)
            kwargs = dict(node.data.kwargs)
            if op.iteration and "iteration" not in kwargs:  # in the loop: this iteration's number
                kwargs["iteration"] = self.iteration + 1
            with np.errstate(all="ignore"):  # a NaN or inf is the verifier's to report, not a warning's
                out = op.numpy(*args, **kwargs)
            if node.dtype and node.dtype != "bool":
                out = np.asarray(out, dtype=node.dtype)
            self.values[node.name] = out
        elif kind == "assign":
            target = node.data.target
            value = np.array(self.val(node.inputs[0]), dtype=node.dtype).reshape(node.shape)
            self.storage[target] = value
            self.values[node.name] = value
        elif kind in ("enqueue", "send", "recv"):
            self.values[node.name] = self.val(node.inputs[0])
        elif kind == "dequeue":
            self.values[node.name] = [self.val(i) for i in node.inputs]
        elif kind == "loop":
            pass
        else:
            raise ValueError(f"the NumPy engine cannot run a {kind!r} node ({node.name}); expand first")

    def run(self, max_iterations: int | None = None) -> Result:
        t0 = time.perf_counter()
        prologue, body = topo(self.g, ""), topo(self.g, "loop")
        for node in prologue:  # variables depend only on variables: initialise them first
            if node.kind == "variable":
                self.step(node)
        t1 = time.perf_counter()
        for node in prologue:
            if node.kind != "variable":
                self.step(node)
        iterations = self.g.graph["facts"].unrolled  # an unrolled loop ran in the prologue
        loop = self.g.nodes["loop"]["node"] if "loop" in self.g else None
        if loop is not None:
            limit = loop.data.max if max_iterations is None else min(max_iterations, loop.data.max)
            until = loop.data.until
            while iterations < limit:
                self.iteration = iterations
                for node in body:
                    self.step(node)
                iterations += 1
                if until and bool(self.values[until]):
                    break
        t2 = time.perf_counter()
        return Result(self.arrays(), self.scalars(), iterations, {"init": t1 - t0, "compute": t2 - t1})

    def arrays(self) -> dict[str, np.ndarray]:
        return gather(self.g, self.storage)

    def scalars(self) -> dict[str, float]:
        return {
            n.data.scalar: self.storage[n.name].item()
            for n in topo(self.g, "")
            if n.kind == "variable" and n.data.scalar
        }


def gather(g: nx.DiGraph, storage: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Whole arrays from their tiles."""
    tiles: dict[str, list[Node]] = {}
    for name in sorted(g.nodes):
        n = g.nodes[name]["node"]
        if n.kind == "variable" and n.data.tile is not None:
            tiles.setdefault(n.data.tile.array, []).append(n)
    out = {}
    for array, nodes_ in tiles.items():
        nodes_.sort(key=lambda n: n.data.tile.index)
        values = [storage[n.name] for n in nodes_]
        first = nodes_[0]
        if len(values) == 1:
            out[array] = values[0]
        elif first.data.tile.tiling == "cyclic":
            out[array] = REGISTRY["interleave"].numpy(*values)
        else:  # each tile copied into its block (what ``assemble`` computes)
            grid, shape = first.data.tile.grid, values[0].shape
            whole = populated((*(n * k for n, k in zip(shape, grid)),), values[0].dtype)
            for idx, tile in zip(np.ndindex(*grid), values):
                whole[tuple(slice(i * n, (i + 1) * n) for i, n in zip(idx, shape))] = tile
            out[array] = whole
    return out


#: Arrays of at least this many bytes are made by :func:`populated`.
POPULATE_BYTES = 1 << 20


def populated(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array whose memory the kernel maps in one call (``MAP_POPULATE``)
    rather than one page fault per 4 KiB page as it is first written: 0.05 s instead of
    0.3 s for 128 MB on the virtual machines dfc was measured on. Small arrays (and
    systems without ``MAP_POPULATE``) get ``np.empty``."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    flag = getattr(mmap, "MAP_POPULATE", 0)
    if nbytes < POPULATE_BYTES or not flag:
        return np.empty(shape, dtype)
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | flag)
    return np.frombuffer(buffer, dtype).reshape(shape)


def run_numpy(g: nx.DiGraph, max_iterations: int | None = None) -> Result:
    return NumpyEngine(g).run(max_iterations)
