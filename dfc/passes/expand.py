"""expand: the task-level IR -> one node per op of every tile-task instance.

- every tile of every array becomes a ``variable`` node holding its initial value;
- each instance of a task's ``for:`` domain becomes the op nodes of its expression, named
  after the instance (``product[i=1,j=0,k=2]``);
- ``out:``/``update:`` become ``assign`` nodes; ``push:`` an ``enqueue`` node; a queue's
  reducer ``dequeue`` + ``reduce`` nodes (+ ``assign`` into the target tile); a ``via:``
  reduction enqueues one partial result per tile and reduces them on the queue's job;
  ``broadcast`` sends the reduced value back to every task of a job;
- the loop body is expanded once, in scope ``"loop"``: reads of loop-carried state read
  the variables, so the graph does not grow with the iteration count.

Reads follow versions: a tile written earlier in the same scope is read from its
``assign`` node, so the graph orders every read after the write it depends on.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import networkx as nx

from ..diagnostics import Pos
from ..ir.build import entries
from ..ir.devices import allowed
from ..ir.facts import facts_of
from ..ir.node import Node, add, node_of, node_table, topo
from ..ir.payload import Assign, Broadcast, Compute, Const, Dequeue, Enqueue, Loop, Random, Tile, Variable
from ..lang.expr import Expr, compiled, evaluate
from ..lang.model import (
    Array,
    InitConstant,
    InitCopy,
    InitExpr,
    InitFile,
    InitFill,
    InitRandom,
    Let,
    Scalar,
    Spec,
    Task,
    accumulation,
)
from ..lang.walk import Walker
from ..ops import REGISTRY, ItemsType, Op, TensorType
from .context import PassContext

Type = TensorType | ItemsType


def tile_name(array: str, index: tuple[int, ...]) -> str:
    return f"{array}[{','.join(map(str, index))}]"


def instance_label(prefix: str, env: dict[str, int]) -> str:
    return f"{prefix}[{','.join(f'{k}={v}' for k, v in env.items())}]" if env else prefix


def initial(a: Array) -> Variable:
    """How the tiles of ``a`` start (their payload, less where each tile sits)."""
    i = a.init
    if isinstance(i, InitFill):
        return Variable("constant", value=i.value)
    if isinstance(i, InitConstant):
        return Variable("constant", value=i.constant)
    if isinstance(i, InitRandom):
        return Variable(
            "random",
            random=Random(i.random, i.seed, i.low, i.high, i.mean, i.std, i.diagonal if i.random == "spd" else None),
        )
    if isinstance(i, InitFile):
        return Variable("file", file=i.file)
    if isinstance(i, InitExpr):
        return Variable("expr", expr=i.expr, names=i.names(len(a.shape)))
    if isinstance(i, InitCopy):
        return Variable("copy", source=i.source)
    raise AssertionError(i)


@dataclass
class _Ctx:
    """Where an expression is being expanded."""

    label: str
    scope: str
    group: str
    expr: Expr
    env: dict[str, int]
    allowed: tuple[str, ...] = ()
    items: dict[str, str] = field(default_factory=dict)  # popped queue -> its dequeue node
    via: str | None = None
    via_key: str = ""
    counter: itertools.count = field(default_factory=itertools.count)
    instance: str = ""  # for `schedule: dynamic` tasks: the instance its nodes belong to
    # the indices bound by the task's `for:` (None: all of env); a reduction's own indices
    # are bound in env too, but a nested reduction may bind the same name again
    fixed: frozenset | None = None
    reductions: itertools.count = field(default_factory=itertools.count)  # numbers this scope's reductions

    def bound_by_for(self, name: str) -> bool:
        return name in (self.env if self.fixed is None else self.fixed)


class Expander:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.g = nx.DiGraph(facts=facts_of(spec))
        self.version: dict[tuple, str] = {}  # (array, index) or ("scalar", name) -> current node
        self.bound: dict[str, str] = {}  # let name -> node (loop-local)
        self.pending: dict[str, list[str]] = {}  # queue -> enqueue nodes not yet drained
        self.types: dict[str, Type] = {}
        self.readers: dict[str, set[str]] = {}  # variable -> nodes that read it since its last write
        self.iteration: int | None = 0  # for `rand`: 0 outside the loop, n + 1 in an unrolled loop's iteration n
        self.drains: dict[tuple[str, str], int] = {}  # (queue, scope or 'pop') -> times it was drained
        # what is the same for every instance of a task, worked out once: sub-expressions
        # compiled, source positions, and an op's result type and costs for its input types
        self._compiled: dict[ast.AST, Callable] = {}
        self._pos: dict[tuple[Expr, ast.AST], Pos] = {}
        self._typed: dict[tuple, tuple] = {}

    # ---------------------------------------------------------------- helpers
    def value_of(self, expr: Expr, node: ast.expr, env: Mapping[str, Any]) -> Any:
        """A sub-expression's value (an index, a key, an op's keyword): compiled once."""
        fn = self._compiled.get(node)
        if fn is None:
            fn = self._compiled[node] = compiled(Expr(expr.text, node, expr.pos))
        return fn(env)

    def pos(self, expr: Expr, node: ast.AST) -> Pos:
        key = (expr, node)
        at = self._pos.get(key)
        if at is None:
            at = self._pos[key] = expr.at(node)
        return at

    def typed(self, op_name: str, types: list[Type], kw: dict) -> tuple[TensorType, int, int]:
        """The op's result type, flops and memory bytes for these inputs (memoised: a task's
        instances have the same types)."""
        try:
            key = (op_name, tuple(types), tuple(sorted(kw.items())))
            hit = self._typed.get(key)
        except TypeError:  # an unhashable keyword value: work it out every time
            key, hit = None, None
        if hit is None:
            op = REGISTRY[op_name]
            out = op.infer(*types, **kw)
            hit = (out, op.count_flops(tuple(types), out, kw), op.bytes(tuple(types), out))
            if key is not None:
                self._typed[key] = hit
        return hit

    def add(self, node: Node, typ: Type | None = None) -> str:
        data = node_table(self.g)
        if node.name not in data:
            add(self.g, node)
            for src in node.inputs:
                if data[src]["node"].kind == "variable" and node.kind != "variable":
                    self.readers.setdefault(src, set()).add(node.name)
        elif data[node.name]["node"] != node:  # one name, two values: never merge them quietly
            raise AssertionError(f"expand: two different nodes named {node.name!r}")
        self.types[node.name] = typ if typ is not None else TensorType(node.shape, node.dtype or None)
        return node.name

    def const(self, value) -> str:
        if isinstance(value, bool):
            return self.add(
                Node(f"const:{value}", "const", "const", dtype="bool", data=Const(value)), TensorType((), "bool")
            )
        value = float(value) if not isinstance(value, int) else value
        return self.add(
            Node(f"const:{value!r}", "const", "const", dtype="", out_bytes=8, data=Const(value)), TensorType((), None)
        )

    def tile(self, array: str, index: tuple[int, ...]) -> str:
        return self.version.get((array, index), tile_name(array, index))

    def scalar(self, name: str) -> str:
        return self.version.get(("scalar", name), f"scalar:{name}")

    # ---------------------------------------------------------------- variables
    def variables(self) -> None:
        spec = self.spec
        for a in spec.arrays.values():
            init = initial(a)
            where = allowed(spec, a.on or spec.placement.constraints.get(a.name))
            for index in itertools.product(*(range(g) for g in a.tiling.grid)):
                inputs = (tile_name(init.source, index),) if init.source is not None else ()  # a copy
                t = a.tile_type
                tile = Tile(a.name, index, a.tiling.kind, a.tiling.tile, a.tiling.grid, a.shape, a.resident, a.output)
                self.add(
                    Node(
                        tile_name(a.name, index),
                        "variable",
                        "variable",
                        inputs,
                        t.shape,
                        a.dtype,
                        t.size if init.init == "random" else 0,
                        t.nbytes,
                        allowed=where,
                        group=a.name,
                        pos=a.pos,
                        data=replace(init, tile=tile),
                    )
                )
        for s in spec.scalars.values():
            self.add(
                Node(
                    f"scalar:{s.name}",
                    "variable",
                    "variable",
                    (),
                    (),
                    s.dtype,
                    0,
                    8,
                    group=s.name,
                    pos=s.pos,
                    data=Variable("constant", value=0.0, scalar=s.name),
                )
            )

    # ---------------------------------------------------------------- expressions
    def op(
        self,
        ctx: _Ctx,
        op_name: str,
        args: Sequence[tuple[str, Type]],
        node: ast.AST | None,
        name: str | None = None,
        kind: str = "compute",
        **kw,
    ) -> tuple[str, TensorType]:
        out, flops, mem = self.typed(op_name, [t for _, t in args], kw)
        name = name or f"{ctx.label}/{next(ctx.counter)}:{op_name}"
        data = Compute(tuple(sorted(kw.items())), ctx.instance or None)
        n = Node(
            name,
            kind,
            op_name,
            tuple(a for a, _ in args),
            out.shape,
            out.dtype or "",
            flops,
            out.nbytes,
            mem,
            allowed=ctx.allowed,
            scope=ctx.scope,
            group=ctx.group,
            pos=self.pos(ctx.expr, node) if node is not None else ctx.expr.pos,
            data=data,
        )
        return self.add(n, out), out

    def index_values(self, ctx: _Ctx, sub: ast.expr, extent: int) -> list[int]:
        if isinstance(sub, ast.Slice):
            return list(range(extent))
        if isinstance(sub, ast.Name) and sub.id in ctx.env:  # the common case: a bound index
            return [int(ctx.env[sub.id])]
        return [int(self.value_of(ctx.expr, sub, {**self.spec.params, **ctx.env}))]

    def read(self, ctx: _Ctx, array: str, subs: list[ast.expr] | None, node: ast.AST) -> tuple[str, Type]:
        a = self.spec.arrays[array]
        grid = a.tiling.grid
        ranges = (
            [list(range(g)) for g in grid]
            if subs is None
            else [self.index_values(ctx, s, g) for s, g in zip(subs, grid)]
        )
        indices = list(itertools.product(*ranges))
        if len(indices) == 1 and not all(0 <= i < g for i, g in zip(indices[0], grid)):
            # outside the grid of an array with a `boundary:` (validated): a tile of that value
            t = a.tile_type
            return self.op(ctx, "fill", [], node, value=a.boundary, shape=t.shape, dtype=a.dtype)
        tiles = [self.tile(array, idx) for idx in indices]
        if len(tiles) == 1:
            return tiles[0], a.tile_type
        args = [(t, a.tile_type) for t in tiles]
        if a.tiling.kind == "cyclic":
            return self.op(ctx, "interleave", args, node)
        return self.op(ctx, "assemble", args, node, grid=tuple(len(r) for r in ranges))

    def position_op(self, ctx: _Ctx, op: Op, node: ast.Call, name: str | None) -> tuple[str, Type]:
        """An op that takes where a part of an array sits, not its values (``rand(x[i])``):
        a node without inputs, whose keywords say which elements (first, count and stride
        per dimension, in the array's shape) and, outside a ``while_loop``, the iteration."""
        arg = node.args[0]
        base = arg.value if isinstance(arg, ast.Subscript) else arg
        assert isinstance(base, ast.Name)  # validated: a part of an array
        a = self.spec.arrays[base.id]
        subs = (
            (arg.slice.elts if isinstance(arg.slice, ast.Tuple) else [arg.slice])
            if isinstance(arg, ast.Subscript)
            else None
        )
        whole = [(0, n, 1) for n in a.shape]
        if subs is None:
            parts = whole
        elif a.tiling.kind == "cyclic":
            parts = (
                whole
                if isinstance(subs[0], ast.Slice)
                else [(self.index_values(ctx, subs[0], 1)[0], a.tiling.tile[0], a.tiling.grid[0])]
            )
        else:
            parts = [
                (0, n, 1) if isinstance(sub, ast.Slice) else (self.index_values(ctx, sub, 1)[0] * t, t, 1)
                for sub, t, n in zip(subs, a.tiling.tile, a.shape)
            ]
        kw = {k.arg: self.value_of(ctx.expr, k.value, self.spec.params) for k in node.keywords if k.arg is not None}
        kw.update(
            origin=tuple(p[0] for p in parts),
            extent=tuple(p[1] for p in parts),
            step=tuple(p[2] for p in parts),
            shape=a.shape,
        )
        if self.iteration is not None:  # outside the while_loop: known now
            kw["iteration"] = self.iteration
        return self.op(ctx, op.name, [], node, name, **kw)

    def is_reduction(self, node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and REGISTRY[node.func.id].reduction
            and len(node.args) == 1
        )

    def free_indices(self, ctx: _Ctx, node: ast.AST) -> dict[str, int]:
        """Indices in ``node`` (a reduction's argument) that no `for:` binds, with the
        tile-grid extent they range over; those inside a nested reduction belong to it (as
        in the type checker)."""
        out: dict[str, int] = {}
        todo = [node]
        while todo:
            sub = todo.pop()
            if self.is_reduction(sub):
                continue
            todo.extend(reversed(list(ast.iter_child_nodes(sub))))
            if isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name) and sub.value.id in self.spec.arrays:
                grid = self.spec.arrays[sub.value.id].tiling.grid
                elts = sub.slice.elts if isinstance(sub.slice, ast.Tuple) else [sub.slice]
                for d, e in enumerate(elts):
                    if isinstance(e, ast.Name) and not ctx.bound_by_for(e.id) and e.id not in self.spec.params:
                        out.setdefault(e.id, grid[d])
        return out

    def ex(self, ctx: _Ctx, node: ast.AST, name: str | None = None) -> tuple[str, Type]:
        """The nodes of expression ``node`` in ``ctx``: (the node giving its value, its type);
        ``name`` names that node."""
        return _Expression(self, ctx, node, name).walk(node)

    def reduction(self, ctx: _Ctx, op: str, node: ast.Call, free: dict[str, int], name: str | None):
        """sum/max/min over free tile indices: one term per index tuple, combined locally or,
        with ``via``, through the queue's reducer."""
        number = next(ctx.reductions)  # the first keeps the plain names; later ones are numbered
        tag = f".{number}" if number else ""
        fixed = frozenset(ctx.env) if ctx.fixed is None else ctx.fixed
        terms = []
        for values in itertools.product(*(range(n) for n in free.values())):
            env = {**ctx.env, **dict(zip(free, values))}
            sub = _Ctx(
                instance_label(f"{ctx.label}/term{tag}", dict(zip(free, values))),
                ctx.scope,
                ctx.group,
                ctx.expr,
                env,
                (),
                ctx.items,
                fixed=fixed,
            )
            terms.append(self.ex(sub, node.args[0]))
        via = ctx.via
        reducer = self.spec.queues[via].reduce if via is not None else None
        if via is None or reducer is None or reducer.op != op:  # another op than the queue's: reduced where needed
            if len(terms) == 1:  # one term (a grid of one tile) is its own reduction
                return self.op(ctx, "copy", terms, node, name)
            return self.op(ctx, "accumulate", terms, node, name, op=op)
        key = f"{ctx.via_key}#{number}" if number else ctx.via_key  # '.' numbers repeated lets
        enq = [self.enqueue(ctx, via, (key, i), t, node) for i, t in enumerate(terms)]
        deq = self.dequeue(ctx, via, key, enq, terms[0][1])
        return (
            self.op(ctx, "accumulate", [deq], node, name or f"{ctx.label}/reduce{tag}", kind="reduce", op=reducer.op)
            if len(enq)
            else deq
        )

    # ---------------------------------------------------------------- queues
    def enqueue(self, ctx: _Ctx, queue: str, key: tuple, value: tuple[str, Type], node) -> str:
        name, typ = value
        assert isinstance(typ, TensorType)  # a pushed value is a tensor, never a queue's items
        n = Node(
            f"{ctx.label}/enqueue:{queue}[{','.join(map(str, key))}]",
            "enqueue",
            "enqueue",
            (name,),
            typ.shape,
            typ.dtype or "",
            0,
            typ.nbytes,
            scope=ctx.scope,
            group=ctx.group,
            pos=self.pos(ctx.expr, node),
            data=Enqueue(queue, key, tuple(sorted(ctx.env.items())), ctx.instance or None),
        )
        self.add(n, typ)
        self.pending.setdefault(queue, []).append(n.name)
        return n.name

    def dequeue(self, ctx: _Ctx, queue: str, key: str, enqueues: list[str], item: Type) -> tuple[str, Type]:
        assert isinstance(item, TensorType)  # an item is a tensor
        prefix = "loop/" if ctx.scope == "loop" else ""
        items = ItemsType(TensorType(item.shape, item.dtype), len(enqueues))
        n = Node(
            f"{prefix}dequeue:{queue}[{key}]",
            "dequeue",
            "dequeue",
            tuple(enqueues),
            item.shape,
            item.dtype or "",
            0,
            item.nbytes * len(enqueues),
            scope=ctx.scope,
            group=queue,
            pos=self.spec.queues[queue].pos,
            data=Dequeue(queue, key, len(enqueues)),
        )
        gone = set(enqueues)
        self.pending[queue] = [e for e in self.pending.get(queue, []) if e not in gone]
        return self.add(n, items), items

    def drain_into(self, queue: str, scope: str) -> None:
        """A reducer with `into:` sums each key's items into that tile of the target."""
        q = self.spec.queues[queue]
        assert q.reduce is not None and q.reduce.into is not None  # called for such queues only
        into, op = self.spec.arrays[q.reduce.into], q.reduce.op
        by_key: dict[tuple, list[str]] = {}
        for e in self.pending.get(queue, []):
            by_key.setdefault(node_of(self.g, e).data.key, []).append(e)
        self.pending[queue] = []
        drains = self.drains[(queue, scope)] = self.drains.get((queue, scope), 0) + 1
        tag = f".{drains - 1}" if drains > 1 else ""  # the first drain keeps the plain names
        for key in sorted(by_key):
            label = f"{'loop/' if scope == 'loop' else ''}{queue}{tag}[{','.join(map(str, key))}]"
            ctx = _Ctx(label, scope, queue, Expr(queue, ast.Constant(0), q.pos), {})
            deq = self.dequeue(ctx, queue, f"{','.join(map(str, key))}{tag}", by_key[key], into.tile_type)
            red = self.op(
                ctx,
                "accumulate",
                [deq],
                None,
                f"{'loop/' if scope == 'loop' else ''}reduce:{label.split('/')[-1]}",
                kind="reduce",
                op=op,
            )
            self.assign(ctx, (into.name, tuple(key)), red, f"{label}/assign")

    def assign(self, ctx: _Ctx, target: tuple, value: tuple[str, Type], name: str) -> str:
        array, index = target
        var = tile_name(array, index) if array != "scalar" else f"scalar:{index}"
        vnode = node_of(self.g, var)
        # write-after-read and write-after-write: after every reader of the old value
        after = (set(self.readers.pop(var, set())) | {var}) - {value[0]}
        if target in self.version:
            after.add(self.version[target])
        n = Node(
            name,
            "assign",
            "assign",
            (value[0],),
            vnode.shape,
            vnode.dtype,
            0,
            vnode.out_bytes,
            scope=ctx.scope,
            group=ctx.group,
            pos=ctx.expr.pos,
            data=Assign(var),
            after=tuple(sorted(after)),
        )
        self.add(n, TensorType(vnode.shape, vnode.dtype))
        self.version[target] = n.name
        return n.name

    # ---------------------------------------------------------------- tasks
    def task(self, t: Task, scope: str, prefix: str | None = None, outer: Mapping[str, int] | None = None) -> None:
        """The instances of ``t`` (those its `where:` keeps); ``outer``: an unrolled loop's
        index and its value in this iteration."""
        spec = self.spec
        outer = dict(outer or {})
        prefix = prefix or (f"loop/{t.name}" if scope == "loop" else t.name)
        where = allowed(spec, t.on or spec.placement.constraints.get(t.name))
        items = {}
        if t.pop:
            self.drain_pop(t.pop, scope)
            items[t.pop] = self.popped[t.pop]
        ranges = [range(n) for _, n in t.domain]
        names = [k for k, _ in t.domain]
        writes: list[tuple[_Ctx, tuple, tuple[str, Type]]] = []
        kept = [
            (own, {**outer, **own})
            for own in (dict(zip(names, values)) for values in itertools.product(*ranges))
            if t.where is None or evaluate(t.where, {**spec.params, **outer, **own})
        ]
        # tiles that several instances update as `T: T + e`: each adds its term in turn
        accs = [accumulation(target_expr, value_expr) for target_expr, value_expr in t.update]
        writers: dict[tuple, int] = {}
        for _, env in kept if any(accs) else ():
            for (target_expr, _), acc in zip(t.update, accs):
                if acc:
                    tile = self.tile_of(target_expr, env)
                    writers[tile] = writers.get(tile, 0) + 1
        chains: dict[tuple, tuple[_Ctx, tuple[str, Type]]] = {}  # tile -> its last adder, running value
        for own, env in kept:
            label = instance_label(prefix, own)
            if t.compute is not None:
                ctx = _Ctx(
                    label,
                    scope,
                    t.name,
                    t.compute,
                    env,
                    where,
                    items,
                    instance=label if t.schedule == "dynamic" and scope == "" and t.push is not None else "",
                )
                value = self.ex(ctx, t.compute.tree, label)
                if t.push is not None:
                    queue, key = self.target(ctx, t.push)
                    self.enqueue(ctx, queue, tuple(key), value, t.push.tree)
                else:
                    assert t.out is not None  # validated: a result goes somewhere
                    writes += self.split(ctx, t.out, value)
            for (target_expr, value_expr), acc in zip(t.update, accs):
                ctx = _Ctx(f"{label}/{target_expr.text}", scope, t.name, value_expr, env, where, items)
                if acc and writers[tile := self.tile_of(target_expr, env)] > 1:  # in the instances' order
                    how, term = acc
                    running = chains[tile][1] if tile in chains else self.read_tile(tile)
                    chains[tile] = (ctx, self.op(ctx, how, [running, self.ex(ctx, term)], value_expr.tree))
                    continue
                writes += self.split(ctx, target_expr, self.ex(ctx, value_expr.tree))
        writes += [(ctx, tile, value) for tile, (ctx, value) in chains.items()]
        # a tile read as it is and written by this task too (x[i] = x[i+1]) is copied first,
        # so that the copy reads the old value before any of this task's writes
        written = {tile_name(*target) for _, target, _ in writes}
        writes = [
            (
                ctx,
                target,
                self.op(ctx, "copy", [value], None)
                if value[0] in written and value[0] != tile_name(*target)
                else value,
            )
            for ctx, target, value in writes
        ]
        for ctx, target, value in writes:  # after every read of the old values
            self.assign(ctx, target, value, f"{ctx.label}/assign:{tile_name(*target)}")

    def tile_of(self, e: Expr, env: dict) -> tuple[str, tuple[int, ...]]:
        """The tile a target names for an instance (a whole array of one tile: that tile)."""
        array, key = self.target(_Ctx("", "", "", e, env), e)
        return array, tuple(key) if key else (0,) * len(self.spec.arrays[array].tiling.grid)

    def read_tile(self, tile: tuple[str, tuple[int, ...]]) -> tuple[str, Type]:
        """A tile's current value, as an expression reads it."""
        return self.tile(*tile), self.spec.arrays[tile[0]].tile_type

    def target(self, ctx: _Ctx, e: Expr) -> tuple[str, list]:
        tree = e.tree
        if isinstance(tree, ast.Name):
            return tree.id, []
        assert isinstance(tree, ast.Subscript) and isinstance(tree.value, ast.Name)  # validated: NAME[key]
        subs = tree.slice.elts if isinstance(tree.slice, ast.Tuple) else [tree.slice]
        env = {**self.spec.params, **ctx.env}
        return tree.value.id, [int(self.value_of(e, s, env)) for s in subs]

    def split(self, ctx: _Ctx, target: Expr, value: tuple[str, Type]):
        """The assignments that write ``value`` into ``target`` (a tile, or a whole array)."""
        array, key = self.target(ctx, target)
        a = self.spec.arrays[array]
        if key:
            return [(ctx, (array, tuple(key)), value)]
        tiles = list(itertools.product(*(range(g) for g in a.tiling.grid)))
        if len(tiles) == 1:
            return [(ctx, (array, tiles[0]), value)]
        return [
            (
                ctx,
                (array, idx),
                self.op(
                    ctx,
                    "take_tile",
                    [value],
                    None,
                    tiling=a.tiling.kind,
                    index=idx,
                    tile=a.tiling.tile,
                    grid=a.tiling.grid,
                ),
            )
            for idx in tiles
        ]

    def drain_pop(self, queue: str, scope: str) -> None:
        if queue in self.popped:
            return
        enq = sorted(self.pending.get(queue, []), key=lambda e: (node_of(self.g, e).data.key, e))
        item = self.types[enq[0]]
        ctx = _Ctx(queue, scope, queue, Expr(queue, ast.Constant(0), self.spec.queues[queue].pos), {})
        pops = self.drains[(queue, "pop")] = self.drains.get((queue, "pop"), 0) + 1
        key = f"*.{pops - 1}" if pops > 1 else "*"  # an unrolled loop drains it once an iteration
        self.popped[queue] = self.dequeue(ctx, queue, key, enq, item)[0]

    def let(
        self,
        name: str,
        expr: Expr,
        via: str | None,
        scope: str,
        declared: bool,
        pos_label: str,
        outer: Mapping[str, int] | None = None,
    ) -> None:
        # the queue key: a let repeated in the body has a numbered label (let:s.1), and
        # one in an unrolled loop the iteration too (let:s@k=2)
        key = pos_label.split("let:", 1)[1] if "let:" in pos_label else name
        if outer:
            key += "@" + ",".join(f"{k}={v}" for k, v in outer.items())
        ctx = _Ctx(pos_label, scope, name, expr, dict(outer or {}), (), {}, via, key)
        value = self.ex(ctx, expr.tree, pos_label)
        q = self.spec.queues.get(via) if via else None
        if q is not None and q.reduce and q.reduce.broadcast:
            value = self.op(ctx, "copy", [value], None, f"{pos_label}/broadcast", kind="broadcast")
            n = self.g.nodes[value[0]]["node"]
            self.g.nodes[value[0]]["node"] = n.evolve(
                data=Broadcast(n.data.kwargs, n.data.instance, q.name, q.reduce.broadcast)
            )
        if declared:
            self.assign(ctx, ("scalar", name), value, f"{pos_label}/assign:scalar:{name}")
            self.bound.pop(name, None)
        else:
            if node_of(self.g, value[0]).kind == "variable":
                # a name for a variable's value now (``let: prev, value: lam``): a copy,
                # read before any later write of the variable (readers come before writes)
                value = self.op(ctx, "copy", [value], None, f"{pos_label}/copy")
            self.bound[name] = value[0]

    # ---------------------------------------------------------------- driver
    def run(self, template: nx.DiGraph) -> nx.DiGraph:
        spec = self.spec
        self.popped: dict[str, str] = {}
        self.variables()
        objs = {name: obj for name, obj, _ in entries(spec)}
        producers_left = {q: {t.name for t in spec.tasks.values() if t.queue == q} for q in spec.queues}
        for node in topo(template, ""):
            obj = objs[node.name]
            if isinstance(obj, Scalar):
                assert obj.init is not None  # entries(): the scalars that are initialised
                self.let(obj.name, obj.init, obj.via, "", True, f"init:{obj.name}")
            else:
                assert isinstance(obj, Task)
                self.task(obj, "")
                q = obj.queue
                if q:
                    producers_left[q].discard(obj.name)
                    if not producers_left[q] and _reduces_into(spec, q):
                        self.drain_into(q, "")
        if spec.loop and spec.unrolled:
            self.unroll(template, objs)
        elif spec.loop:
            self.iteration = None  # the while_loop's: the lowering gives it
            saved = dict(self.version)
            self.version = {}  # the body reads loop-carried state from the variables
            self.readers = {}
            self.popped = {}
            self.body(template, objs, "loop")
            inputs: tuple[str, ...] = ()
            if spec.loop.until is not None:
                ctx = _Ctx("loop/until", "loop", "until", spec.loop.until, {})
                inputs = (self.ex(ctx, spec.loop.until.tree, "loop/until")[0],)
            cp = spec.loop.checkpoint
            self.add(
                Node(
                    "loop",
                    "loop",
                    "loop",
                    inputs,
                    (),
                    "bool",
                    0,
                    0,
                    scope="loop",
                    group="loop",
                    pos=spec.loop.pos,
                    data=Loop(spec.loop.max, inputs[0] if inputs else "", cp.every if cp else 0),
                )
            )
            self.version = {**saved, **self.version}
        return self.g

    def unroll(self, template: nx.DiGraph, objs: dict) -> None:
        """A loop with an `index:`: its body once per iteration, in program order (no
        ``while_loop``), each with the index bound; reads follow the tiles' versions, so the
        graph has an edge wherever one instance reads what an earlier one wrote."""
        loop = self.spec.loop
        assert loop is not None and loop.index is not None
        for it in range(loop.max):
            outer = {loop.index: it}
            self.iteration = it + 1
            self.bound = {}  # a let binds a value for the rest of its iteration
            self.popped = {}
            self.body(template, objs, "", outer)

    def body(self, template: nx.DiGraph, objs: dict, scope: str, outer: dict[str, int] | None = None) -> None:
        """The loop's steps in order, in ``scope`` (``loop``: the while_loop's body, built
        once; ``""``: one iteration of an unrolled loop, its index's value in ``outer``)."""
        for node in topo(template, "loop"):
            obj = objs[node.name]  # two steps of one name: numbered; an unrolled one by its iteration
            label = node.name
            if outer:  # an unrolled iteration: `k=2/trsm`
                label = "".join(f"{k}={v}/" for k, v in outer.items()) + node.name.removeprefix("loop/")
            if isinstance(obj, Let):
                value = obj.reduce or obj.value
                assert value is not None  # validated: one of reduce and value
                self.let(obj.let, value, obj.via, scope, obj.let in self.spec.scalars, label, outer)
            else:
                assert isinstance(obj, Task)
                self.task(obj, scope, label, outer)
                q = obj.queue
                if q and _reduces_into(self.spec, q):
                    self.drain_into(q, scope)


def _reduces_into(spec: Spec, queue: str) -> bool:
    """Whether ``queue``'s reducer sums its items into the tiles of an array."""
    r = spec.queues[queue].reduce
    return r is not None and r.into is not None


def expand(template: nx.DiGraph, ctx: PassContext) -> nx.DiGraph:
    return Expander(ctx.spec).run(template)


class _Expression(Walker[tuple[str, Type]]):
    """One expression of one instance, walked into IR nodes: (node name, type) values."""

    def __init__(self, x: Expander, ctx: _Ctx, top: ast.AST, name: str | None):
        self.x, self.ctx, self.top, self.top_name = x, ctx, top, name

    def constant(self, node):
        c = self.x.const(node.value)
        return c, self.x.types[c]

    def name(self, node):
        x, ctx, n = self.x, self.ctx, node.id
        if n in ctx.env:
            return x.const(ctx.env[n]), TensorType((), None)
        if n in x.spec.params:
            return x.const(x.spec.params[n]), TensorType((), None)
        if n in x.bound:
            return x.bound[n], x.types[x.bound[n]]
        if n in x.spec.scalars:
            return x.scalar(n), TensorType((), x.spec.scalars[n].dtype)
        if n in ctx.items:
            return ctx.items[n], x.types[ctx.items[n]]
        return x.read(ctx, n, None, node)

    def subscript(self, node):
        subs = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return self.x.read(self.ctx, node.value.id, list(subs), node)

    def element_bound(self, node):
        return int(self.x.value_of(self.ctx.expr, node, self.x.spec.params))

    def rank(self, value):
        return value[1].rank

    def apply(self, node, op, args, arg_nodes, **kw):
        # the expression's own name goes to its last op: a comparison chain's `and`, or
        # its one comparison's op keeps a numbered name
        named = node is self.top and (op == "and" or not isinstance(node, ast.Compare))
        name = self.top_name if named else None
        source = node_of(self.x.g, args[0][0]) if op == "part" else None
        if source is not None and source.op == "fill":  # a part of a boundary tile: only the part is made
            out = REGISTRY["part"].infer(self.x.types[source.name], **kw)
            fill = dict(source.data.kwargs)
            if not self.x.g.out_degree(source.name):  # the read's whole tile: never made
                self.x.g.remove_node(source.name)
            return self.x.op(self.ctx, "fill", [], node, name, **{**fill, "shape": out.shape})
        return self.x.op(self.ctx, op, args, node, name, **kw)

    def keywords(self, node: ast.Call, op: Op) -> dict:
        return {k.arg: self.x.value_of(self.ctx.expr, k.value, self.x.spec.params) for k in node.keywords}

    def call(self, node: ast.Call, op: Op):
        if op.position_only:
            return self.x.position_op(self.ctx, op, node, self.top_name if node is self.top else None)
        if op.sized:  # eye(B): no input, the size a keyword
            size = int(self.x.value_of(self.ctx.expr, node.args[0], self.x.spec.params))
            return self.x.op(self.ctx, op.name, [], node, self.top_name if node is self.top else None, n=size)
        free = self.x.free_indices(self.ctx, node.args[0]) if op.reduction and len(node.args) == 1 else {}
        if free:
            return self.x.reduction(self.ctx, op.name, node, free, self.top_name if node is self.top else None)
        return super().call(node, op)
