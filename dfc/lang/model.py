"""The spec after validation: frozen dataclasses, sizes evaluated to exact integers,
expressions parsed, every object carrying its position in the YAML.

A field that comes from a YAML key says so in its metadata (``yaml=...``); the test
``tests/unit/test_schema_drift.py`` fails when these keys and the JSON Schema's
properties drift apart.
"""

from __future__ import annotations

import ast
import functools
import itertools
import math
from dataclasses import dataclass, field
from typing import Mapping

from ..diagnostics import Pos
from ..ops.types import ITEMSIZE, TensorType
from .expr import Expr, ExprError, evaluate
from .yamlsrc import SourceMap


def key(name: str, default=None, **kw):
    """A field read from YAML key ``name``."""
    if "default_factory" in kw:
        return field(metadata={"yaml": name}, **kw)
    return field(default=default, metadata={"yaml": name}, **kw)


@dataclass(frozen=True)
class Location:
    """A job, or one task of a job ('worker:1')."""

    job: str
    task: int | None = None

    def __str__(self) -> str:
        return self.job if self.task is None else f"{self.job}:{self.task}"

    @staticmethod
    def parse(text: str) -> Location:
        job, _, task = text.partition(":")
        return Location(job, int(task) if task else None)


@dataclass(frozen=True)
class Threads:
    intra: int | None = key("intra")
    inter: int | None = key("inter")


@dataclass(frozen=True)
class Job:
    name: str
    pos: Pos
    tasks: int = key("tasks", 1)
    device: str = key("device", "cpu")
    gpus: int = key("gpus", 1)
    threads: Threads = key("threads", default_factory=Threads)
    memory: int | None = key("memory")  # bytes per task; None: share this machine's memory
    gpu_memory: int | None = key("gpu_memory")  # bytes per GPU; None: this machine's GPUs, if any


@dataclass(frozen=True)
class Tiling:
    """How an array splits into tiles. ``grid`` is the number of tiles per dimension;
    a cyclic tiling of a length-N vector into P tiles has grid (P,) and tile (N/P,)."""

    kind: str  # "block" | "cyclic"
    tile: tuple[int, ...]
    grid: tuple[int, ...]


@dataclass(frozen=True)
class TilingBlock:
    block: tuple = key("block")


@dataclass(frozen=True)
class TilingCyclic:
    cyclic: int = key("cyclic")


@dataclass(frozen=True)
class InitFill:
    """'zeros' or 'ones'."""

    value: float


@dataclass(frozen=True)
class InitCopy:
    """A copy of another array's initial value."""

    source: str


@dataclass(frozen=True)
class InitConstant:
    constant: float | int | complex = key("constant", 0)


@dataclass(frozen=True)
class InitRandom:
    random: str = key("random", "uniform")
    seed: int = key("seed", 0)
    low: float = key("low", 0.0)
    high: float = key("high", 1.0)
    mean: float = key("mean", 0.0)
    std: float = key("std", 1.0)
    diagonal: float | None = key("diagonal", None)  # spd only; None: the matrix size


#: The element indices an init expression names by default, one per dimension.
ELEMENT_INDICES = ("i", "j", "k", "l", "m", "n", "o", "p")
#: The functions an init expression may call (elementwise ones).
INIT_FUNCTIONS = ("abs", "ceil", "cos", "exp", "floor", "log", "log2", "sin", "sqrt", "where")


@dataclass(frozen=True)
class InitExpr:
    """Every element computed from its global index: ``expr`` over ``index`` (the
    element's indices, one name per dimension) and params, in float64."""

    expr: Expr | None = key("expr")
    index: tuple[str, ...] = key("index", ())

    def names(self, rank: int) -> tuple[str, ...]:
        """The element indices' names for an array of ``rank`` dimensions."""
        return self.index or ELEMENT_INDICES[:rank]


@dataclass(frozen=True)
class InitFile:
    file: str = key("file", "")  # resolved relative to the spec's folder


Init = InitFill | InitCopy | InitConstant | InitRandom | InitExpr | InitFile


@dataclass(frozen=True)
class Array:
    name: str
    pos: Pos
    shape: tuple[int, ...] = key("shape", ())
    dtype: str = key("dtype", "float32")
    tiling: Tiling = key("tile", None)
    init: Init = key("init", default_factory=lambda: InitFill(0.0))
    like: str | None = key("like")
    on: Location | None = key("on")
    resident: bool = key("resident", False)
    output: bool = key("output", False)
    description: str = key("description", "")
    #: the value of a tile read outside the grid (a boundary condition); None: an error
    boundary: float | int | None = key("boundary")

    @property
    def type(self) -> TensorType:
        return TensorType(self.shape, self.dtype)

    @property
    def tile_type(self) -> TensorType:
        return TensorType(self.tiling.tile, self.dtype)

    @property
    def ntiles(self) -> int:
        return math.prod(self.tiling.grid)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * ITEMSIZE[self.dtype]


@dataclass(frozen=True)
class Scalar:
    name: str
    pos: Pos
    init: Expr | None = key("init")
    via: str | None = key("via")
    dtype: str = key("dtype", "float64")
    description: str = key("description", "")
    output: bool = key("output", False)


@dataclass(frozen=True)
class Reduce:
    op: str = key("op", "sum")
    into: str | None = key("into")
    broadcast: str | None = key("broadcast")
    via: str = key("via", "auto")  # queue | collective | auto


@dataclass(frozen=True)
class Queue:
    name: str
    pos: Pos
    on: Location | None = key("on", None)
    shards: int = key("shards", 1)
    shard: Expr | None = key("shard")
    capacity: int = key("capacity", 8)
    reduce: Reduce | None = key("reduce")
    description: str = key("description", "")


@dataclass(frozen=True)
class Task:
    """A task (top level) or a computing loop step: one instance per index tuple.

    ``push``, ``out`` and ``update`` targets are expressions such as ``q[i]``."""

    name: str
    pos: Pos
    domain: tuple[tuple[str, int], ...] = key("for", ())
    compute: Expr | None = key("compute")
    push: Expr | None = key("push")
    pop: str | None = key("pop")
    out: Expr | None = key("out")
    update: tuple[tuple[Expr, Expr], ...] = key("update", ())
    on: Location | None = key("on")
    schedule: str = key("schedule", "static")
    description: str = key("description", "")
    #: the condition that keeps an instance (``k < j <= i``): a triangular or banded domain
    where: Expr | None = key("where")
    #: the queue a ``push:`` names whose target has a mistake (reported, so the spec is
    #: invalid): the task still counts as that queue's producer while the rest is checked
    push_unparsed: str | None = None

    @property
    def instances(self) -> int:
        """The size of the ``for:`` box (a ``where:`` keeps some of them)."""
        return math.prod(n for _, n in self.domain)

    @property
    def queue(self) -> str | None:
        """The queue this task pushes into, if any."""
        return self.push.base() if self.push is not None else None


def accumulation(target: Expr, value: Expr) -> tuple[str, ast.expr] | None:
    """``("add", e)`` for an update ``T: T + e`` (or ``e + T``), ``("sub", e)`` for
    ``T: T - e``; a longer chain is one term: ``T + a - b`` adds ``a - b``, ``T - a + b``
    subtracts ``a - b``. None for any other form (``T`` anywhere but first). When several
    instances of a task update one tile this way, each adds its term to the running value
    in the order of their indices (docs/spec.md, "Accumulation")."""
    same = ast.dump(target.tree)

    def mentions(node: ast.AST) -> bool:
        return any(ast.dump(n) == same for n in ast.walk(node))

    tree = value.tree
    if isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.Add) and ast.dump(tree.right) == same:
        return None if mentions(tree.left) else ("add", tree.left)
    chain: list[tuple[ast.BinOp, ast.expr]] = []  # T op1 a op2 b ...: (the op's node, its right operand)
    node = tree
    while isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        chain.append((node, node.right))
        node = node.left
    if not chain or ast.dump(node) != same or any(mentions(t) for _, t in chain):
        return None
    chain.reverse()
    subtracts = isinstance(chain[0][0].op, ast.Sub)
    term = chain[0][1]
    for op_node, right in chain[1:]:  # after a '-', the signs inside the term flip
        op: ast.operator = (
            op_node.op if not subtracts else (ast.Sub() if isinstance(op_node.op, ast.Add) else ast.Add())
        )
        term = ast.copy_location(ast.BinOp(term, op, right), op_node)
    return ("sub" if subtracts else "add"), term


@dataclass(frozen=True)
class Let:
    """A loop step that binds a scalar: ``reduce`` through a queue's reducer, or ``value``."""

    name: str = key("name", "")
    pos: Pos = field(default_factory=Pos)
    let: str = key("let", "")
    reduce: Expr | None = key("reduce")
    value: Expr | None = key("value")
    via: str | None = key("via")


Step = Task | Let


@dataclass(frozen=True)
class Checkpoint:
    every: int = key("every", 1)
    path: str | None = key("path")


@dataclass(frozen=True)
class Loop:
    pos: Pos
    max: int = key("max", 1)
    #: the iteration number's name, visible to the steps: such a loop is unrolled
    index: str | None = key("index")
    until: Expr | None = key("until")
    checkpoint: Checkpoint | None = key("checkpoint")
    steps: tuple[Step, ...] = key("steps", ())


@dataclass(frozen=True)
class Placement:
    strategy: str = key("strategy", "heft")
    constraints: Mapping[str, Location] = key("constraints", default_factory=dict)
    profile: str | None = key("profile")


@dataclass(frozen=True)
class VerifyFreivalds:
    pos: Pos
    freivalds: Expr = key("freivalds", None)
    trials: int = key("trials", 3)


@dataclass(frozen=True)
class VerifyResidual:
    pos: Pos
    residual: Expr = key("residual", None)
    below: float = key("below", 0.0)


@dataclass(frozen=True)
class VerifyReference:
    pos: Pos
    reference: Expr = key("reference", None)
    of: str = key("of", "")
    rtol: float = key("rtol", 1e-6)
    atol: float = key("atol", 0.0)


@dataclass(frozen=True)
class VerifyExact:
    pos: Pos
    exact: Expr = key("exact", None)
    rtol: float = key("rtol", 0.0)


Verify = VerifyFreivalds | VerifyResidual | VerifyReference | VerifyExact


@dataclass(frozen=True)
class Metrics:
    flops: Expr | None = key("flops")
    bytes: Expr | None = key("bytes")


@dataclass(frozen=True)
class Spec:
    file: str
    source: SourceMap = field(repr=False, compare=False)
    dfc: int = key("dfc", 1)
    name: str = key("name", "")
    description: str = key("description", "")
    params: Mapping[str, int | float] = key("params", default_factory=dict)
    cluster: Mapping[str, Job] = key("cluster", default_factory=dict)
    arrays: Mapping[str, Array] = key("arrays", default_factory=dict)
    scalars: Mapping[str, Scalar] = key("scalars", default_factory=dict)
    queues: Mapping[str, Queue] = key("queues", default_factory=dict)
    tasks: Mapping[str, Task] = key("tasks", default_factory=dict)
    loop: Loop | None = key("loop")
    placement: Placement = key("placement", default_factory=Placement)
    verify: Verify | None = key("verify")
    metrics: Metrics = key("metrics", default_factory=Metrics)
    sweep: Mapping[str, tuple] = key("sweep", default_factory=dict)

    @functools.cached_property
    def tile_tasks(self) -> int:
        """Tile-task instances: every task, plus one iteration of the loop body, or all of
        them when the loop is unrolled; under `where:`, those it keeps (counted where there
        are at most COUNT_LIMIT to try, else the box of `for:`: an upper bound)."""
        steps = self.loop.steps if self.loop else ()
        outer = {self.loop.index: self.loop.max} if self.loop is not None and self.loop.index else {}
        top = sum(_kept(t, self.params, {}) for t in self.tasks.values())
        return top + sum(_kept(t, self.params, outer) for t in steps if isinstance(t, Task))

    @property
    def unrolled(self) -> bool:
        """Whether the loop is unrolled at compile time (it names its `index:`)."""
        return self.loop is not None and self.loop.index is not None

    @property
    def ntiles(self) -> int:
        return sum(a.ntiles for a in self.arrays.values())


#: At most this many instances are tried against a `where:` to count those it keeps.
COUNT_LIMIT = 20_000


def _kept(t: Task, params: Mapping, outer: dict[str, int]) -> int:
    """How many instances of ``t`` run, over the iterations of an unrolled loop (``outer``)."""
    box = t.instances * math.prod(outer.values())
    if t.where is None or box > COUNT_LIMIT:
        return box
    names = [*outer, *(k for k, _ in t.domain)]
    extents = [*outer.values(), *(n for _, n in t.domain)]
    count = 0
    for values in itertools.product(*(range(n) for n in extents)):
        try:
            count += bool(evaluate(t.where, {**params, **dict(zip(names, values))}))
        except ExprError:
            return box  # a mistake in the condition: reported by the checks
    return count


#: Which schema definition each dataclass implements (checked by the drift test).
SCHEMA_DEFS: dict[str, type] = {
    "": Spec,
    "job": Job,
    "threads": Threads,
    "array": Array,
    "tiling_block": TilingBlock,
    "tiling_cyclic": TilingCyclic,
    "init_constant": InitConstant,
    "init_random": InitRandom,
    "init_expr": InitExpr,
    "init_file": InitFile,
    "scalar": Scalar,
    "queue": Queue,
    "reduce": Reduce,
    "task": Task,
    "step_task": Task,
    "step_let": Let,
    "loop": Loop,
    "checkpoint": Checkpoint,
    "placement": Placement,
    "verify_freivalds": VerifyFreivalds,
    "verify_residual": VerifyResidual,
    "verify_reference": VerifyReference,
    "verify_exact": VerifyExact,
    "metrics": Metrics,
}
