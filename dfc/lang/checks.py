"""Semantic checks on a built :class:`Spec`: the mistakes a schema cannot see.

Each check is a function ``check_*(spec, ctx) -> None`` that reports into ``ctx.errors``;
:func:`check_spec` runs them all, so the user sees every problem at once.
"""

from __future__ import annotations

import ast
import functools
import itertools
import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from typing import Iterator

from ..diagnostics import Collector, Diagnostic, Pos, did_you_mean
from ..ops import REGISTRY, ItemsType, TensorType
from .expr import Expr, ExprError, evaluate
from .model import ELEMENT_INDICES, Array, InitCopy, InitExpr, InitFile, InitRandom, Let, Spec, Task, accumulation
from .shapes import ENUMERATION_LIMIT, INDEX_LETTERS, Scope, fits, index_range_error, infer, tile_example

BUILTIN_METRIC_NAMES = ("iterations_run",)


@dataclass
class Context:
    spec: Spec
    errors: Collector = field(default_factory=Collector)
    item_types: dict[str, tuple[TensorType, Pos, str]] = field(default_factory=dict)  # queue -> first item
    producers: dict[str, list[str]] = field(default_factory=dict)
    consumers: dict[str, list[str]] = field(default_factory=dict)
    via_users: dict[str, list[str]] = field(default_factory=dict)

    def report(self, e: ExprError) -> None:
        self.errors.extend(e.diagnostics)

    def scope(self, task: Task | None = None, scalars=None, later=None, items=None, in_loop: bool = False) -> Scope:
        """What an expression sees: the task's indices (in the body of a loop with an
        `index:`, that index too, ranging over the iterations), params, scalars, items."""
        loop = self.spec.loop
        outer = {loop.index: loop.max} if in_loop and loop is not None and loop.index else {}
        return Scope(
            self.spec.arrays,
            self.spec.params,
            {**outer, **(dict(task.domain) if task else {})},
            scalars or {},
            items or {},
            later or {},
            task.where if task else None,
        )


def _typed(ctx: Context, expr: Expr | None, scope: Scope, allow_free: bool = False):
    if expr is None:
        return None
    try:
        return infer(expr, scope, allow_free)
    except ExprError as e:
        ctx.report(e)
        return None


# ---------------------------------------------------------------------------- names


def check_names(spec: Spec, ctx: Context) -> None:
    seen: dict[str, str] = {}
    for kind, names in (
        ("param", spec.params),
        ("array", spec.arrays),
        ("scalar", spec.scalars),
        ("queue", spec.queues),
    ):
        for name in names:
            where = spec.source.key((kind + "s", name))
            if name in REGISTRY and REGISTRY[name].callable:
                ctx.errors.error(where, "name-clash", f"{kind} '{name}' has the name of a function", "rename it")
            elif name in seen:
                ctx.errors.error(
                    where, "name-clash", f"'{name}' is both a {seen[name]} and a {kind}", "give each a name of its own"
                )
            seen.setdefault(name, kind)
    for name, loc in spec.placement.constraints.items():
        if name not in spec.tasks and name not in spec.arrays and name not in spec.queues:
            ctx.errors.error(
                spec.source.key(("placement", "constraints", name)),
                "undefined-name",
                f"constraint on '{name}', which is no task, array or queue",
                did_you_mean(name, [*spec.tasks, *spec.arrays, *spec.queues]),
            )


# ---------------------------------------------------------------------------- arrays


def check_arrays(spec: Spec, ctx: Context) -> None:
    for a in spec.arrays.values():
        p = ("arrays", a.name, "init")
        if isinstance(a.init, InitCopy) and a.init.source in spec.arrays:
            src = spec.arrays[a.init.source]
            if (src.shape, src.dtype) != (a.shape, a.dtype):
                ctx.errors.error(
                    spec.source.value(p),
                    "shape-mismatch",
                    f"'{a.name}' ({a.type}) cannot start as a copy of '{src.name}' ({src.type})",
                    f"make '{a.name}' `like: {src.name}`",
                )
            elif "cyclic" in (a.tiling.kind, src.tiling.kind) and (a.tiling.kind, a.tiling.grid) != (
                src.tiling.kind,
                src.tiling.grid,
            ):
                ctx.errors.error(
                    spec.source.value(p),
                    "bad-init",
                    f"'{a.name}' ({a.tiling.kind}, {a.tiling.grid[0]} tiles) cannot start as a copy of "
                    f"'{src.name}' ({src.tiling.kind}, {src.tiling.grid[0]} tiles): a copy is made tile "
                    "by tile, and a cyclic tile holds every P-th element",
                    f"give '{a.name}' the tiling of '{src.name}', or copy it with a task, which redistributes: "
                    f"`tasks: {{retile: {{compute: {src.name}, out: {a.name}}}}}`",
                )
        if (
            isinstance(a.init, InitRandom)
            and a.init.random == "spd"
            and (len(a.shape) != 2 or a.shape[0] != a.shape[1])
        ):
            ctx.errors.error(
                spec.source.value(p),
                "shape-mismatch",
                f"a symmetric positive definite matrix must be square; '{a.name}' is {a.type}",
            )
        if isinstance(a.init, InitRandom) and a.init.diagonal is not None:
            where = spec.source.value(p + ("diagonal",))
            if a.init.random != "spd":
                ctx.errors.error(
                    where,
                    "bad-value",
                    f"'diagonal' applies to `random: spd`, not `random: {a.init.random}`",
                    "remove it",
                )
            elif a.init.diagonal <= 0:
                ctx.errors.error(
                    where,
                    "bad-value",
                    f"the diagonal of '{a.name}' is {a.init.diagonal}: a positive definite matrix needs > 0",
                    f"leave it out for the default ({a.shape[0] if a.shape else 'n'})",
                )
        if isinstance(a.init, InitFile):
            check_npy(ctx, a, spec.source.value(p))
        if isinstance(a.init, InitExpr):
            _check_init_expr(spec, ctx, a, p)
        if a.boundary is not None and not _holds_value(a.boundary, a.dtype):
            ctx.errors.error(
                spec.source.value(("arrays", a.name, "boundary")),
                "bad-value",
                f"boundary {a.boundary} is not a value of '{a.name}' ({a.dtype})",
                "give a number the array's dtype holds exactly (a whole number for an integer array)",
            )


def _holds_value(v: float | int, dtype: str) -> bool:
    """Whether ``dtype`` holds ``v`` (an integer dtype only whole numbers), without overflow."""
    if dtype.startswith("int") and (isinstance(v, float) and not v.is_integer()):
        return False
    return fits(v, dtype)


def _check_init_expr(spec: Spec, ctx: Context, a: Array, p: tuple) -> None:
    """An init expression: one index name per dimension, none hiding a param, and a
    number or a condition of the element's indices and params."""
    init = a.init
    assert isinstance(init, InitExpr)
    names = init.names(len(a.shape))
    if init.index == ("_row", "_col") and len(a.shape) != 2:  # init: eye
        ctx.errors.error(spec.source.value(p), "shape-mismatch", f"'eye' makes a matrix; '{a.name}' is {a.type}")
        return
    if init.index and len(init.index) != len(a.shape):
        ctx.errors.error(
            spec.source.value(p + ("index",)),
            "shape-mismatch",
            f"'{a.name}' has {len(a.shape)} dimension(s) but `index` names {len(init.index)}",
            f"name one index per dimension, e.g. index: [{', '.join(ELEMENT_INDICES[: len(a.shape)])}]",
        )
        return
    for n in names:
        if n in spec.params:
            ctx.errors.error(
                spec.source.value(p + ("expr",)),
                "name-clash",
                f"the element index '{n}' of '{a.name}' hides the param of the same name",
                "name the indices with `index: [...]`, e.g. index: [r, c]",
            )
            return
    if init.expr is None:
        return  # its mistake is reported
    for n, node in _first_uses(init.expr).items():
        if n not in names and (n in spec.arrays or n in spec.scalars):
            ctx.report(
                init.expr.error(
                    node,
                    "undefined-name",
                    f"an init expression reads no {'array' if n in spec.arrays else 'scalar'} ('{n}')",
                    f"it sees the element's indices ({', '.join(names)}) and params; compute values from other "
                    f"arrays with a task (`out: {a.name}[...]`)",
                )
            )
            return
    scope = Scope({}, spec.params, {}, {n: TensorType((), "float64") for n in names})
    t = _typed(ctx, init.expr, scope)
    if isinstance(t, TensorType) and t.dtype and "complex" in t.dtype and "complex" not in a.dtype:
        ctx.report(
            init.expr.error(None, "dtype-mismatch", f"'{init.expr.text}' is complex but '{a.name}' is {a.dtype}")
        )


def check_npy(ctx: Context, a: Array, pos: Pos) -> None:
    from ..inputs import InputError, regular_size
    from ..ops.npyfile import data_mismatch, read_header

    assert isinstance(a.init, InitFile)  # the only caller checks it
    path = a.init.file
    if not os.path.exists(path):
        ctx.errors.error(
            pos,
            "missing-file",
            f"no file '{path}' for the initial value of '{a.name}'",
            "paths are relative to the spec's folder",
        )
        return
    try:
        size = regular_size(path, "a .npy file")
    except InputError as e:
        ctx.errors.error(pos, "bad-file", str(e))
        return
    try:
        header = read_header(path)
    except Exception as e:  # a corrupt or foreign file: say so, never crash
        ctx.errors.error(pos, "bad-file", f"'{path}' is not a readable .npy file ({e})")
        return
    shape, dtype = header.shape, header.dtype
    if header.fortran_order or dtype.byteorder == ">":
        ctx.errors.error(
            pos,
            "bad-file",
            f"'{path}' is stored in Fortran order or big-endian",
            "save it with numpy.save(path, numpy.ascontiguousarray(a))",
        )
    elif tuple(shape) != a.shape or dtype.name != a.dtype:
        ctx.errors.error(
            pos,
            "shape-mismatch",
            f"'{path}' holds {dtype.name}{list(shape)} but '{a.name}' is {a.type}",
            "make the array's shape and dtype match the file",
        )
    elif why := data_mismatch(path, header, size):  # no more data (appended), no less
        ctx.errors.error(
            pos, "bad-file", why, "the file is truncated or has data appended: save it again with numpy.save"
        )


# ---------------------------------------------------------------------------- tasks


def check_task(spec: Spec, ctx: Context, task: Task, scalars: dict, later: dict) -> None:
    in_loop = _task_path(spec, task)[0] == "loop"
    outer = spec.loop.index if in_loop and spec.loop is not None else None
    for idx, _ in task.domain:
        if idx in spec.params or idx in spec.arrays or idx in spec.scalars or idx == outer:
            ctx.errors.error(
                spec.source.key(_task_path(spec, task) + ("for", idx)),
                "name-clash",
                f"index '{idx}' hides the {_kind_of(spec, idx)} of the same name",
                "rename the index",
            )
    items = {}
    if task.pop is not None:
        if task.pop not in spec.queues:
            ctx.errors.error(
                spec.source.value(_task_path(spec, task) + ("pop",)),
                "undefined-name",
                f"no queue named '{task.pop}'",
                did_you_mean(task.pop, spec.queues),
            )
        else:
            ctx.consumers.setdefault(task.pop, []).append(task.name)
            if task.pop in ctx.item_types:
                count = sum(t.instances for t in _all_tasks(spec) if t.queue == task.pop)
                items[task.pop] = ItemsType(ctx.item_types[task.pop][0], count)
    scope = ctx.scope(task, scalars, later, items, in_loop)
    if task.where is not None:
        _check_where(spec, ctx, task, scope)
    # the items' type is unknown when every producer's expression has a mistake: already reported
    untyped = task.pop is not None and task.pop in spec.queues and task.pop not in items and ctx.producers.get(task.pop)
    result = None if untyped else _typed(ctx, task.compute, scope, allow_free=False)
    if task.out is not None:
        target = _target_type(ctx, task.out, scope)
        if result is not None and target is not None and task.compute is not None:
            _compare_types(ctx, task.compute, result, target, task.out)
        if target is not None:
            _check_one_writer(ctx, task, task.out, scope, None)
    if task.push is not None:
        check_push(spec, ctx, task, result, scope)
    elif task.push_unparsed is not None and task.push_unparsed in spec.queues:  # its target's mistake is
        ctx.producers.setdefault(task.push_unparsed, []).append(task.name)  # reported: the queue has a producer
    typed_targets = []
    for target_expr, value_expr in task.update:
        target = _target_type(ctx, target_expr, scope)
        value = _typed(ctx, value_expr, scope)
        if target is not None and value is not None:
            _compare_types(ctx, value_expr, value, target, target_expr)
        if target is not None:
            _check_one_writer(ctx, task, target_expr, scope, value_expr)
            typed_targets.append(target_expr)
    if len(typed_targets) > 1:
        _check_targets_apart(ctx, task, typed_targets, scope)


def _check_one_writer(ctx: Context, task: Task, target: Expr, scope: Scope, value: Expr | None) -> None:
    """Refuse instances of one task that write one tile: they run at once, so all but one
    update would be lost (and which one survives differs between engines and runs). A
    sum over instances is an accumulation (``T: T + e``: the instances add their terms
    in the order of their indices) or goes through a queue with a reducer."""
    many = [(i, n) for i, n in task.domain if n > 1]
    if not many:
        return
    subs = _subscripts(target.tree)
    array = ctx.spec.arrays.get(target.base() or "")
    one_tile = array is not None and array.ntiles == 1
    if value is not None and accumulation(target, value) is not None and (subs or one_tile):
        return  # an ordered accumulation: defined whatever the instances write
    used = {n.id for sub in subs for n in ast.walk(sub) if isinstance(n, ast.Name)}
    accumulate = (
        f"accumulate: write the update as '{target.text}: {target.text} + ...' (the instances add their "
        "terms in the order of their indices)"
        if value is not None
        else f"accumulate with `update: {{'{target.text}': '{target.text} + ...'}}`"
    )
    hint = (
        f"give each instance its own tile (index '{target.base()}' with every index of `for:`), {accumulate}, "
        "or push the values into a queue whose reducer sums them (`push:` and `queues:`)"
    )
    if not subs and not one_tile and value is not None and accumulation(target, value) is not None:
        hint = (
            f"an accumulation adds into one tile at a time: index '{target.base()}' (e.g. "
            f"{tile_example(target.base() or '', array.tiling.grid if array else ())}), or push the values "
            "into a queue whose reducer sums them"
        )
    missing = [i for i, _ in many if i not in used]
    if (not subs or missing) and task.where is None:
        what = (
            f"each write the whole array '{target.text}'"
            if not subs
            else f"write '{target.text}', one tile whatever {_names(missing)} {'is' if len(missing) == 1 else 'are'}"
        )
        ctx.report(
            target.error(
                target.tree,
                "lost-update",
                f"the {task.instances} instances of '{task.name}' {what}: all but one update would be lost",
                hint,
            )
        )
        return
    names = [i for i, _ in many]
    outer = [n for n in scope.indices if n not in dict(task.domain)]  # a loop's index: one iteration at a time
    envs = scope.kept([*outer, *(i for i, _ in task.domain)])
    if envs is None:
        return  # too many to list: the indices are all there, and a repeat is left unproven
    seen: dict[tuple, dict] = {}
    parts = [Expr(target.text, sub, target.pos, target.exact) for sub in subs]
    for env in envs:
        try:
            key = tuple(evaluate(p, {**scope.params, **env}) for p in parts)
        except ExprError:
            return  # reported where the target is checked
        first = seen.setdefault((tuple(env[o] for o in outer), key), env)
        if first is not env:
            a, b = (", ".join(f"{i}={e[i]}" for i in names) for e in (first, env))
            tile = f"{target.base()}[{', '.join(map(str, key))}]" if key else f"'{target.base()}'"
            ctx.report(
                target.error(
                    target.tree,
                    "lost-update",
                    f"instances {a} and {b} of '{task.name}' both write {tile} "
                    f"through '{target.text}': all but one update would be lost",
                    hint,
                )
            )
            return


def _check_targets_apart(ctx: Context, task: Task, targets: list[Expr], scope: Scope) -> None:
    """Two targets of one task's `update:` never name one tile (`s` and `s[0]`, or `C[0]`
    and `C[k]` at k = 0): which write would land has no meaning."""
    outer = [n for n in scope.indices if n not in dict(task.domain)]
    envs = scope.kept([*outer, *(i for i, _ in task.domain)])
    if envs is None:
        return  # too many to list
    owner: dict[tuple, int] = {}
    for env in envs:
        for k, target in enumerate(targets):
            subs = _subscripts(target.tree)
            array = ctx.spec.arrays[target.base() or ""]
            try:
                key = tuple(
                    evaluate(Expr(target.text, s, target.pos, target.exact), {**scope.params, **env}) for s in subs
                )
            except ExprError:
                return  # reported where the target is checked
            tiles = [key] if key else list(itertools.product(*(range(g) for g in array.tiling.grid)))
            for tile in tiles:
                first = owner.setdefault((array.name, tuple(env[o] for o in outer), tile), k)
                if first != k:
                    where = ", ".join(f"{i}={env[i]}" for i, _ in task.domain)
                    ctx.report(
                        target.error(
                            target.tree,
                            "lost-update",
                            f"'{targets[first].text}' and '{target.text}' of '{task.name}' both write "
                            f"{array.name}[{', '.join(map(str, tile))}]" + (f" (at {where})" if where else ""),
                            "one target per tile: write the two updates as one expression",
                        )
                    )
                    return


def _check_where(spec: Spec, ctx: Context, task: Task, scope: Scope) -> None:
    """A task's `where:` is a condition on its indices (and params, and a loop's index)
    that keeps at least one instance."""
    where = task.where
    assert where is not None
    unknown = {n: node for n, node in _first_uses(where).items() if n not in scope.indices and n not in scope.params}
    for name, node in unknown.items():
        hint = (
            "`where:` is a condition on the task's `for:` indices and params, e.g. 'k < j <= i'"
            if name not in spec.arrays and name not in spec.scalars
            else f"'{name}' is not an index: `where:` chooses instances by their indices alone"
        )
        near = did_you_mean(name, [*scope.indices, *scope.params])
        ctx.report(where.error(node, "undefined-name", f"undefined name '{name}' in `where:`", near or hint))
    if unknown:
        return
    names = list(scope.indices)
    box = math.prod(scope.indices.values())
    if box > ENUMERATION_LIMIT:
        return  # too many to try: the instances it keeps are left unchecked
    kept = 0
    try:
        for values in itertools.product(*(range(n) for n in scope.indices.values())):
            at = dict(zip(names, values))
            v = evaluate(where, {**scope.params, **at})
            if not isinstance(v, bool):
                inst = ", ".join(f"{k}={x}" for k, x in at.items())
                ctx.report(
                    where.error(
                        None,
                        "bad-type",
                        f"`where: {where.text}` gives {v} (at {inst}), not a condition",
                        "compare indices, e.g. 'j <= i' or 'i != k'",
                    )
                )
                return
            kept += v
    except ExprError as e:
        ctx.report(e)
        return
    if not kept and box > 1:  # (a box of one instance is a degenerate size: N = B runs no TRSM)
        loop = " in any iteration" if any(n not in dict(task.domain) for n in scope.indices) else ""
        ctx.report(
            where.error(
                None,
                "empty-domain",
                f"`where: {where.text}` keeps none of the {box} instances of '{task.name}'{loop}",
                "the task would never run: loosen the condition, or remove the task",
            )
        )


def _names(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _target_type(ctx: Context, target: Expr, scope: Scope) -> TensorType | None:
    tree = target.tree
    name = tree.value if isinstance(tree, ast.Subscript) else tree
    if isinstance(name, ast.Subscript) and isinstance(name.value, ast.Name):
        ctx.report(
            target.error(
                tree,
                "bad-target",
                f"'{target.text}' is a part of a tile: a task writes whole tiles",
                f"compute the whole tile (concat(...) joins parts) and write '{ast.unparse(name)}'",
            )
        )
        return None
    if not isinstance(name, ast.Name):
        ctx.report(
            target.error(
                tree, "bad-target", f"'{target.text}' is not an array or a tile of one", "write ARRAY or ARRAY[i, j]"
            )
        )
        return None
    if name.id not in scope.arrays:
        ctx.report(
            target.error(
                name,
                "undefined-name",
                f"no array named '{name.id}'",
                did_you_mean(name.id, scope.arrays) or "declare it under `arrays:`",
            )
        )
        return None
    if _slices(
        ctx,
        target,
        scope.arrays[name.id].tiling.grid,
        scope,
        f"':' in a target: '{target.text}' must name one tile (an index per dimension) or the whole array",
        f" (every index in `for:`), or the whole array '{name.id}'",
    ):
        return None
    return _typed(ctx, target, replace(scope, writing=True))


def _subscripts(tree: ast.AST) -> list[ast.expr]:
    """The subscripts of a target or a key: [i, j] for 'A[i, j]', [] for 'A'."""
    if not isinstance(tree, ast.Subscript):
        return []
    return tree.slice.elts if isinstance(tree.slice, ast.Tuple) else [tree.slice]


def _slices(ctx: Context, target: Expr, grid: tuple[int, ...] | None, scope: Scope, message: str, more: str) -> bool:
    """Report every ':' in a target or a queue key: a write names one tile per index (the
    tile tasks have no row of tiles to write). True if there was one. The hint's example
    puts an unused index (0 along a dimension of one tile) where each ':' was."""
    subs = _subscripts(target.tree)
    slices = [s for s in subs if isinstance(s, ast.Slice)]
    if not slices:
        return False
    taken = target.names()
    fresh = iter([n for n in scope.indices if n not in taken] + [c for c in INDEX_LETTERS if c not in taken])
    one_tile = [grid is not None and len(grid) == len(subs) and grid[d] == 1 for d in range(len(subs))]
    example = ", ".join(
        ("0" if one else next(fresh)) if isinstance(s, ast.Slice) else ast.unparse(s) for s, one in zip(subs, one_tile)
    )
    for s in slices:
        ctx.report(target.error(s, "bad-target", message, f"write {target.base()}[{example}]{more}"))
    return True


def _compare_types(ctx: Context, expr: Expr, got, want: TensorType, target: Expr) -> None:
    if not isinstance(got, TensorType):
        ctx.report(expr.error(None, "shape-mismatch", f"'{expr.text}' gives {got}, not an array"))
        return
    if got.shape != want.shape and got.rank != 0:
        # a tile's array by name, a whole array as written ('(q)' stays '(q)'); _target_type checked the base
        name = target.base() if isinstance(target.tree, ast.Subscript) else target.text
        ctx.report(
            expr.error(
                None,
                "shape-mismatch",
                f"'{target.text}' is {list(want.shape)} but '{expr.text}' gives {list(got.shape)}",
                f"make {name}'s tile {list(got.shape)}, or change the expression so that it gives {list(want.shape)}",
            )
        )
    elif got.dtype is not None and got.dtype != want.dtype and not (got.rank == 0 and want.rank):
        ctx.report(
            expr.error(
                None,
                "dtype-mismatch",
                f"'{target.text}' holds {want.dtype} but '{expr.text}' gives {got.dtype}",
                "declare the arrays with the same dtype; dfc never converts implicitly",
            )
        )


def check_push(spec: Spec, ctx: Context, task: Task, item, scope: Scope) -> None:
    assert task.push is not None  # check_task calls it only then
    tree = task.push.tree
    qname = tree.value if isinstance(tree, ast.Subscript) else tree
    if not isinstance(qname, ast.Name):
        ctx.report(task.push.error(tree, "bad-target", f"'{task.push.text}' is not a queue", "write QUEUE[key]"))
        return
    if qname.id not in spec.queues:
        ctx.report(
            task.push.error(
                qname,
                "undefined-name",
                f"no queue named '{qname.id}'",
                did_you_mean(qname.id, spec.queues) or "declare it under `queues:`",
            )
        )
        return
    queue = spec.queues[qname.id]
    ctx.producers.setdefault(queue.name, []).append(task.name)
    keys = _subscripts(tree)
    if isinstance(item, TensorType):
        _record_item(ctx, queue.name, item, task.compute)
    into = spec.arrays.get(queue.reduce.into) if queue.reduce and queue.reduce.into else None
    grid = into.tiling.grid if into is not None else None
    what = f"a tile of '{into.name}'" if into is not None else "an item"
    sliced = _slices(
        ctx,
        task.push,
        grid,
        scope,
        f"':' in a queue key: '{task.push.text}' must name one tile per index",
        f": a key names {what} with an index per dimension",
    )
    if into is not None and not sliced:
        if len(keys) != len(into.tiling.grid):
            example = tile_example(queue.name, into.tiling.grid, [ast.unparse(k) for k in keys])
            ctx.report(
                task.push.error(
                    tree,
                    "index-rank",
                    f"items of '{queue.name}' reduce into tiles of '{into.name}', which has "
                    f"{len(into.tiling.grid)} tile dimension(s); the key has {len(keys)}",
                    f"push into {example}",
                )
            )
        else:
            for d, k in enumerate(keys):
                _check_key(ctx, task.push, k, scope, into.tiling.grid[d], d, into.name)
    if queue.shard is not None:
        _check_shard(ctx, queue, task, scope)


def _enumerate(scope: Scope, names: list[str]):
    combos = 1
    for n in names:
        combos *= scope.indices[n]
    ranges = [((0, scope.indices[n] - 1) if combos > ENUMERATION_LIMIT else range(scope.indices[n])) for n in names]
    for c in itertools.product(*ranges):
        yield {**scope.params, **dict(zip(names, c))}


def _values(ctx: Context, expr: Expr, scope: Scope) -> list[int] | None:
    names = sorted(n for n in expr.names() if n in scope.indices)
    unknown = {n: node for n, node in _first_uses(expr).items() if n not in scope.indices and n not in scope.params}
    for name, node in unknown.items():
        ctx.report(
            expr.error(
                node,
                "undefined-name",
                f"undefined name '{name}'",
                did_you_mean(name, [*scope.indices, *scope.params])
                or "use the pushing task's `for:` indices and params",
            )
        )
    if unknown:
        return None
    out = []
    try:
        for env in _enumerate(scope, names):
            v = evaluate(expr, env)
            if isinstance(v, bool) or not isinstance(v, int):
                ctx.report(expr.error(None, "not-whole", f"'{expr.text}' gives {v}, not a whole number"))
                return None
            out.append(v)
    except ExprError as e:
        ctx.report(e)
        return None
    return out


def _first_uses(expr: Expr) -> dict[str, ast.Name]:
    """Each name the expression uses (function names excluded), at its first occurrence,
    in the order of their positions."""
    funcs = {id(n.func) for n in ast.walk(expr.tree) if isinstance(n, ast.Call)}
    names = sorted(
        (n for n in ast.walk(expr.tree) if isinstance(n, ast.Name) and id(n) not in funcs),
        key=lambda n: (n.lineno, n.col_offset),
    )
    first: dict[str, ast.Name] = {}
    for n in names:
        first.setdefault(n.id, n)
    return first


def _check_key(ctx, push: Expr, key: ast.expr, scope: Scope, extent: int, dim: int, into: str) -> None:
    sub = Expr(push.text, key, push.pos, push.exact)
    values = _values(ctx, sub, scope)
    if values and (min(values) < 0 or max(values) >= extent):
        ctx.report(
            index_range_error(
                sub, key, f"key '{ast.unparse(key)}' (a tile of '{into}')", min(values), max(values), extent, dim, scope
            )
        )


def _check_shard(ctx: Context, queue, task: Task, scope: Scope) -> None:
    values = _values(ctx, queue.shard, scope)
    if values and (min(values) < 0 or max(values) >= queue.shards):
        ctx.report(
            queue.shard.error(
                None,
                "out-of-range",
                f"shard '{queue.shard.text}' gives {min(values)} to {max(values)} for the "
                f"pushes of '{task.name}', but '{queue.name}' has {queue.shards} shard(s)",
                f"take it modulo the shard count: ({queue.shard.text}) % {queue.shards}",
            )
        )


def _record_item(ctx: Context, queue: str, item: TensorType, expr: Expr | None) -> None:
    first = ctx.item_types.get(queue)
    if first is None:
        ctx.item_types[queue] = (item, expr.pos if expr else Pos(), expr.text if expr else "")
    elif (first[0].shape, first[0].dtype or item.dtype) != (item.shape, item.dtype or first[0].dtype) and expr:
        ctx.report(
            expr.error(
                None,
                "shape-mismatch",
                f"'{expr.text}' pushes {item} into '{queue}', which already receives {first[0]} (from '{first[2]}')",
                "every item of a queue has the same shape and dtype",
            )
        )


# ---------------------------------------------------------------------------- scalars, loop


def check_scalars_and_loop(spec: Spec, ctx: Context) -> dict[str, TensorType]:
    scalars: dict[str, TensorType] = {}
    for s in spec.scalars.values():
        scalars[s.name] = TensorType((), s.dtype)
    for s in spec.scalars.values():
        t = _typed(ctx, s.init, ctx.scope(scalars={k: v for k, v in scalars.items() if k != s.name}), allow_free=True)
        _check_scalar_value(ctx, s.init, t, s.via, s.name, s.pos)
    if spec.loop is None:
        return scalars
    lets = [s for s in spec.loop.steps if isinstance(s, Let)]
    later = {
        s.let: f"`let: {s.let}` binds it later in the loop body; declare it under `scalars:` with an `init:`"
        " so the first iteration has a value"
        for s in lets
        if s.let not in scalars
    }
    _check_loop_index(spec, ctx)
    visible = dict(scalars)
    for step in spec.loop.steps:
        if isinstance(step, Let):
            expr = step.reduce or step.value
            scope = ctx.scope(scalars=visible, later=later, in_loop=True)
            t = _typed(ctx, expr, scope, allow_free=step.reduce is not None)
            _check_scalar_value(ctx, expr, t, step.via, step.let, step.pos)
            # bound even when its expression has a mistake (reported): later steps see it
            visible[step.let] = TensorType((), getattr(t, "dtype", None) or "float64")
            later.pop(step.let, None)
        else:
            check_task(spec, ctx, step, visible, later)
    if spec.loop.until is not None:
        t = _typed(ctx, spec.loop.until, ctx.scope(scalars={**visible}))
        if isinstance(t, TensorType) and (t.dtype != "bool" or t.rank):
            ctx.report(
                spec.loop.until.error(
                    None,
                    "bad-type",
                    f"`until: {spec.loop.until.text}` is not a condition",
                    "compare scalars, e.g. 'rr < tol**2'",
                )
            )
    return visible


def _check_loop_index(spec: Spec, ctx: Context) -> None:
    """A loop with an `index:` is unrolled: it runs exactly `max` times, each iteration
    compiled with its own value of the index."""
    loop = spec.loop
    assert loop is not None
    if loop.index is None:
        return
    k = loop.index
    if k in spec.params or k in spec.arrays or k in spec.scalars:
        ctx.errors.error(
            spec.source.value(("loop", "index")),
            "name-clash",
            f"loop index '{k}' hides the {'param' if k in spec.params else 'array' if k in spec.arrays else 'scalar'} "
            "of the same name",
            "rename the index",
        )
    for key, why in (("until", "it runs exactly `max` times"), ("checkpoint", "it has no iterations to resume")):
        if getattr(loop, key) is not None:
            ctx.errors.error(
                spec.source.key(("loop", key)),
                "task-form",
                f"a loop with `index: {k}` is unrolled at compile time: {why}",
                f"remove `{key}:`, or remove `index:` (a loop that stops early, or is checkpointed, "
                "cannot see its iteration number)",
            )


def _check_scalar_value(ctx: Context, expr: Expr | None, t, via: str | None, name: str, pos: Pos) -> None:
    """A scalar's value (``t``: None when unknown, after a mistake) and the queue it is
    reduced through, which has a producer even when the value has a mistake."""
    if expr is not None and t is not None and (not isinstance(t, TensorType) or t.rank):
        ctx.report(
            expr.error(
                None,
                "shape-mismatch",
                f"'{name}' is a scalar but '{expr.text}' gives {t}",
                "reduce it, e.g. with sum(...), dot(...) or norm(...)",
            )
        )
    if via is not None:
        if via not in ctx.spec.queues:
            ctx.errors.error(
                expr.pos if expr is not None else pos,
                "undefined-name",
                f"no queue named '{via}' for '{name}'",
                did_you_mean(via, ctx.spec.queues),
            )
        else:
            ctx.producers.setdefault(via, []).append(name)
            ctx.via_users.setdefault(via, []).append(name)
            if ctx.spec.queues[via].reduce is None:
                ctx.errors.error(
                    ctx.spec.queues[via].pos,
                    "queue-reduce",
                    f"'{name}' is reduced through '{via}', which has no `reduce:`",
                    f"give '{via}' a reducer, e.g. reduce: {{op: sum}}",
                )
            if isinstance(t, TensorType) and t.rank == 0:
                _record_item(ctx, via, TensorType((), t.dtype or "float64"), expr)


# ---------------------------------------------------------------------------- queues


def check_queues(spec: Spec, ctx: Context) -> None:
    for q in spec.queues.values():
        key = spec.source.key(("queues", q.name))
        if not ctx.producers.get(q.name):
            ctx.errors.error(
                key,
                "queue-unused",
                f"queue '{q.name}' has no producer",
                f"push into it from a task (`push: {q.name}[...]`) or reduce through it (`via: {q.name}`)",
            )
        if q.reduce is None and not ctx.consumers.get(q.name) and not ctx.via_users.get(q.name):
            ctx.errors.error(
                key,
                "queue-unused",
                f"queue '{q.name}' is never drained: it has no consumer",
                f"add `reduce:` to it, or a task with `pop: {q.name}`",
            )
        if q.reduce is not None and q.reduce.via == "collective":
            _check_collective(spec, ctx, q)
        if q.reduce is None or q.reduce.into is None:
            continue
        into_pos = spec.source.value(("queues", q.name, "reduce", "into"))
        arr = spec.arrays.get(q.reduce.into)
        if arr is None:
            ctx.errors.error(
                into_pos,
                "undefined-name",
                f"no array named '{q.reduce.into}' to reduce into",
                did_you_mean(q.reduce.into, spec.arrays),
            )
            continue
        item = ctx.item_types.get(q.name)
        if item and (item[0].shape != arr.tiling.tile or (item[0].dtype or arr.dtype) != arr.dtype):
            ctx.errors.error(
                into_pos,
                "reduce-into",
                f"'{q.name}' receives {item[0]} (from '{item[2]}') but reduces into tiles of "
                f"'{arr.name}', which are {arr.tile_type}",
                f"make '{arr.name}' tiles {list(item[0].shape)} of {item[0].dtype}, or push tiles that match",
            )


#: The dtypes TensorFlow's CPU collectives reduce (``reduce: {via: collective}``).
COLLECTIVE_DTYPES = frozenset({"float32", "float64", "int32", "int64"})


def _check_collective(spec: Spec, ctx: Context, q) -> None:
    """An all-reduce leaves the reduction on every device holding a partial result: it
    stands for a reduce-and-broadcast of ``via:`` reductions, not for items pushed into
    the queue or reduced into one tile's owner."""
    assert q.reduce is not None
    via_pos = spec.source.value(("queues", q.name, "reduce", "via"))
    if q.reduce.into is not None:
        ctx.errors.error(
            via_pos,
            "collective",
            f"'{q.name}' reduces into tiles of '{q.reduce.into}' (each on one owner): an all-reduce "
            "would leave every sum on every producer",
            "drop `via: collective` (or write `via: queue`); collectives serve `via:` reductions of scalars",
        )
        return
    item = ctx.item_types.get(q.name)  # the let's type: its items (the terms) are complex when it is
    if item is not None and (item[0].dtype or "").startswith("complex"):
        ctx.errors.error(
            via_pos,
            "collective",
            f"'{q.name}' reduces {item[0].dtype} values (from '{item[2]}'): TensorFlow's collectives "
            f"reduce {', '.join(sorted(COLLECTIVE_DTYPES))}",
            "drop `via: collective` (the queue reduces any dtype)",
        )
    pushers = sorted(set(ctx.producers.get(q.name, [])) - set(ctx.via_users.get(q.name, [])))
    if pushers:
        ctx.errors.error(
            via_pos,
            "collective",
            f"'{q.name}' takes items pushed by {', '.join(repr(t) for t in pushers)}: an all-reduce has no "
            "queue to push into",
            f"use a separate queue for the pushes, or reduce through '{q.name}' with `via:` only",
        )


# ---------------------------------------------------------------------------- graph


def check_cycles(spec: Spec, ctx: Context) -> None:
    """Dependency cycles among top-level tasks and scalar initialisations (loops are the
    place for cycles)."""
    writes: dict[tuple, set[str]] = {}
    reads: dict[tuple, set[str]] = {}
    for t in spec.tasks.values():
        w = {e.base() for e, _ in t.update} | {t.out.base() if t.out else None} | {t.queue}
        q = t.queue
        reducer = spec.queues[q].reduce if q is not None and q in spec.queues else None
        if reducer is not None and reducer.into:
            w.add(reducer.into)
        r = {n for e in (t.compute, *(v for _, v in t.update)) if e for n in e.names()} | {t.pop}
        writes[("tasks", t.name)] = {n for n in w if n is not None}
        reads[("tasks", t.name)] = {n for n in r if n is not None}
    for sc in spec.scalars.values():
        if sc.init is not None:
            writes[("scalars", sc.name)], reads[("scalars", sc.name)] = {sc.name}, sc.init.names()
    nodes = sorted(writes)
    edges = {a: [b for b in nodes if b != a and writes[a] & reads[b]] for a in nodes}
    shown = {n: n[1] if n[0] == "tasks" else f"scalar {n[1]}" for n in nodes}
    state: dict[tuple, int] = {}
    for start in nodes:
        if state.get(start):
            continue
        stack: list[tuple[tuple, Iterator[tuple], tuple]] = [(start, iter(edges[start]), (start,))]
        state[start] = 1
        while stack:
            node, it, chain = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                cyc = chain[chain.index(nxt) :] + (nxt,)
                what = "tasks depend" if all(n[0] == "tasks" for n in cyc) else "these depend"
                ctx.errors.error(
                    spec.source.key(nxt),
                    "cycle",
                    f"{what} on each other: " + " -> ".join(shown[n] for n in cyc),
                    "a cycle needs a `loop:`; outside one, every task and scalar `init` must come after what it reads",
                )
                return
            elif state.get(nxt) is None:
                state[nxt] = 1
                stack.append((nxt, iter(edges[nxt]), chain + (nxt,)))


# ---------------------------------------------------------------------------- memory
#
# A run counts its whole footprint, not only the data: `dfc run` starts one TensorFlow
# server per task on this machine, and the client reads every array back. The figures
# are measured (docs/running.md, "Memory"); the rule is the same for every engine, so
# `dfc validate` and `dfc run --engine numpy` refuse what the local cluster cannot hold.

#: one local TensorFlow server's own memory, before any data
SERVER_FOOTPRINT = 384 * 2**20
#: the client with TensorFlow loaded, TF's library pages included (the servers share them)
CLIENT_FOOTPRINT = 640 * 2**20
#: copies of what a `.npy` read takes in (see _npy_read) that each owner of a tile holds while reading it
NPY_READ_COPIES = 4
#: the client holds every array twice at its peak: the tiles read back, then the whole arrays
CLIENT_COPIES = 2
#: the most servers dfc starts on one machine: their footprint and start-up outgrow any one host
MAX_LOCAL_TASKS = 256


def host_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


@functools.lru_cache(maxsize=1)
def local_gpu_memory() -> tuple[int, ...]:
    """The memory of each GPU this machine shows its processes (``CUDA_VISIBLE_DEVICES``
    when it lists indices), by nvidia-smi; () without one."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ()
    try:
        got = subprocess.run(
            [exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    sizes = [int(line) * 2**20 for line in got.stdout.split() if line.isdigit()] if got.returncode == 0 else []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and all(v.strip().isdigit() for v in visible.split(",") if v.strip()):
        sizes = [sizes[int(v)] for v in visible.split(",") if v.strip() and int(v) < len(sizes)]
    return tuple(sizes)


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


@dataclass(frozen=True)
class MemoryUse:
    """What a run on the local cluster holds at its peak, in bytes: servers and client
    stay up from start to end, and memory a process freed is not given back to the system."""

    tasks: int
    data: int  # arrays and queue buffers, on their owners
    npy: int  # `.npy` inputs, read by each owner of a tile
    fetched: int  # the client's copies of the arrays
    local: bool = True  # False: no server and no client on this machine, only the data

    @property
    def servers(self) -> int:
        return self.tasks * SERVER_FOOTPRINT if self.local else 0

    @property
    def client(self) -> int:
        return CLIENT_FOOTPRINT + self.fetched if self.local else 0

    @property
    def on_tasks(self) -> int:
        return self.servers + self.data + self.npy

    @property
    def total(self) -> int:
        return self.on_tasks + self.client

    def figures(self) -> str:
        npy = f" + {gib(self.npy)} reading .npy inputs" if self.npy else ""
        return (
            f"{self.tasks} server{'s' * (self.tasks != 1)} x {gib(SERVER_FOOTPRINT)} + data {gib(self.data)}"
            f"{npy} + client {gib(self.client)} = {gib(self.total)}"
        )


def _owners(spec: Spec, a: Array) -> int:
    """How many tasks may own a tile of ``a``: at most one per tile, within where it is placed."""
    on = a.on or spec.placement.constraints.get(a.name)
    if on is not None and on.job in spec.cluster:
        tasks = 1 if on.task is not None else spec.cluster[on.job].tasks
    else:
        tasks = sum(j.tasks for j in spec.cluster.values())
    return min(a.ntiles, tasks)


def _npy_read(a: Array) -> int:
    """The bytes one tile's read of a `.npy` input takes in: a block tile its band of rows
    (one byte range of the C-ordered file), a cyclic tile or an untiled array all of them."""
    t = a.tiling
    if t is not None and t.kind == "block" and t.grid and t.grid[0] > 1:
        return a.nbytes // t.grid[0]
    return a.nbytes


def memory_use(spec: Spec, item_types: dict, local: bool = True) -> MemoryUse:
    arrays = sum(a.nbytes for a in spec.arrays.values())
    queued = sum(
        item_types[q.name][0].nbytes * q.capacity * q.shards for q in spec.queues.values() if q.name in item_types
    )
    npy = sum(
        NPY_READ_COPIES * _npy_read(a) * _owners(spec, a) for a in spec.arrays.values() if isinstance(a.init, InitFile)
    )
    return MemoryUse(
        sum(j.tasks for j in spec.cluster.values()), arrays + queued, npy if local else 0, CLIENT_COPIES * arrays, local
    )


def check_memory(spec: Spec, ctx: Context, local: bool = True) -> None:
    """Refuse what the local cluster cannot hold: too many servers for one machine, a job
    whose `memory:` cannot hold its server, more than the declared memory, and a whole
    run beyond this machine's memory. Not ``local`` (`dfc plan`, the NumPy engine, which
    start no server): only the data, against the declared memory or this machine's."""
    host = host_memory()
    jobs = list(spec.cluster.values())
    use = memory_use(spec, ctx.item_types, local)
    if local and use.tasks > MAX_LOCAL_TASKS:
        big = max(jobs, key=lambda j: j.tasks)
        each = f" ({', '.join(f'{j.tasks} {j.name!r}' for j in jobs)})" if len(jobs) > 1 else ""
        ctx.errors.error(
            spec.source.value(("cluster", big.name, "tasks")),
            "too-large",
            f"the local cluster would start {use.tasks} TensorFlow servers{each} on this machine; "
            f"dfc starts at most {MAX_LOCAL_TASKS}",
            f"each server is a process of {gib(SERVER_FOOTPRINT)} that loads TensorFlow: use fewer "
            "tasks (more than one per core does not go faster); a cluster this large needs several "
            "machines, which dfc does not run yet",
        )
        return
    small = [j for j in jobs if local and j.memory is not None and j.memory < SERVER_FOOTPRINT]
    for j in small:
        ctx.errors.error(
            spec.source.value(("cluster", j.name, "memory")),
            "memory",
            f"each '{j.name}' task has {gib(j.memory or 0)} but its TensorFlow server alone takes "
            f"{gib(SERVER_FOOTPRINT)}",
            "give the job more `memory:`, or leave it out to share this machine's",
        )
    if small:
        return
    per_task = {j.name: j.memory if j.memory is not None else host // max(use.tasks, 1) for j in jobs}
    biggest = max(spec.arrays.values(), key=lambda a: a.nbytes, default=None)
    largest = f"largest array: '{biggest.name}' {gib(biggest.nbytes)}; " if biggest else ""
    data_at = spec.source.key(("arrays",)) if spec.arrays else spec.source.value(())
    if all(j.memory is not None for j in jobs):
        capacity = sum(per_task[j.name] * j.tasks for j in jobs)
        has = "the cluster has " + " + ".join(
            f"{j.tasks} '{j.name}' task{'s' * (j.tasks != 1)} x {gib(per_task[j.name])}" for j in jobs
        )
        if use.data > capacity:
            ctx.errors.error(
                data_at,
                "memory",
                f"the data needs {gib(use.data)} but {has}",
                largest + "lower the sizes, add tasks, or set `memory:` per job under `cluster:`",
            )
            return
        if local and use.on_tasks > capacity:
            npy = f" + {gib(use.npy)} reading .npy inputs" if use.npy else ""
            ctx.errors.error(
                data_at,
                "memory",
                f"the tasks need {use.tasks} x {gib(SERVER_FOOTPRINT)} for their servers + data "
                f"{gib(use.data)}{npy} = {gib(use.on_tasks)} but {has}",
                "give the jobs more `memory:` (a task's holds its server too), or lower the sizes",
            )
            return
    if use.total > host and not local:
        ctx.errors.error(
            data_at,
            "memory",
            f"the data needs {gib(use.data)} but this machine has {gib(host)}",
            largest + "lower the sizes",
        )
        return
    if use.total > host:
        mostly_servers = use.servers + CLIENT_FOOTPRINT >= use.total - use.servers - CLIENT_FOOTPRINT
        fit = max(host - use.total + use.servers, 0) // SERVER_FOOTPRINT
        ctx.errors.error(
            spec.source.key(("cluster",)) if mostly_servers else data_at,
            "memory",
            f"a run on the local cluster needs {use.figures()} but this machine has {gib(host)}",
            (
                f"each task is a server of {gib(SERVER_FOOTPRINT)}: use fewer tasks ({fit} fit here)"
                if mostly_servers
                else largest + "lower the sizes or use fewer tasks"
            )
            + (
                ", and fewer owners of each .npy input (a block tile reads its rows, any other tile the whole file)"
                if use.npy
                else ""
            ),
        )
        return
    for j in jobs:
        pinned = sum(a.nbytes for a in spec.arrays.values() if a.on and a.on.job == j.name)
        one = any(a.on and a.on.job == j.name and a.on.task is not None for a in spec.arrays.values())
        room = (per_task[j.name] - (SERVER_FOOTPRINT if local else 0)) * (1 if one else j.tasks)
        if pinned > room:
            ctx.errors.error(
                spec.source.key(("cluster", j.name)),
                "memory",
                f"arrays placed on '{j.name}' need {gib(pinned)} but it has {gib(room)} "
                f"besides its server{'s' * (not one and j.tasks != 1)}",
                "spread them over more tasks or give the job more `memory:`",
            )


def check_gpus(spec: Spec, ctx: Context, local: bool = True) -> None:
    """``gpus``/``gpu_memory`` only where they act (``device: gpu``); the arrays placed on a
    GPU job fit its tasks' GPUs: ``gpu_memory`` each, else this machine's GPUs for a run on
    the local cluster, whose tasks share them when there are more GPU slots than GPUs (a
    TensorFlow process otherwise takes a whole GPU's memory: they get memory growth)."""
    found = local_gpu_memory() if local else ()
    slots = sum(j.tasks * j.gpus for j in spec.cluster.values() if j.device == "gpu")
    for j in spec.cluster.values():
        if j.device != "gpu":
            for k in ("gpus", "gpu_memory"):
                if ("cluster", j.name, k) in spec.source.keys:
                    ctx.errors.error(
                        spec.source.key(("cluster", j.name, k)),
                        "gpu",
                        f"`{k}` is for a job with `device: gpu`; '{j.name}' computes on CPUs",
                        f"add `device: gpu` to '{j.name}', or drop `{k}`",
                    )
            continue
        per_gpu = j.gpu_memory or (min(found) if found else None)
        if per_gpu is None:
            continue  # nothing known to count against: a machine without GPUs, no gpu_memory
        share = -(-slots // len(found)) if j.gpu_memory is None and found else 1
        room = j.gpus * per_gpu // share
        pinned = [a for a in spec.arrays.values() if a.on and a.on.job == j.name]
        one = any(a.on is not None and a.on.task is not None for a in pinned)
        need = sum(a.nbytes for a in pinned) // (1 if one else j.tasks)
        if need > room:
            shared = f", each GPU shared by {share} tasks" if share > 1 else ""
            ctx.errors.error(
                spec.source.key(("cluster", j.name)),
                "memory",
                f"arrays placed on '{j.name}' need {gib(need)} per task but each task has {j.gpus} "
                f"GPU{'s' * (j.gpus != 1)} of {gib(per_gpu)}{shared}",
                "give the job more `gpus:` or tasks, or lower the sizes",
            )


MAX_TILE_TASKS = 10_000_000


def check_size_of_graph(spec: Spec, ctx: Context) -> None:
    if spec.tile_tasks > MAX_TILE_TASKS:
        where = spec.source.key(("tasks",)) if spec.tasks else spec.source.value(("loop",))
        ctx.errors.error(
            where,
            "too-large",
            f"the program has {spec.tile_tasks:.3g} tile tasks; dfc plans at most {MAX_TILE_TASKS:,}",
            "use larger tiles (fewer, bigger tasks)",
        )


def check_verify_and_metrics(spec: Spec, ctx: Context, scalars: dict) -> None:
    v = spec.verify
    scope = replace(ctx.scope(scalars=scalars), whole=True)
    if v is not None:
        expr = getattr(v, "freivalds", None) or getattr(v, "exact", None)
        if expr is not None:
            tree = expr.tree
            if not (isinstance(tree, ast.Compare) and len(tree.ops) == 1 and isinstance(tree.ops[0], ast.Eq)):
                ctx.report(
                    expr.error(
                        None,
                        "bad-verify",
                        f"'{expr.text}' is not an equation",
                        "write it as LEFT == RIGHT, e.g. 'C == A @ B'",
                    )
                )
            else:
                left = _typed(ctx, Expr(expr.text, tree.left, expr.pos, expr.exact), scope)
                right = _typed(ctx, Expr(expr.text, tree.comparators[0], expr.pos, expr.exact), scope)
                if (
                    isinstance(left, TensorType)
                    and isinstance(right, TensorType)
                    and left.shape != right.shape
                    and left.rank
                    and right.rank
                ):
                    ctx.report(
                        expr.error(None, "shape-mismatch", f"the two sides of '{expr.text}' differ: {left} and {right}")
                    )
        residual = getattr(v, "residual", None)
        if residual is not None:
            t = _typed(ctx, residual, scope)
            if isinstance(t, TensorType) and t.rank:
                ctx.report(
                    residual.error(
                        None,
                        "shape-mismatch",
                        f"the residual must be a scalar; it is {t}",
                        "take a norm, e.g. 'norm(b - A @ x) / norm(b)'",
                    )
                )
        ref = getattr(v, "reference", None)
        if ref is not None:
            outputs = output_names(spec)
            given = getattr(v, "of", None)
            of = given or (outputs[0] if len(outputs) == 1 else "")
            pos = spec.source.value(("verify", "of") if given else ("verify",))
            if not of:
                ctx.errors.error(
                    pos,
                    "bad-verify",
                    "say which output the reference is compared with",
                    "add `of: NAME` (outputs: " + (", ".join(outputs) or "none") + ")",
                )
            elif of in spec.scalars and not spec.scalars[of].output:
                ctx.errors.error(
                    pos, "bad-verify", f"scalar '{of}' is not an output", f"mark it `output: true` under scalars.{of}"
                )
            elif of not in spec.arrays and of not in spec.scalars:
                ctx.errors.error(
                    pos,
                    "undefined-name",
                    f"no array or scalar named '{of}'",
                    did_you_mean(of, [*spec.arrays, *spec.scalars]),
                )
            elif of in spec.scalars:
                t = _typed(ctx, ref, scope)
                if isinstance(t, TensorType) and t.rank:
                    ctx.report(ref.error(None, "shape-mismatch", f"the reference gives {t} but '{of}' is a scalar"))
            else:
                t = _typed(ctx, ref, scope)
                want = spec.arrays[of].type
                if isinstance(t, TensorType) and (t.shape, t.dtype) != (want.shape, want.dtype):
                    ctx.report(ref.error(None, "shape-mismatch", f"the reference gives {t} but '{of}' is {want}"))
    env = {**spec.params, **{n: spec.loop.max if spec.loop else 1 for n in BUILTIN_METRIC_NAMES}}
    for expr in (spec.metrics.flops, spec.metrics.bytes):
        if expr is not None:
            try:
                evaluate(expr, env)
            except ExprError as e:
                ctx.report(e)


def output_names(spec: Spec) -> list[str]:
    """The program's results: its output arrays, then its output scalars."""
    return [a.name for a in spec.arrays.values() if a.output] + [s.name for s in spec.scalars.values() if s.output]


# ---------------------------------------------------------------------------- driver


def _all_tasks(spec: Spec) -> list[Task]:
    steps = spec.loop.steps if spec.loop else ()
    return [t for t in (*spec.tasks.values(), *steps) if isinstance(t, Task)]


def _task_path(spec: Spec, task: Task) -> tuple:
    if task.name in spec.tasks and spec.tasks[task.name] is task:
        return ("tasks", task.name)
    steps = spec.loop.steps if spec.loop else ()
    return ("loop", "steps", next((i for i, s in enumerate(steps) if s is task), 0))


def _kind_of(spec: Spec, name: str) -> str:
    if spec.loop is not None and name == spec.loop.index:
        return "loop index"
    return "param" if name in spec.params else "array" if name in spec.arrays else "scalar"


def check_spec(spec: Spec, local: bool = True) -> list[Diagnostic]:
    ctx = Context(spec)
    check_names(spec, ctx)
    check_arrays(spec, ctx)
    # producers first, so that pop tasks know their items' type whatever the order
    ordered = sorted(spec.tasks.values(), key=lambda t: t.pop is not None)
    declared = {s.name: TensorType((), s.dtype) for s in spec.scalars.values()}
    for t in ordered:
        check_task(spec, ctx, t, declared, {})
    scalars = check_scalars_and_loop(spec, ctx)
    check_queues(spec, ctx)
    check_cycles(spec, ctx)
    check_memory(spec, ctx, local)
    check_gpus(spec, ctx, local)
    check_size_of_graph(spec, ctx)
    check_verify_and_metrics(spec, ctx, scalars)
    return ctx.errors.diagnostics
