"""The oracle: a program's meaning, evaluated on whole NumPy arrays.

Written from the language reference (docs/spec.md) alone, against the frozen ``Spec``: no
IR, no expansion, no passes, no op registry. Tiles, queues, shards, broadcasts and
placement do not change what a program computes, so the oracle keeps every array whole
and reads a tile as a view of it. What it shares with the compiler is the YAML front end
(the ``Spec`` and its parsed expressions) and the definition of the random inputs
(``dfc.ops.random``: element k of an array is a pure function of its seed and k). It is
the reference of the differential tests: a bug in the expander, CSE, the queues or a
lowering shows as a disagreement with it.

The meaning, as the reference states it:

- every array starts at its ``init``; a scalar at its ``init`` (0 without one);
- outside the loop, scalar initialisations and tasks run once each, every reader of a
  name after every writer of it (writers before readers; ties in program order);
- a task's instances all read the values from before the task; its writes (``out:``,
  ``update:``) apply after every instance has read;
- a ``push`` puts ``(key, value)`` into its queue; a reducer with ``into:`` sets each
  pushed key's tile to the reduction (``reduce.op``) of that key's items once the
  queue's producers have run (outside the loop: all of them; in the loop: each step);
  a ``pop:`` task sees the queue's items in key order;
- a reduction (``sum``, ``max``, ``min`` with one argument) binds the free indices of its
  argument, those not bound by ``for:`` and not inside a nested reduction, and combines
  its terms elementwise; with no free index it reduces all elements; ``via`` does not
  change the value;
- the loop runs its steps in order, at most ``max`` times, and stops after an
  iteration in which ``until`` holds; a ``let`` binds its name for the steps after it
  (and, for a declared scalar, for later iterations);
- a scalar meeting an array takes the array's dtype; values written into an array or a
  declared scalar take its dtype.
"""

from __future__ import annotations

import ast
import itertools
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .lang.expr import Expr
from .lang.model import (
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
)
from .ops.npyfile import load as load_npy
from .ops.random import RAND_STREAM, generate, uniform01

REDUCERS = {"sum": np.add, "max": np.maximum, "min": np.minimum, "prod": np.multiply}
ALL = {"sum": np.sum, "max": np.max, "min": np.min}


class OracleError(Exception):
    """The program has no single meaning (two writes of one tile in one task, ...)."""


@dataclass
class OracleResult:
    arrays: dict[str, np.ndarray]
    scalars: dict[str, Any]  # numbers, or NumPy scalars of the scalar's dtype
    iterations_run: int
    seconds: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------- initial values


def initial(spec: Spec, a: Array, done: dict[str, np.ndarray], oracle: Oracle | None = None) -> np.ndarray:
    i = a.init
    if isinstance(i, InitFill):
        return np.full(a.shape, i.value, dtype=a.dtype)
    if isinstance(i, InitConstant):
        return np.full(a.shape, i.constant, dtype=a.dtype)
    if isinstance(i, InitCopy):
        if i.source not in done:
            done[i.source] = initial(spec, spec.arrays[i.source], done, oracle)
        return done[i.source].astype(a.dtype, copy=True)
    if isinstance(i, InitFile):
        return np.array(load_npy(i.file, a.shape, a.dtype, a.pos))
    if isinstance(i, InitExpr):  # on the whole array: one float64 coordinate axis per dimension
        assert i.expr is not None and oracle is not None  # validated; made by the oracle
        axes = {
            name: np.arange(n, dtype=np.float64).reshape([-1 if k == d else 1 for k in range(len(a.shape))])
            for d, (name, n) in enumerate(zip(i.names(len(a.shape)), a.shape))
        }
        with np.errstate(all="ignore"):
            value = Evaluator(oracle, i.expr, axes).value()
        return np.broadcast_to(np.asarray(value).astype(a.dtype), a.shape).copy()
    if isinstance(i, InitRandom):
        coords = [
            np.arange(n, dtype=np.int64).reshape([-1 if k == d else 1 for k in range(len(a.shape))])
            for d, n in enumerate(a.shape)
        ]
        params = {"seed": i.seed, "low": i.low, "high": i.high, "mean": i.mean, "std": i.std, "diagonal": i.diagonal}
        return np.array(generate(i.random, params, coords, a.shape, a.dtype))
    raise AssertionError(i)


# ---------------------------------------------------------------- tiles of whole arrays


def tile_key(a: Array, index: tuple) -> tuple:
    """The NumPy index of tile ``index`` of ``a`` (``None`` in a dimension: all of it)."""
    if a.tiling.kind == "cyclic":
        return (slice(index[0], None, a.tiling.grid[0]),)
    return tuple(slice(None) if i is None else slice(i * t, (i + 1) * t) for i, t in zip(index, a.tiling.tile))


def _int(v) -> int:
    if isinstance(v, Fraction):
        if v.denominator != 1:
            raise OracleError(f"tile index {v} is not whole")
        return int(v.numerator)
    return int(v)


# ---------------------------------------------------------------- expressions


class Evaluator:
    """Evaluates one expression of a program in the current state."""

    def __init__(self, oracle: Oracle, expr: Expr, env: dict[str, Any], fixed: frozenset | None = None):
        self.o, self.expr, self.env = oracle, expr, env
        self.fixed = frozenset(env) if fixed is None else fixed  # indices bound by `for:`

    def value(self):
        return self.ev(self.expr.tree, self.env)

    def ev(self, node: ast.AST, env: dict):
        method = getattr(self, "ev_" + type(node).__name__)
        return method(node, env)

    def ev_Constant(self, node, env):
        return node.value

    def ev_Name(self, node, env):
        n, o = node.id, self.o
        if n in env:
            return env[n]
        if n in o.spec.params:
            return o.spec.params[n]
        if n in o.lets:
            return o.lets[n]
        if n in o.scalars:
            return o.scalars[n]
        if n in o.popped:
            return o.popped[n]
        return o.arrays[n]

    def index(self, node: ast.AST, env: dict) -> int | None:
        if isinstance(node, ast.Slice):
            return None
        return _int(self.ev(node, env))

    def ev_Subscript(self, node, env):
        subs = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if not isinstance(node.value, ast.Name):  # elements of a value: Python's slicing
            value = np.asarray(self.ev(node.value, env))
            key = tuple(
                slice(*(None if b is None else _int(self.ev(b, env)) for b in (s.lower, s.upper, s.step)))
                if isinstance(s, ast.Slice)
                else _int(self.ev(s, env))
                for s in subs
            )
            return value[key]
        a = self.o.spec.arrays[node.value.id]
        index = tuple(self.index(s, env) for s in subs)
        if any(i is not None and not 0 <= i < g for i, g in zip(index, a.tiling.grid)):  # the boundary's
            return np.full(a.tiling.tile, a.boundary, dtype=a.dtype)
        return self.o.arrays[a.name][tile_key(a, index)]

    def ev_Attribute(self, node, env):  # `.T`, the only attribute of the language
        assert node.attr == "T"
        return np.transpose(self.ev(node.value, env))

    def ev_UnaryOp(self, node, env):
        v = self.ev(node.operand, env)
        if isinstance(node.op, ast.UAdd):
            return v
        if isinstance(node.op, ast.USub):
            return -v
        return np.logical_not(v)

    def ev_BinOp(self, node, env):
        a, b = self.ev(node.left, env), self.ev(node.right, env)
        if isinstance(node.op, ast.MatMult):
            return np.matmul(a, b) if np.ndim(a) == 2 or np.ndim(b) == 2 else np.dot(a, b)
        if _is_int(a) and _is_int(b):  # index arithmetic: exact
            return _int_op(node.op, a, b)
        a, b = _meet(a, b)
        op = type(node.op)
        if op is ast.Div and np.issubdtype(np.result_type(a, b), np.integer):
            return np.divide(a, b)
        return {
            ast.Add: np.add,
            ast.Sub: np.subtract,
            ast.Mult: np.multiply,
            ast.Div: np.divide,
            ast.Pow: np.power,
            ast.FloorDiv: np.floor_divide,
            ast.Mod: np.mod,
        }[op](a, b)

    def ev_BoolOp(self, node, env):  # elementwise on masks
        values = [np.asarray(self.ev(v, env), dtype=bool) for v in node.values]
        out = values[0]
        for v in values[1:]:
            out = np.logical_and(out, v) if isinstance(node.op, ast.And) else np.logical_or(out, v)
        return np.bool_(out) if np.ndim(out) == 0 else out

    def ev_Compare(self, node, env):
        left, ok = self.ev(node.left, env), True
        for op, right_node in zip(node.ops, node.comparators):
            right = self.ev(right_node, env)
            l2, r2 = _meet(left, right)
            this = {
                ast.Eq: np.equal,
                ast.NotEq: np.not_equal,
                ast.Lt: np.less,
                ast.LtE: np.less_equal,
                ast.Gt: np.greater,
                ast.GtE: np.greater_equal,
            }[type(op)](l2, r2)
            ok = np.logical_and(ok, this)  # a mask where the operands are tiles
            left = right
        return np.bool_(ok) if np.ndim(ok) == 0 else ok

    def ev_Call(self, node, env):
        name = node.func.id
        kw = {k.arg: self.ev(k.value, env) for k in node.keywords}
        if name == "rand":  # where the argument's elements sit in their array, not their values
            return self.rand(node.args[0], env, int(kw.get("seed", 0)))
        if name == "eye":
            return np.identity(_int(self.ev(node.args[0], env)))
        if name in ALL and len(node.args) == 1:
            free = self.free(node.args[0], env)
            if free:
                return self.reduce(name, node.args[0], env, free)
            v = np.asarray(self.ev(node.args[0], env))
            return ALL[name](v).astype(v.dtype)  # a sum of int32 stays int32
        args = [self.ev(a, env) for a in node.args]
        return FUNCTIONS[name](*args, **kw)

    def rand(self, arg: ast.AST, env: dict, seed: int):
        """Uniform [0, 1) numbers for the elements of ``arg`` (a part of an array), each
        from (seed, its flat index in the array, the iteration): the elements' flat indices
        are those of the whole array's, cut as ``arg`` cuts it."""
        base = arg.value if isinstance(arg, ast.Subscript) else arg
        assert isinstance(base, ast.Name)  # validated: a part of an array
        a = self.o.spec.arrays[base.id]
        flat = np.arange(int(np.prod(a.shape)), dtype=np.int64).reshape(a.shape)
        if isinstance(arg, ast.Subscript):
            subs = arg.slice.elts if isinstance(arg.slice, ast.Tuple) else [arg.slice]
            flat = flat[tile_key(a, tuple(self.index(s, env) for s in subs))]
        return uniform01(flat, seed, RAND_STREAM + self.o.iteration)

    # -------------------------------------------------------- reductions
    def free(self, arg: ast.AST, env: dict) -> dict[str, int]:
        """Free indices of a reduction's argument (outside nested reductions), with the
        tile-grid extent of the dimension each first indexes."""
        out: dict[str, int] = {}
        todo = [arg]
        while todo:
            node = todo.pop()
            if _is_reduction(node):
                continue
            todo.extend(reversed(list(ast.iter_child_nodes(node))))
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name)
                and node.value.id in self.o.spec.arrays
            ):
                grid = self.o.spec.arrays[node.value.id].tiling.grid
                subs = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
                for d, s in enumerate(subs):
                    if isinstance(s, ast.Name) and s.id not in self.fixed and s.id not in self.o.spec.params:
                        out.setdefault(s.id, grid[d])
        return out

    def reduce(self, name: str, arg: ast.AST, env: dict, free: dict[str, int]):
        total = None
        for values in itertools.product(*(range(n) for n in free.values())):
            term = np.asarray(self.ev(arg, {**env, **dict(zip(free, values))}))
            total = term.copy() if total is None else REDUCERS[name](total, term)
        return total


def _increment(target: Expr, value: Expr) -> tuple[int, ast.expr] | None:
    """(+1, e) for an update written ``T: T + e`` or ``e + T``, (-1, e) for ``T - e``;
    ``T ± a ± b``: the signs after the first taken into the term, as the language says."""
    t = ast.dump(target.tree)

    def has_t(node) -> bool:
        return any(ast.dump(n) == t for n in ast.walk(node))

    v = value.tree
    if isinstance(v, ast.BinOp) and isinstance(v.op, ast.Add) and ast.dump(v.right) == t and not has_t(v.left):
        return 1, v.left
    ops: list[ast.BinOp] = []
    terms: list[ast.expr] = []
    while isinstance(v, ast.BinOp) and isinstance(v.op, (ast.Add, ast.Sub)):
        ops.insert(0, v)
        terms.insert(0, v.right)
        v = v.left
    if not ops or ast.dump(v) != t or any(has_t(x) for x in terms):
        return None
    sign = -1 if isinstance(ops[0].op, ast.Sub) else 1
    term = terms[0]
    for node, right in zip(ops[1:], terms[1:]):
        plus = isinstance(node.op, ast.Add) == (sign > 0)
        term = ast.copy_location(ast.BinOp(term, ast.Add() if plus else ast.Sub(), right), node)
    return sign, term


def _is_reduction(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ALL and len(node.args) == 1
    )


def _is_int(v) -> bool:
    return isinstance(v, (int, Fraction)) and not isinstance(v, bool)


def _int_op(op: ast.operator, a, b):
    if isinstance(op, ast.Div):
        q = Fraction(a) / Fraction(b)
        return int(q) if q.denominator == 1 else q
    return {
        ast.Add: lambda: a + b,
        ast.Sub: lambda: a - b,
        ast.Mult: lambda: a * b,
        ast.Pow: lambda: a**b,
        ast.FloorDiv: lambda: a // b,
        ast.Mod: lambda: a % b,
    }[type(op)]()


def _as_number(v):
    return float(v) if isinstance(v, Fraction) else v


#: int < float < complex, then the wider: how two typed scalars combine
GENERALITY = {
    "bool": (0, 1),
    "int32": (1, 4),
    "int64": (1, 8),
    "float32": (2, 4),
    "float64": (2, 8),
    "complex64": (3, 8),
    "complex128": (3, 16),
}


def _dtype(v):
    return None if isinstance(v, (int, float, complex, Fraction)) else np.asarray(v).dtype


def _meet(a, b):
    """The language's dtype rule for two operands: a number takes the other side's dtype; a
    scalar meeting an array takes the array's; two scalars take the more general dtype."""
    a, b = _as_number(a), _as_number(b)
    da, db = _dtype(a), _dtype(b)
    if da is None and db is None or da == db:
        return a, b
    if da is None:
        return np.asarray(a).astype(db), b
    if db is None:
        return a, np.asarray(b).astype(da)
    if np.ndim(a) == 0 and np.ndim(b) == 0:
        to = max(da, db, key=lambda d: GENERALITY[d.name])
        return np.asarray(a).astype(to), np.asarray(b).astype(to)
    if np.ndim(a) == 0:
        return np.asarray(a).astype(db), b
    if np.ndim(b) == 0:
        return a, np.asarray(b).astype(da)
    return a, b


def _fft_merge(items, stride: int):
    """FFT of the interleaved signal from its sub-spectra Y_p = FFT(x[p::P]), by the
    definition: X[k] = sum_p W_N^(p k) Y_p[k mod M]. ``items``: a queue's items, or one
    vector holding them interleaved (Y_p = y[p::P])."""
    if isinstance(items, np.ndarray) and items.ndim == 1:
        items = [items[p::stride] for p in range(stride)]
    y = [np.asarray(t) for t in items]
    m, n = y[0].shape[0], y[0].shape[0] * stride
    k = np.arange(n)
    out = sum(np.exp(-2j * np.pi * p * k / n) * y[p][k % m] for p in range(stride))
    return out.astype(y[0].dtype)


def _same_dtype(fn):
    def apply(x, **kw):
        x = np.asarray(x)
        return fn(x, **kw).astype(x.dtype)

    return apply


def _of_floats(fn):
    """A function of floats (sqrt, log2, ceil, floor, norm): an integer array or scalar is
    computed in float64 and the result takes its dtype; a number gives a number."""

    def apply(x):
        out = fn(x)
        if isinstance(x, (np.ndarray, np.generic)) and np.issubdtype(x.dtype, np.integer):
            return np.asarray(out).astype(x.dtype)[()]
        return out

    return apply


def _elementwise_extreme(fn):
    def apply(*xs):
        if all(_dtype(x) is None for x in xs):  # numbers: a number, which takes the dtype it meets
            return (min if fn is np.minimum else max)(xs)
        out = xs[0]
        for x in xs[1:]:
            a, b = _meet(out, x)
            out = fn(a, b)
        return out

    return apply


def _where(mask, a, b):
    """a where the mask holds, else b; two plain numbers give float64."""
    if _dtype(a) is None and _dtype(b) is None:
        a, b = np.float64(a), np.float64(b)
    a, b = _meet(a, b)
    return np.where(mask, a, b)


def _triangle(lower: bool):
    def part(a):
        a = np.asarray(a)
        rows, cols = np.indices(a.shape)
        return np.where(rows >= cols if lower else rows <= cols, a, np.zeros((), a.dtype))

    return part


def _diag(a):
    """A matrix's main diagonal, or the square matrix with the vector ``a`` on it."""
    a = np.asarray(a)
    if a.ndim == 2:
        k = np.arange(min(a.shape))
        return a[k, k].copy()
    return a[:, None] * np.eye(len(a), dtype=a.dtype)


def _cholesky(a):
    """The lower factor by the definition (A = L Lᵀ, column by column); NaN in the lower
    triangle when a pivot is not positive (the tile is not positive definite)."""
    a = np.asarray(a)
    n = a.shape[0]
    out = np.zeros_like(a)
    for j in range(n):
        pivot = a[j, j] - out[j, :j] @ out[j, :j]
        if not pivot > 0:
            return _triangle(True)(np.full_like(a, np.nan))
        out[j, j] = np.sqrt(pivot)
        out[j + 1 :, j] = (a[j + 1 :, j] - out[j + 1 :, :j] @ out[j, :j]) / out[j, j]
    return out


def _solve_triangular(a, b, lower=1, trans=0, right=0):
    """op(T) X = B, or X op(T) = B, by substitution, T the lower or upper triangle of a."""
    t = _triangle(bool(lower))(a)
    t = t.T if trans else t
    if right:  # X op(T) = B  <=>  op(T)ᵀ Xᵀ = Bᵀ
        return _substitute(t.T, np.asarray(b).T, forward=not (bool(lower) != bool(trans))).T
    return _substitute(t, np.asarray(b), forward=bool(lower) != bool(trans))


def _solve(a, b):
    """A X = B by Gaussian elimination with partial pivoting; NaN if A is singular."""
    a = np.array(a, dtype=np.result_type(a, b, np.float32))
    x = np.array(b, dtype=a.dtype).reshape(a.shape[0], -1)
    n = a.shape[0]
    for k in range(n):
        p = k + int(np.argmax(np.abs(a[k:, k])))
        if a[p, k] == 0:
            return np.full(np.shape(b), np.nan, dtype=a.dtype)
        a[[k, p]], x[[k, p]] = a[[p, k]], x[[p, k]]
        f = a[k + 1 :, k] / a[k, k]
        a[k + 1 :, k:] -= np.outer(f, a[k, k:])
        x[k + 1 :] -= np.outer(f, x[k])
    for k in range(n - 1, -1, -1):
        x[k] = (x[k] - a[k, k + 1 :] @ x[k + 1 :]) / a[k, k]
    return x.reshape(np.shape(b))


def _substitute(t, b, forward: bool):
    x = np.zeros(b.shape, dtype=np.result_type(t, b))
    n = t.shape[0]
    with np.errstate(all="ignore"):
        for i in range(n) if forward else range(n - 1, -1, -1):
            x[i] = (b[i] - t[i] @ x) / t[i, i]  # the rows of x not solved yet are 0
    return x


FUNCTIONS = {
    "matmul": np.matmul,
    "matvec": np.matmul,
    "dot": np.dot,
    "norm": _of_floats(lambda x: np.linalg.norm(np.ravel(x))),
    "max": _elementwise_extreme(np.maximum),
    "min": _elementwise_extreme(np.minimum),
    "abs": np.abs,
    "sqrt": _of_floats(np.sqrt),
    "log2": _of_floats(np.log2),
    "ceil": _of_floats(np.ceil),
    "floor": _of_floats(np.floor),
    "exp": _of_floats(np.exp),
    "log": _of_floats(np.log),
    "sin": _of_floats(np.sin),
    "cos": _of_floats(np.cos),
    "where": _where,
    "concat": lambda *xs, axis=0: np.concatenate(xs, axis=axis),
    "fft": _same_dtype(np.fft.fft),
    "ifft": _same_dtype(np.fft.ifft),
    "fft2": _same_dtype(np.fft.fft2),
    "ifft2": _same_dtype(np.fft.ifft2),
    "fft_merge": _fft_merge,
    "transpose": np.transpose,
    "copy": np.copy,
    "tril": _triangle(True),
    "diag": _diag,
    "triu": _triangle(False),
    "cholesky": _cholesky,
    "solve_triangular": _solve_triangular,
    "solve": _solve,
    "reshape": lambda x, rows=0: np.reshape(x, (-1,) if not rows else (rows, -1)),
}


# ---------------------------------------------------------------- the program


class Oracle:
    def __init__(self, spec: Spec):
        self.spec = spec
        done: dict[str, np.ndarray] = {}
        for a in spec.arrays.values():
            if a.name not in done:
                done[a.name] = initial(spec, a, done, self)
        self.arrays = {name: done[name] for name in spec.arrays}
        self.scalars = {s.name: np.asarray(0, dtype=s.dtype)[()] for s in spec.scalars.values()}
        self.lets: dict[str, object] = {}
        self.iteration = 0  # for rand: 0 outside the loop, n + 1 in its iteration n
        self.queued: dict[str, list[tuple[Any, np.ndarray]]] = {q: [] for q in spec.queues}  # (key, item)
        self.popped: dict[str, list] = {}

    def value(self, expr: Expr, env: dict | None = None):
        return Evaluator(self, expr, env or {}).value()

    # -------------------------------------------------------- steps
    def task(self, t: Task, outer: dict | None = None) -> None:
        """Every instance of ``t`` (those its `where:` keeps); ``outer``: the loop's index."""
        if t.pop:
            self.popped[t.pop] = [v for _, v in sorted(self.queued[t.pop], key=lambda kv: kv[0])]
            self.queued[t.pop] = []
        writes: list[tuple[str, tuple | None, np.ndarray]] = []
        adds: list[tuple[str, tuple | None, int, Any]] = []  # accumulations `T: T + e`: (T, +1 or -1, e)
        names = [k for k, _ in t.domain]
        kept = [
            env
            for env in (
                {**(outer or {}), **dict(zip(names, v))} for v in itertools.product(*(range(n) for _, n in t.domain))
            )
            if t.where is None or self.value(t.where, env)
        ]
        shared: dict[tuple, int] = {}  # tiles that several instances update as `T: T + e`
        for env in kept:
            for target, expr in t.update:
                if _increment(target, expr) is not None:
                    shared[self.target(target, env)] = shared.get(self.target(target, env), 0) + 1
        for env in kept:
            if t.compute is not None:
                value = np.array(self.value(t.compute, env))
                if t.push is not None:
                    queue, key = self.target(t.push, env)
                    self.queued[queue].append((key, value))
                else:
                    assert t.out is not None  # validated: a result goes somewhere
                    writes.append((*self.target(t.out, env), value))
            for target, expr in t.update:
                term = _increment(target, expr)
                if term is not None and shared.get(self.target(target, env), 0) > 1:
                    inc = Evaluator(self, Expr(expr.text, term[1], expr.pos), env).value()
                    adds.append((*self.target(target, env), term[0], inc))
                else:
                    writes.append((*self.target(target, env), np.array(self.value(expr, env))))
        running: dict[tuple, np.ndarray] = {}
        for array, index, sign, inc in adds:  # an accumulation: in the order of the instances
            a = self.spec.arrays[array]
            old = running.get((array, index), self.arrays[array][(...,) if index is None else tile_key(a, index)])
            x, y = _meet(old, inc)
            running[(array, index)] = np.asarray((np.add if sign > 0 else np.subtract)(x, y)).astype(a.dtype)
        writes += [(array, index, value) for (array, index), value in running.items()]
        self.write_all(t, writes)
        if t.pop is not None:
            self.popped.pop(t.pop, None)

    def target(self, e: Expr, env: dict) -> tuple[str, tuple | None]:
        tree = e.tree
        if isinstance(tree, ast.Name):
            return tree.id, None
        assert isinstance(tree, ast.Subscript)  # validated: NAME or NAME[key]
        subs = tree.slice.elts if isinstance(tree.slice, ast.Tuple) else [tree.slice]
        ev = Evaluator(self, e, env)
        return self.target_name(e), tuple(ev.index(s, env) for s in subs)

    def write_all(self, t: Task, writes: list) -> None:
        seen: set[tuple] = set()
        for array, index, value in writes:
            if (array, index) in seen or (array, None) in seen or (index is None and any(a == array for a, _ in seen)):
                raise OracleError(f"task '{t.name}' writes {array}{list(index) if index else ''} more than once")
            seen.add((array, index))
        for array, index, value in writes:
            a = self.spec.arrays[array]
            key = (...,) if index is None else tile_key(a, index)
            self.arrays[array][key] = np.asarray(value).astype(a.dtype, copy=False)

    def drain(self, queue: str) -> None:
        q = self.spec.queues[queue]
        if not (q.reduce and q.reduce.into):
            return
        a = self.spec.arrays[q.reduce.into]
        by_key: dict[tuple, np.ndarray] = {}
        for key, value in self.queued[queue]:
            by_key[key] = value.copy() if key not in by_key else REDUCERS[q.reduce.op](by_key[key], value)
        self.queued[queue] = []
        for key, value in sorted(by_key.items()):
            self.arrays[a.name][tile_key(a, key)] = value.astype(a.dtype, copy=False)

    def bind(self, name: str, expr: Expr | None, declared: bool, env: dict | None = None) -> None:
        value = self.value(expr, env) if expr is not None else 0
        if declared:
            self.scalars[name] = np.asarray(value).astype(self.spec.scalars[name].dtype)[()]
            self.lets.pop(name, None)
        else:
            self.lets[name] = value

    # -------------------------------------------------------- order outside the loop
    def prologue(self) -> list[Scalar | Task]:
        spec = self.spec
        items: list[Scalar | Task] = [*(s for s in spec.scalars.values() if s.init is not None), *spec.tasks.values()]
        rw = [self.reads_writes(x) for x in items]
        order: list[Scalar | Task] = []
        left = list(range(len(items)))
        while left:
            ready = [i for i in left if not any(j != i and rw[j][1] & rw[i][0] for j in left)]
            if not ready:
                raise OracleError("the tasks outside the loop depend on each other in a cycle")
            order.append(items[ready[0]])
            left.remove(ready[0])
        return order

    def reads_writes(self, x) -> tuple[set, set]:
        if isinstance(x, Scalar):
            return (x.init.names() if x.init is not None else set()), {x.name}
        reads = set().union(*(e.names() for e in (x.compute, *(v for _, v in x.update)) if e is not None))
        writes = {self.target_name(t) for t, _ in x.update}
        if x.out is not None:
            writes.add(x.out.tree.id if isinstance(x.out.tree, ast.Name) else x.out.tree.value.id)
        if x.push is not None:
            queue = self.target_name(x.push)
            writes.add(queue)
            q = self.spec.queues[queue]
            if q.reduce and q.reduce.into:
                writes.add(q.reduce.into)
        if x.pop:
            reads.add(x.pop)
        return reads, writes

    @staticmethod
    def target_name(e: Expr) -> str:
        """The array or queue a target names (validated: NAME or NAME[key])."""
        tree = e.tree.value if isinstance(e.tree, ast.Subscript) else e.tree
        assert isinstance(tree, ast.Name)
        return tree.id

    # -------------------------------------------------------- driver
    def run(self, max_iterations: int | None = None) -> OracleResult:
        t0 = time.perf_counter()
        spec = self.spec
        order = self.prologue()
        producers = {
            q: {t.name for t in spec.tasks.values() if t.push is not None and self.target_name(t.push) == q}
            for q in spec.queues
        }
        for x in order:
            if isinstance(x, Scalar):
                self.bind(x.name, x.init, True)
                continue
            self.task(x)
            if x.push is not None:
                q = self.target_name(x.push)
                producers[q].discard(x.name)
                if not producers[q]:
                    self.drain(q)
        iterations = 0
        loop = spec.loop
        if loop is not None:
            limit = loop.max if max_iterations is None else min(loop.max, max_iterations)
            while iterations < limit:
                self.lets = {}
                self.iteration = iterations + 1
                outer = {loop.index: iterations} if loop.index else {}
                for step in loop.steps:
                    if isinstance(step, Let):
                        self.bind(step.let, step.reduce or step.value, step.let in spec.scalars, outer)
                    else:
                        self.task(step, outer)
                        if step.push is not None:
                            self.drain(self.target_name(step.push))
                iterations += 1
                if loop.until is not None and bool(self.value(loop.until)):
                    break
        t1 = time.perf_counter()
        scalars = {k: v.item() if hasattr(v, "item") else v for k, v in self.scalars.items()}
        return OracleResult(dict(self.arrays), scalars, iterations, {"init": 0.0, "compute": t1 - t0})


def run_oracle(spec: Spec, max_iterations: int | None = None) -> OracleResult:
    """The program's results, by its meaning alone."""
    return Oracle(spec).run(max_iterations)
