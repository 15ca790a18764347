"""Shape and dtype inference of compute expressions.

Rules of the language:

- ``A[i, k]`` is one tile; ``A[i, :]`` is a row of tiles (the ``:`` dimension spans the
  whole array); a bare ``A`` is the whole array.
- An index bound by the task's ``for:`` must stay inside the indexed array's tile grid.
- An index that nothing binds is *free*: it ranges over the tile grid of the array it
  indexes, and is only allowed inside a reduction (``sum(dot(r[i], r[i]))``), which sums
  over it.
- ``@`` means matmul, matvec or dot by the operands' ranks; other operators and calls
  are looked up in the op registry (through the walker shared with the expander and the
  verifier, ``lang/walk.py``), whose entry supplies the shape rule.

Inference does not stop at the first mistake: a sub-expression that fails gets no type
(``None``), the expressions around it skip their own checks, and :func:`infer` raises one
:class:`ExprError` with every mistake, first position first.
"""

from __future__ import annotations

import ast
import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import numpy as np

from ..diagnostics import Diagnostic, did_you_mean
from ..ops import REGISTRY, ItemsType, OpTypeError, TensorType
from .expr import FOLDABLE, Expr, ExprError, Number, approx, check_number, evaluate, fold
from .model import Array
from .walk import Walker

ENUMERATION_LIMIT = 20_000

Type = TensorType | ItemsType
Free = dict[str, tuple[int, ast.AST]]  # free index -> (extent, where first used)
INDEX_LETTERS = "ijklmnpq"  # for example subscripts in hints (no 'o': it reads as 0)


@dataclass
class Scope:
    """The names an expression can see."""

    arrays: Mapping[str, Array]
    params: Mapping[str, int | float]
    indices: Mapping[str, int] = field(default_factory=dict)  # bound index -> extent
    scalars: Mapping[str, TensorType] = field(default_factory=dict)
    items: Mapping[str, ItemsType] = field(default_factory=dict)
    later: Mapping[str, str] = field(default_factory=dict)  # name -> why it is not visible yet
    where: Expr | None = None  # the task's `where:`: only the instances it keeps run
    writing: bool = False  # a target: inside the tile grid, whatever the array's boundary
    whole: bool = False  # whole arrays (`verify:`): a subscript takes elements, never tiles

    def visible(self) -> list[str]:
        return [*self.arrays, *self.params, *self.indices, *self.scalars, *self.items]

    def kept(self, names: Sequence[str]) -> list[dict] | None:
        """The values of index ``names`` in the instances that run: every combination, or
        those a ``where:`` keeps (over the indices it names too); None when there are too
        many to list (then only the corners of the box are checked)."""
        names = list(names)
        if self.where is not None:
            names += sorted(n for n in self.where.names() if n in self.indices and n not in names)
        combos = math.prod(self.indices[n] for n in names)
        if combos > ENUMERATION_LIMIT:
            return None
        out = []
        for c in itertools.product(*(range(self.indices[n]) for n in names)):
            env = dict(zip(names, c))
            if self.where is None or _holds(self.where, {**self.params, **env}):
                out.append(env)
        return out


def _holds(where: Expr, env: Mapping) -> bool:
    """Whether ``where`` keeps the instance ``env`` (a mistake in it is reported where the
    task is checked: here it keeps the instance)."""
    try:
        return bool(evaluate(where, env))
    except ExprError:
        return True


def infer(expr: Expr, scope: Scope, allow_free: bool = False) -> Type | None:
    """The type of ``expr``; raises ExprError with every mistake in it, each pointing at
    the offending sub-expression."""
    typer = _Typer(expr, scope)
    t, free = typer.walk(expr.tree)
    if free and not allow_free:
        for name, (_, node) in free.items():
            typer.found.append(
                expr.error(
                    node,
                    "free-index",
                    f"index '{name}' is not bound",
                    f"add '{name}' to the task's `for:`, or reduce over it with sum(...)",
                )
            )
    if typer.found:
        raise ExprError(*in_order(typer.found))
    return t


def in_order(errors: list[ExprError]) -> list[Diagnostic]:
    """The diagnostics of ``errors`` by position; a mistake repeated (the same message
    again, as for a name used twice) only where it first occurs."""
    seen, out = set(), []
    for d in sorted((d for e in errors for d in e.diagnostics), key=lambda d: (d.pos.line, d.pos.col)):
        if (d.code, d.message) not in seen:
            seen.add((d.code, d.message))
            out.append(d)
    return out


def tile_example(name: str, grid: tuple[int, ...], given: Sequence[str] = ()) -> str:
    """A subscript of ``name`` that names one tile: 0 along dimensions of a single tile,
    the user's indices (or i, j, ...) along the others: 'o[i, 0]' for an [N, 1] column."""
    wide = [n for n in grid if n > 1]
    letters = list(given) if len(given) == len(wide) else list(INDEX_LETTERS[: len(wide)])
    it = iter(letters)
    return f"{name}[{', '.join('0' if n == 1 else next(it) for n in grid)}]"


def index_range_error(
    expr: Expr, node: ast.expr, what: str, lo: int, hi: int, extent: int, dim: int, scope: Scope
) -> ExprError:
    return expr.error(
        node,
        "out-of-range",
        f"{what} runs from {lo} to {hi}, but there are {extent} tile(s) along dimension {dim}",
        range_hint(expr, node, extent, scope),
    )


def range_hint(expr: Expr, node: ast.expr, extent: int, scope: Scope) -> str:
    """How to keep the tile index ``node`` inside ``extent`` tiles. A plain index runs from
    0, so its `for:` extent is the fix; an index with an offset (``i + 1``) needs a
    smaller extent than the grid, or no extent works (``i - 1``) and it must wrap."""
    text, more = ast.unparse(node), "or tile the array into more pieces"
    used = sorted({n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in scope.indices})
    if isinstance(node, ast.Name) and used:
        return f"make the `for:` extent {extent}, {more}"
    if not used:
        return f"tile indices run from 0 to {extent - 1}: use one in that range, {more}"
    if len(used) == 1 and (n := _largest_extent(expr, node, used[0], extent, scope)):
        return f"make the `for:` extent of '{used[0]}' {n}, so that '{text}' stays below {extent}, {more}"
    return (
        f"keep '{text}' from 0 to {extent - 1} for every value of {', '.join(map(repr, used))}: "
        f"change the index, wrap it around for a periodic boundary: ({text}) % {extent}"
        + ("" if scope.writing else ", or give the array a `boundary:` value (the tiles outside its grid)")
    )


def _largest_extent(expr: Expr, node: ast.expr, index: str, extent: int, scope: Scope) -> int:
    """The largest `for:` extent of ``index`` (below its current one) for which ``node``
    stays inside ``extent`` tiles; 0 if there is none."""
    sub = Expr(expr.text, node, expr.pos, expr.exact)
    for k in range(min(scope.indices[index], ENUMERATION_LIMIT)):
        try:
            v = evaluate(sub, {**scope.params, index: k})
        except ExprError:
            return 0
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < extent:
            return k
    return 0


def fits(value: Number, dtype: str) -> bool:
    """Whether ``value`` becomes a number of ``dtype`` (as the engines convert it: a
    float to an integer type drops its fraction) without wrapping around or overflowing."""
    kind = np.dtype(dtype).kind
    if kind in "iu":
        info = np.iinfo(dtype)
        return math.isfinite(value) and info.min <= math.trunc(value) <= info.max
    if kind in "fc":
        return abs(float(value)) <= float(np.finfo(dtype).max)
    return True


Typed = tuple[Type | None, Free]  # a sub-expression's type (None after a mistake) and free indices


class _Typer(Walker[Typed]):
    def __init__(self, expr: Expr, scope: Scope):
        self.expr, self.scope = expr, scope
        self.found: list[ExprError] = []
        self.numbers: dict[ast.AST, Number] = {}  # plain numbers, computed: 2**40 in x * 2**40

    def err(self, node, code, message, hint="") -> ExprError:
        return self.expr.error(node, code, message, hint)

    def walk(self, node: ast.AST) -> Typed:
        """The type of ``node`` and its free indices; ``None`` after a mistake (recorded)."""
        try:
            return super().walk(node)
        except ExprError as e:
            self.found.append(e)
            return None, {}

    def forbidden(self, node):
        if isinstance(node, ast.Tuple):
            raise self.err(node, "expr-forbidden", "a tuple is only allowed inside [...]")
        raise self.err(node, "expr-forbidden", f"'{ast.unparse(node)}' is not allowed here")

    def rank(self, value: Typed) -> int | None:
        t = value[0]
        return t.rank if isinstance(t, TensorType) else None

    # ------------------------------------------------------------------ leaves
    def constant(self, node):
        if isinstance(node.value, bool):
            return TensorType((), "bool"), {}
        self.numbers[node] = node.value
        return TensorType((), None), {}

    def name(self, node):
        s, name = self.scope, node.id
        if name in s.indices:
            return TensorType((), "int64"), {}
        if name in s.params:
            if not isinstance(s.params[name], bool):
                self.numbers[node] = check_number(self.expr, node, s.params[name], f"param '{name}'")
            return TensorType((), None), {}
        if name in s.scalars:
            return s.scalars[name], {}
        if name in s.items:
            return s.items[name], {}
        if name in s.arrays:
            return s.arrays[name].type, {}
        if name in s.later:
            raise self.err(node, "undefined-name", f"'{name}' is used before it is defined", s.later[name])
        raise self.err(
            node,
            "undefined-name",
            f"undefined name '{name}'",
            did_you_mean(name, s.visible()) or "define it under `params:`, `arrays:` or `scalars:`",
        )

    # ------------------------------------------------------------------ tiles
    def subscript(self, node):
        if not isinstance(node.value, ast.Name):
            raise self.err(node, "expr-forbidden", "only arrays can be indexed", "write ARRAY[i, j]")
        name = node.value.id
        if name not in self.scope.arrays:
            self.name(node.value)  # undefined, or not an array: report it
            raise self.err(
                node.value, "expr-type", f"'{name}' is not an array and cannot be indexed", "only arrays have tiles"
            )
        arr = self.scope.arrays[name]
        subs = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        grid = arr.tiling.grid
        if len(subs) != len(grid):
            raise self.err(
                node,
                "index-rank",
                f"'{name}' has {len(grid)} tile dimension(s) but is indexed with {len(subs)}",
                f"write {tile_example(name, grid, [ast.unparse(s) for s in subs])}",
            )
        shape, free = [], {}
        for d, sub in enumerate(subs):
            if isinstance(sub, ast.Slice):
                shape.append(arr.shape[d])
                continue
            shape.append(arr.tiling.tile[d])
            try:
                self.index(sub, arr, d, free)
            except ExprError as e:  # the tile's type is known all the same
                self.found.append(e)
        return TensorType(tuple(shape), arr.dtype), free

    def tiles_of(self, node: ast.Subscript) -> bool:
        return not self.scope.whole and isinstance(node.value, ast.Name)

    def element_bound(self, node: ast.expr) -> int:
        v = evaluate(Expr(self.expr.text, node, self.expr.pos, self.expr.exact), self.scope.params)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(
                node,
                "not-whole",
                f"element index '{ast.unparse(node)}' is {v}, not a whole number",
                "an element subscript takes numbers and params, e.g. u[i, j][0, :] or u[i, j][1:-1, :]",
            )
        return v

    def index(self, sub: ast.expr, arr: Array, dim: int, free: Free) -> None:
        s, extent = self.scope, arr.tiling.grid[dim]
        if isinstance(sub, ast.Name) and sub.id not in s.indices and sub.id not in s.params:
            if sub.id in s.arrays or sub.id in s.scalars:
                raise self.err(sub, "expr-type", f"'{sub.id}' is not an index", "index tiles with names from `for:`")
            prev = free.get(sub.id)
            if prev and prev[0] != extent:
                raise self.err(
                    sub,
                    "out-of-range",
                    f"free index '{sub.id}' ranges over {prev[0]} tiles here and {extent} tiles there",
                    "index arrays with the same number of tiles",
                )
            free.setdefault(sub.id, (extent, sub))
            return
        if _unknown_call(sub):
            return  # reported when parsed, and no value to check
        names = sorted({n.id for n in ast.walk(sub) if isinstance(n, ast.Name)})
        for n in names:
            if n not in s.indices and n not in s.params:
                raise self.err(
                    sub,
                    "undefined-name",
                    f"undefined index '{n}' in a compound index",
                    "compound indices may use the task's `for:` indices and params",
                )
        used = [n for n in names if n in s.indices]
        sub_expr = Expr(self.expr.text, sub, self.expr.pos, self.expr.exact)
        values = s.kept(used)
        if values is None:  # too many to list: check the corners only
            values = [dict(zip(used, c)) for c in itertools.product(*[(0, s.indices[n] - 1) for n in used])]
        if not values:
            return  # no instance runs
        results = []
        for env in values:
            v = evaluate(sub_expr, {**s.params, **env})
            if isinstance(v, bool) or not isinstance(v, int):
                raise self.err(sub, "not-whole", f"tile index '{ast.unparse(sub)}' is {v}, not a whole number")
            results.append(v)
        lo, hi = min(results), max(results)
        if (lo < 0 or hi >= extent) and (arr.boundary is None or s.writing):
            raise index_range_error(
                self.expr, sub, f"index '{ast.unparse(sub)}' of '{arr.name}'", lo, hi, extent, dim, s
            )

    # ------------------------------------------------------------------ ops
    def apply(self, node, op, args, arg_nodes, **kw) -> Typed:
        self.fold(node, arg_nodes)
        free = _merge(self, *(f for _, f in args))
        return self.infer(node, op, [t for t, _ in args], arg_nodes, **kw), free

    def fold(self, node, arg_nodes) -> None:
        """A number computed from numbers (``2**40``) is known at its node."""
        if (
            isinstance(node, (ast.BinOp, ast.UnaryOp))
            and isinstance(node.op, FOLDABLE)
            and all(n in self.numbers for n in arg_nodes)
        ):
            self.numbers[node] = fold(self.expr, node, *(self.numbers[n] for n in arg_nodes))

    def plus(self, node, value):
        self.fold(node, (node.operand,))
        return value

    def no_operator(self, node, symbol, args):
        free = _merge(self, *(f for _, f in args))
        types = [t for t, _ in args]
        if any(t is None for t in types):  # a mistake inside, already recorded
            return None, free
        if symbol == "@":
            raise self.err(
                node,
                "shape-mismatch",
                f"'@' cannot multiply {types[0]} by {types[1]}",
                "'@' takes matrix @ matrix, matrix @ vector or vector @ vector",
            )
        raise self.err(node, "shape-mismatch", f"'{symbol}' cannot take {' and '.join(map(str, types))}")

    def infer(
        self, node, op_name: str, args: list[Type | None], arg_nodes: Sequence[ast.AST], **kw
    ) -> TensorType | None:
        if any(a is None for a in args):  # a mistake inside, already recorded
            return None
        self.check_numbers(node, [a for a in args if a is not None], arg_nodes)
        try:
            return REGISTRY[op_name].infer(*args, **kw)
        except OpTypeError as e:
            where = arg_nodes[e.arg] if e.arg is not None and e.arg < len(arg_nodes) else node
            if e.code == "shape-mismatch" and where is not node:
                where = node
            raise self.err(where, e.code, f"{e.message} in '{ast.unparse(node)}'", e.hint) from None

    def check_numbers(self, node, args: list[Type], arg_nodes: Sequence[ast.AST]) -> None:
        """A number takes the dtype of the array it meets: it must fit in it."""
        dtype = next((t.dtype for t in args if isinstance(t, TensorType) and t.dtype not in (None, "bool")), None)
        for n in arg_nodes:
            if dtype is not None and n in self.numbers and not fits(self.numbers[n], dtype):
                self.found.append(
                    self.err(
                        n,
                        "too-large",
                        f"'{self.expr.written(n)}' is {approx(self.numbers[n])}, which does not fit in {dtype}, "
                        f"the dtype of '{self.expr.written(node)}'",
                        "a number takes the dtype of the array it meets: use a smaller number or a wider dtype",
                    )
                )

    def unknown_call(self, node):  # reported when parsed: only its arguments are checked
        for a in node.args:
            self.walk(a)
        return None, {}  # it may have been meant to reduce over them

    def call(self, node, op):
        if op.position_only and node.args and _names_array(node.args[0], self.scope):
            found = len(self.found)  # the part must be inside the grid: a boundary has no positions
            scope, self.scope = self.scope, replace(self.scope, writing=True)
            try:
                self.walk(node.args[0])
            finally:
                self.scope = scope
            if len(self.found) > found:
                return None, {}
        if op.position_only and node.args and not _names_array(node.args[0], self.scope):
            raise self.err(
                node.args[0],
                "bad-call",
                f"{op.name}() takes a tile or an array, e.g. {op.name}(x[i]): its elements' positions number "
                f"the values, got '{ast.unparse(node.args[0])}'",
                f"write {op.name}(x[i], seed=1) for the tile x[i]",
            )
        if op.sized:  # eye(B): a size known now, not a value
            if len(node.args) != 1:
                raise self.err(node, "bad-call", f"{op.name}() takes one size, e.g. {op.name}(B)", op.doc)
            try:
                size = self.element_bound(node.args[0])
            except ExprError:
                raise self.err(
                    node.args[0],
                    "bad-call",
                    f"{op.name}() takes a size (a number or params), got '{ast.unparse(node.args[0])}'",
                    f"e.g. {op.name}(B) for a B x B tile",
                ) from None
            return self.infer(node, op.name, [], node.args, n=size), {}
        parts = [self.walk(a) for a in node.args]
        free = _merge(self, *(f for _, f in parts))
        types = [t for t, _ in parts]
        bound = {} if op.reduction and len(types) == 1 else free  # a reduction's, even after a mistake
        if not op.nargs[0] <= len(node.args) <= op.nargs[1]:
            n = op.nargs[0] if op.nargs[0] == op.nargs[1] else f"{op.nargs[0]} to {op.nargs[1]}"
            raise self.err(node, "bad-call", f"{op.name}() takes {n} argument(s), got {len(node.args)}", op.doc)
        kwargs = {}
        for k in node.keywords:
            if k.arg not in op.kwargs:
                raise self.err(
                    k,
                    "bad-call",
                    f"{op.name}() has no argument '{k.arg}'",
                    did_you_mean(k.arg, op.kwargs) if op.kwargs else f"{op.name}() takes no keywords",
                )
            if _unknown_call(k.value):
                return None, bound  # reported when parsed
            kwargs[k.arg] = evaluate(Expr(self.expr.text, k.value, self.expr.pos, self.expr.exact), self.scope.params)
        if any(t is None for t in types):  # a mistake inside, already recorded
            return None, bound
        if node.args and all(a in self.numbers for a in node.args):
            self.numbers[node] = self.fold_call(node, op, [self.numbers[a] for a in node.args])
        if op.reduction and len(types) == 1 and free:
            if not isinstance(types[0], TensorType):
                raise self.err(node, "expr-type", f"{op.name}() cannot reduce {types[0]}")
            return types[0], {}  # a reduction over the free indices: one term's type
        return self.infer(node, op.name, types, node.args, **kwargs), free

    def fold_call(self, node, op, args: list[Number]) -> Number:
        """A function of numbers (``abs(-2**62) * 4``), computed as the engines compute it
        (their NumPy reference, in int64 or float64) but exactly where Python can tell an
        integer overflow (abs, min, max, sum), which NumPy would wrap around."""
        exact: dict[str, Callable[..., Number]] = {"abs": abs, "min": min, "max": max, "sum": lambda *xs: sum(xs)}
        try:
            if op.name in exact and all(type(a) is int for a in args):
                value = exact[op.name](*args)
            else:
                with np.errstate(all="raise"):
                    value = op.numpy(*(np.int64(a) if type(a) is int else np.float64(a) for a in args))
                value = value.item() if hasattr(value, "item") else value
        except (FloatingPointError, OverflowError, ValueError, TypeError) as e:
            raise self.err(
                node,
                "expr-value",
                f"cannot compute '{self.expr.written(node)}': {e}",
                "a function of numbers must give a finite number",
            ) from None
        return check_number(self.expr, node, value, f"'{self.expr.written(node)}'")


def _names_array(node: ast.AST, scope: Scope) -> bool:
    """Whether ``node`` is an array or a part of one (``x``, ``x[i]``, ``A[i, :]``)."""
    base = node.value if isinstance(node, ast.Subscript) else node
    return isinstance(base, ast.Name) and base.id in scope.arrays


def _unknown_call(node: ast.AST) -> bool:
    """Whether ``node`` calls a function that is not in the language (reported when the
    expression was parsed: the expression was kept to find its other mistakes)."""
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Name)
        and not getattr(REGISTRY.get(n.func.id), "callable", False)
        for n in ast.walk(node)
    )


def _merge(typer: _Typer, *frees: Free) -> Free:
    out: Free = {}
    for f in frees:
        for name, (ext, node) in f.items():
            if name in out and out[name][0] != ext:
                typer.found.append(
                    typer.err(
                        node,
                        "out-of-range",
                        f"free index '{name}' ranges over {out[name][0]} tiles in one place and {ext} in another",
                        "index arrays with the same number of tiles",
                    )
                )
            out.setdefault(name, (ext, node))
    return out
