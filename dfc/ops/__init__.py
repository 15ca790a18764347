"""The kernel library: one registry entry per op.

An entry (:class:`Op`) holds everything about its op in one place: its shape and dtype
rule, its flop count, its NumPy reference, its TensorFlow lowering, whether its inputs are
cast to a common dtype first, and the operator that spells it in an expression (``+``,
``@``, ``<``) if any. Every stage looks ops up here: the type checker, the expander and the
verifier derive their operator tables from the entries (:func:`by_symbol`), the parser
the names an expression may call (:func:`functions`), and the lowering its TF rule. There
are no ``if op == "matmul"`` chains anywhere else, and adding an op is adding an entry.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np

from .types import COMPLEX_OF, DTYPES, ITEMSIZE, REAL_OF, ItemsType, OpTypeError, TensorType, unify_dtype

Infer = Callable[..., TensorType]
MANY = 1 << 30  # no upper bound on the number of arguments


@dataclass(frozen=True)
class Op:
    name: str
    doc: str
    infer: Infer  # (*arg_types, **kwargs) -> result type; raises OpTypeError
    flops: Callable[[tuple, TensorType], int]
    numpy: Callable
    # TensorFlow lowering: (tf, *input tensors, **attrs) -> tensor. ``tf`` is passed in so
    # that importing the registry never imports TensorFlow.
    tf: Callable
    nargs: tuple[int, int] = (1, 1)
    kwargs: tuple[str, ...] = ()
    callable: bool = True  # may be called by name in an expression
    reduction: bool = False  # with one argument: reduces over free tile indices
    symbol: str = ""  # the operator that spells it, if any ('+', '@', '<', 'not')
    ranks: tuple[int, ...] = ()  # the operands' ranks it takes, where one symbol spells several ops ('@')
    cast_inputs: bool = False  # inputs are converted to a common dtype first (elementwise ops)
    conditions: int = 0  # leading inputs that are conditions (masks): never converted
    # its one argument is a part of an array whose values it never reads: where the
    # elements sit (``origin``/``extent``/``step`` in ``shape``) is all it takes (``rand``)
    position_only: bool = False
    iteration: bool = False  # takes ``iteration``: 0 outside the loop, n + 1 in its iteration n
    owner_computes: bool = False  # placed with its input (a halo's slice: only the part travels)
    sized: bool = False  # its one argument is a size known when compiling (eye(B)): a keyword ``n``
    # the ``fuse`` pass's hooks (dfc/passes/fuse.py). ``of_tiles(kwargs, how, count)``: when
    # the op's one input is an array built from its ``count`` tiles (``how``: "interleave"
    # or "assemble"), the (op, kwargs) that computes the same from the tiles, or None.
    # ``part(kwargs, lo, hi)``: for a vector result, the kwargs that compute its elements
    # lo..hi-1 alone, or None.
    of_tiles: Callable[[dict, str, int], tuple[str, dict] | None] | None = None
    part: Callable[[dict, int, int], dict | None] | None = None
    flops_kwargs: bool = False  # ``flops`` takes the op's keywords too

    def count_flops(self, args: tuple, out: TensorType, kwargs: dict) -> int:
        return self.flops(args, out, **kwargs) if self.flops_kwargs else self.flops(args, out)

    def bytes(self, args: tuple, out: TensorType) -> int:
        """Bytes read and written by one instance."""
        ins = sum(a.nbytes for a in args if isinstance(a, TensorType))
        ins += sum(a.item.nbytes * a.count for a in args if isinstance(a, ItemsType))
        return ins + out.nbytes


REGISTRY: dict[str, Op] = {}
_BY_SYMBOL: dict[str, list[Op]] = {}


def register(op: Op) -> Op:
    """Add an op: from here on, expressions may use it (by name if ``callable``, by its
    ``symbol`` if any) and every stage knows it."""
    if op.name in REGISTRY:
        raise ValueError(f"an op named {op.name!r} is registered already")
    REGISTRY[op.name] = op
    if op.symbol:
        _BY_SYMBOL.setdefault(op.symbol, []).append(op)
    return op


def unregister(name: str) -> None:
    """Remove an op that :func:`register` added (a plug-in's, or a test's)."""
    op = REGISTRY.pop(name)
    if op.symbol:
        _BY_SYMBOL[op.symbol].remove(op)


def get(name: str) -> Op:
    return REGISTRY[name]


def by_symbol(symbol: str, ranks: tuple[int | None, ...]) -> Op | None:
    """The op an operator spells with operands of these ranks (None: unknown), if any:
    '-' with one operand is ``neg``, with two ``sub``; '@' is matmul, matvec or dot."""
    for op in _BY_SYMBOL.get(symbol, ()):
        if op.nargs[0] <= len(ranks) <= op.nargs[1] and (not op.ranks or op.ranks == ranks):
            return op
    return None


def functions() -> tuple[str, ...]:
    """The names an expression may call, sorted."""
    return tuple(sorted(n for n, op in REGISTRY.items() if op.callable))


# ------------------------------------------------------------------------ shape rules


def _tensor(t, i: int, name: str) -> TensorType:
    if not isinstance(t, TensorType):
        raise OpTypeError(f"{name}() takes arrays, not {t}", arg=i)
    return t


def _elementwise(*args: TensorType) -> TensorType:
    out = _tensor(args[0], 0, "elementwise")
    for i, t in enumerate(args[1:], 1):
        t = _tensor(t, i, "elementwise")
        if out.rank and t.rank and out.shape != t.shape:
            raise OpTypeError(
                f"shape mismatch: {out} and {t}",
                "elementwise operands must have the same shape (or one is a scalar)",
                arg=i,
            )
        out = TensorType(out.shape or t.shape, unify_dtype(out, t))
    return out


def _unary_same(name: str) -> Infer:
    def infer(a):
        return _tensor(a, 0, name)

    return infer


def _real_valued(name: str) -> Infer:
    def infer(a):
        a = _tensor(a, 0, name)
        return TensorType(a.shape, REAL_OF.get(a.dtype, a.dtype))

    return infer


def _matmul(a: TensorType, b: TensorType) -> TensorType:
    a, b = _tensor(a, 0, "matmul"), _tensor(b, 1, "matmul")
    if a.rank != 2 or b.rank != 2:
        raise OpTypeError(f"matmul needs two matrices, got {a} and {b}", arg=0 if a.rank != 2 else 1)
    if a.shape[1] != b.shape[0]:
        raise OpTypeError(
            f"inner dimensions differ: {a} @ {b} ({a.shape[1]} != {b.shape[0]})",
            "the columns of the left tile must equal the rows of the right tile",
            arg=1,
        )
    return TensorType((a.shape[0], b.shape[1]), unify_dtype(a, b))


def _matvec(a: TensorType, x: TensorType) -> TensorType:
    a, x = _tensor(a, 0, "matvec"), _tensor(x, 1, "matvec")
    if a.rank != 2 or x.rank != 1:
        raise OpTypeError(f"matvec needs a matrix and a vector, got {a} and {x}")
    if a.shape[1] != x.shape[0]:
        raise OpTypeError(
            f"inner dimensions differ: {a} @ {x} ({a.shape[1]} != {x.shape[0]})",
            "the matrix's columns must equal the vector's length; index a row of "
            "tiles with A[i, :] to multiply by a whole vector",
            arg=1,
        )
    return TensorType((a.shape[0],), unify_dtype(a, x))


def _dot(a: TensorType, b: TensorType) -> TensorType:
    a, b = _tensor(a, 0, "dot"), _tensor(b, 1, "dot")
    if a.rank != 1 or b.rank != 1 or a.shape != b.shape:
        raise OpTypeError(
            f"dot needs two vectors of the same length, got {a} and {b}",
            "take both one tile (dot(r[i], r[i])) or both whole (dot(r, r))",
            arg=1,
        )
    return TensorType((), unify_dtype(a, b))


def _reduce_all(name: str) -> Infer:
    def infer(*args):
        if len(args) == 1:  # a reduction of all elements (over free indices: see spec typing)
            return TensorType((), _tensor(args[0], 0, name).dtype)
        return _elementwise(*args)

    return infer


def _norm(a: TensorType) -> TensorType:
    a = _tensor(a, 0, "norm")
    return TensorType((), REAL_OF.get(a.dtype, a.dtype) if a.dtype else None)


def _fft(name: str, rank: int = 0) -> Infer:
    """A transform of complex data: along one axis (``rank`` 0: a vector or, with
    ``axis``, any array) or of the last ``rank`` axes (fft2: 2)."""

    def infer(a, axis=-1):
        a = _tensor(a, 0, name)
        if rank and a.rank != rank:
            raise OpTypeError(f"{name} takes a matrix, got {a}", arg=0)
        if not rank and (a.rank == 0 or not -a.rank <= axis < a.rank):
            raise OpTypeError(
                f"{name} along axis {axis} of {a}", "a vector, or a tile with `axis=` one of its dimensions", arg=0
            )
        if a.dtype not in REAL_OF:
            raise OpTypeError(
                f"{name} needs complex input, got {a}",
                f"declare the array as {COMPLEX_OF.get(a.dtype or 'float64', 'complex128')}",
                arg=0,
                code="dtype-mismatch",
            )
        return a

    return infer


def _fft_flops(args: tuple, out: TensorType) -> int:
    """5 n log2 n for the n-point transforms of every line (or the whole, for fft2)."""
    return _nlogn(out.size)


def _tf_along(tf, fn, x, axis: int):
    """``fn`` (a transform of the innermost axis) along ``axis``: moved innermost and back."""
    rank = len(x.shape)
    axis %= rank
    if axis == rank - 1:
        return fn(x)
    perm = [d for d in range(rank) if d != axis] + [axis]
    back = [perm.index(d) for d in range(rank)]
    return tf.transpose(fn(tf.transpose(x, perm)), back)


def _fft_merge(items, stride: int = 0) -> TensorType:
    if isinstance(stride, bool) or not isinstance(stride, int):
        whole = isinstance(stride, (float, Fraction)) and not isinstance(stride, bool) and stride == int(stride)
        raise OpTypeError(
            f"fft_merge(stride={stride}): the stride is a count of sub-spectra, a whole number",
            f"write stride={int(stride)}" if whole else "stride is the number of interleaved tiles (P)",
        )
    if isinstance(items, TensorType) and items.rank == 1:  # the sub-spectra interleaved in one vector
        if stride < 1 or items.shape[0] % stride:
            raise OpTypeError(
                f"fft_merge(stride={stride}) of {items}: the length is not a multiple of the stride",
                "stride is the number of interleaved sub-spectra (the array's cyclic tiles)",
            )
        return _fft("fft_merge")(items)
    if not isinstance(items, ItemsType):
        raise OpTypeError(
            f"fft_merge takes the items of a queue (the task's `pop:`) or a vector of interleaved sub-spectra, got {items}",
            arg=0,
        )
    if stride != items.count:
        raise OpTypeError(
            f"fft_merge(stride={stride}) but the queue delivers {items.count} sub-spectra",
            "stride must equal the number of interleaved tiles",
        )
    t = _fft("fft_merge")(items.item)
    return TensorType((t.shape[0] * items.count,), t.dtype)


def _fft_merge_flops(args: tuple, out: TensorType, stride: int = 1, lo: int = 0, hi: int = -1) -> int:
    """Twiddles of every sub-spectrum and 5 log2(P) a result element for the radix-P stage
    (the FFT of the whole less those of its P parts, for the whole result)."""
    n = args[0].item.size * args[0].count if isinstance(args[0], ItemsType) else sum(a.size for a in args)
    return 6 * n + int(5 * out.size * math.log2(stride)) if stride > 1 else 6 * n


def _fft_combine(*tiles: TensorType, stride: int = 0, lo: int = 0, hi: int = 0) -> TensorType:
    first = _fft("fft_combine")(tiles[0])
    if len(tiles) != stride or any(t != first for t in tiles):
        raise OpTypeError(f"fft_combine takes {stride} sub-spectra of one type, got {', '.join(map(str, tiles))}")
    hi = first.size * stride if hi < 0 else hi  # -1: to the end
    if not 0 <= lo < hi <= first.size * stride:
        raise OpTypeError(f"fft_combine: elements {lo}..{hi} outside 0..{first.size * stride}")
    return TensorType((hi - lo,), first.dtype)


def _fft_merge_of_tiles(kwargs: dict, how: str, count: int) -> tuple[str, dict] | None:
    """fft_merge of an array whose ``stride`` cyclic tiles are the sub-spectra: from the
    tiles themselves (no interleaved copy, none taken apart again)."""
    if how != "interleave" or count != kwargs.get("stride"):
        return None
    return "fft_combine", {"stride": count, "lo": 0, "hi": -1}


def _fft_combine_part(kwargs: dict, lo: int, hi: int) -> dict:
    base = kwargs["lo"]
    return {**kwargs, "lo": base + lo, "hi": base + hi}


def _matrix(name: str) -> Infer:
    def infer(a):
        a = _tensor(a, 0, name)
        if a.rank != 2:
            raise OpTypeError(f"{name} takes a matrix (a 2-D tile), got {a}", arg=0)
        return a

    return infer


def _diag(a: TensorType) -> TensorType:
    a = _tensor(a, 0, "diag")
    if a.rank == 1:  # the matrix with this diagonal
        return TensorType((a.shape[0], a.shape[0]), a.dtype)
    if a.rank == 2:  # the main diagonal
        return TensorType((min(a.shape),), a.dtype)
    raise OpTypeError(f"diag takes a vector (makes a matrix) or a matrix (takes its diagonal), got {a}", arg=0)


def _real_square(name: str, a: TensorType, i: int = 0) -> TensorType:
    a = _tensor(a, i, name)
    if a.rank != 2 or a.shape[0] != a.shape[1]:
        raise OpTypeError(f"{name} takes a square matrix, got {a}", arg=i)
    if a.dtype not in ("float32", "float64", None):
        raise OpTypeError(
            f"{name} takes float32 or float64, got {a}",
            "complex and integer matrices are not supported yet",
            arg=i,
            code="dtype-mismatch",
        )
    return a


def _cholesky(a: TensorType) -> TensorType:
    return _real_square("cholesky", a)


def cholesky_numpy(a) -> np.ndarray:
    """The lower factor; a tile that is not positive definite gives NaN in the lower
    triangle (as TensorFlow's kernel does), for the verifier to report."""
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return np.where(np.tri(*np.shape(a)) > 0, np.nan, 0.0).astype(np.asarray(a).dtype)


def _flag(name: str, key: str, value) -> bool:
    if value not in (0, 1, True, False):
        raise OpTypeError(f"{name}({key}={value}): {key} is 0 or 1 (False or True)")
    return bool(value)


def _solve_triangular(a: TensorType, b: TensorType, lower=1, trans=0, right=0) -> TensorType:
    a = _real_square("solve_triangular", a)
    for key, value in (("lower", lower), ("trans", trans), ("right", right)):
        _flag("solve_triangular", key, value)
    b = _tensor(b, 1, "solve_triangular")
    n = a.shape[0]
    if right and (b.rank != 2 or b.shape[1] != n):
        raise OpTypeError(f"solve_triangular(right=1) solves X A = B: B needs {n} columns, got {b}", arg=1)
    if not right and (b.rank not in (1, 2) or b.shape[0] != n):
        raise OpTypeError(f"solve_triangular solves A X = B: B needs {n} rows, got {b}", arg=1)
    return TensorType(b.shape, unify_dtype(a, b))


def _solve_triangular_numpy(a, b, lower=1, trans=0, right=0):
    t = np.tril(a) if lower else np.triu(a)
    t = t.T if trans else t
    with np.errstate(all="ignore"):
        try:
            if right:  # X t = b  <=>  t^T X^T = b^T
                return np.linalg.solve(t.T, b.T).T
            return np.linalg.solve(t, b)
        except np.linalg.LinAlgError:  # a zero on the diagonal: no solution (NaN, as TF's)
            return np.full(np.shape(b), np.nan)


def _tf_solve_triangular(tf, a, b, lower=1, trans=0, right=0):
    vector = len(b.shape) == 1
    rhs = b[:, None] if vector else b
    if right:  # X op(A) = B  <=>  op(A)^T X^T = B^T
        out = tf.transpose(tf.linalg.triangular_solve(a, tf.transpose(rhs), lower=bool(lower), adjoint=not trans))
    else:
        out = tf.linalg.triangular_solve(a, rhs, lower=bool(lower), adjoint=bool(trans))
    return out[:, 0] if vector else out


def _solve(a: TensorType, b: TensorType) -> TensorType:
    """X with A X = B (GESV: LU with partial pivoting); B a matrix or a vector."""
    a = _real_square("solve", a)
    b = _tensor(b, 1, "solve")
    n = a.shape[0]
    if b.rank not in (1, 2) or b.shape[0] != n:
        raise OpTypeError(f"solve solves A X = B: B needs {n} rows, got {b}", arg=1)
    return TensorType(b.shape, unify_dtype(a, b))


def _solve_numpy(a, b):
    with np.errstate(all="ignore"):
        try:
            return np.linalg.solve(a, b)
        except np.linalg.LinAlgError:  # singular: no solution (NaN, on every engine)
            return np.full(np.shape(b), np.nan)


def _tf_solve(tf, a, b):
    """TF's solve refuses a singular matrix (the run would fail): such a tile is swapped for
    the identity first (a zero pivot: slogdet's sign is 0) and its solution made NaN."""
    vector = len(b.shape) == 1
    rhs = b[:, None] if vector else b
    singular = tf.equal(tf.linalg.slogdet(a)[0], 0)
    safe = tf.where(singular, tf.eye(a.shape[0], dtype=a.dtype), a)
    out = tf.linalg.solve(safe, rhs)
    out = tf.where(singular, tf.fill(tf.shape(out), tf.constant(float("nan"), out.dtype)), out)
    return out[:, 0] if vector else out


def _eye(*args, n: int = 0) -> TensorType:
    """eye(n): the n x n identity, float64."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise OpTypeError(f"eye(n) takes a positive whole number, got {n}", "e.g. eye(B) for a B x B tile")
    return TensorType((n, n), "float64")


def _reshape(x: TensorType, rows: int = 0) -> TensorType:
    """reshape(x): its elements as a vector (row-major); reshape(x, rows=R): as R rows."""
    x = _tensor(x, 0, "reshape")
    if not rows:
        return TensorType((x.size,), x.dtype)
    if rows < 0 or x.size % rows:
        raise OpTypeError(f"reshape: {x.size} elements make no {rows} equal rows", arg=0)
    return TensorType((rows, x.size // rows), x.dtype)


def _transpose(a: TensorType) -> TensorType:
    a = _tensor(a, 0, "transpose")
    if a.rank != 2:
        raise OpTypeError(f"transpose takes a matrix, got {a}", arg=0)
    return TensorType(a.shape[::-1], a.dtype)


def _compare(symbol: str) -> Infer:
    """Elementwise: two scalars give a condition, a tile gives a mask of its shape."""

    def infer(a: TensorType, b: TensorType) -> TensorType:
        for i, t in enumerate((a, b)):
            if _tensor(t, i, "comparison").dtype == "bool":
                raise OpTypeError(f"comparisons take numbers, got {t}", "compare numbers, e.g. 'x[i] > 0'", arg=i)
            if symbol not in ("==", "!=") and t.dtype in ("complex64", "complex128"):
                raise OpTypeError(
                    f"complex numbers have no order: '{symbol}' of {t}", "compare their magnitudes, abs(...)", arg=i
                )
        return TensorType(_elementwise(a, b).shape, "bool")

    return infer


def _where(c: TensorType, a: TensorType, b: TensorType) -> TensorType:
    """where(mask, a, b): a where the mask holds, else b, elementwise; two plain numbers
    give float64."""
    if _tensor(c, 0, "where").dtype != "bool":
        raise OpTypeError(
            f"where's first argument is a condition, got {c}", "compare, e.g. 'where(x[i] > 0, x[i], 0)'", arg=0
        )
    values = _elementwise(_tensor(a, 1, "where"), _tensor(b, 2, "where"))
    if c.rank and values.rank and c.shape != values.shape:
        raise OpTypeError(
            f"shape mismatch: the condition is {c} but the values are {values}",
            "the mask and the values must have the same shape (or one is a scalar)",
            arg=0,
        )
    return TensorType(c.shape or values.shape, values.dtype or "float64")


def _logical(*args: TensorType) -> TensorType:
    """Elementwise on conditions: scalars give a condition, masks a mask of their shape."""
    shape: tuple[int, ...] = ()
    for i, t in enumerate(args):
        if _tensor(t, i, "logical").dtype not in ("bool", None):
            raise OpTypeError(f"'and', 'or' and 'not' take conditions or masks, got {t}", arg=i)
        if t.rank and shape and t.shape != shape:
            raise OpTypeError(f"shape mismatch: masks {TensorType(shape, 'bool')} and {t}", arg=i)
        shape = shape or t.shape
    return TensorType(shape, "bool")


def _tf_logical(fn: str):
    def lower(tf, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = getattr(tf.math, fn)(out, x)  # broadcasts a condition over a mask
        return out

    return lower


def _float_only(name: str, infer: Infer) -> Infer:
    """``infer``, refusing complex operands (no floor division or remainder of them)."""

    def checked(*args):
        out = infer(*args)
        if out.dtype in ("complex64", "complex128"):
            raise OpTypeError(f"'{name}' takes real numbers, got {out}", "complex numbers have no floor", arg=0)
        return out

    return checked


def _assign_add(a: TensorType, b: TensorType) -> TensorType:
    return _elementwise(a, b)


# ------------------------------------------------------------------------ numpy refs


def _radix_rows(z: np.ndarray, q0: int, q1: int) -> np.ndarray:
    """Rows q0..q1-1 of the length-P DFT across the twiddled sub-spectra ``z`` (P, M)."""
    p_count = z.shape[0]
    dft = np.exp(-2j * np.pi * np.outer(np.arange(q0, q1), np.arange(p_count)) / p_count)
    return (dft @ z).astype(z.dtype, copy=False).reshape(-1)


def _twiddled(y: np.ndarray) -> np.ndarray:
    p_count, m = y.shape
    twiddle = np.exp(-2j * np.pi * np.outer(np.arange(p_count), np.arange(m)) / (p_count * m))
    return (y * twiddle).astype(y.dtype, copy=False)


def fft_merge_numpy(items, stride: int) -> np.ndarray:
    """Combine P sub-spectra Y_p = FFT(x[p::P]) into FFT(x): twiddle each by
    W_N^(p*k), then a length-P DFT across p (one radix-P Cooley-Tukey stage). ``items``:
    the queue's items, or one vector holding them interleaved (Y_p = y[p::P])."""
    if isinstance(items, np.ndarray) and items.ndim == 1:
        y = items.reshape(-1, stride).T
    else:
        y = np.stack([np.asarray(t) for t in items])  # (P, M)
    return np.fft.fft(_twiddled(y), axis=0).reshape(-1).astype(y.dtype, copy=False)


def fft_combine_numpy(*tiles, stride: int, lo: int, hi: int) -> np.ndarray:
    """Elements lo..hi-1 of fft_merge of the sub-spectra ``tiles``: the radix-P rows that
    cover them only."""
    y = np.stack([np.asarray(t) for t in tiles])
    m = y.shape[1]
    hi = y.size if hi < 0 else hi
    q0, q1 = lo // m, -(-hi // m)
    return _radix_rows(_twiddled(y), q0, q1)[lo - q0 * m : hi - q0 * m]


def _n(out: TensorType) -> int:
    return max(out.size, 1)


def _nlogn(n: int) -> int:
    return int(5 * n * math.log2(n)) if n > 1 else 0


# ------------------------------------------------------------------------ structural ops (shape rules, NumPy)

ACCUMULATE = {"sum": np.add, "max": np.maximum, "min": np.minimum, "prod": np.multiply}


def _accumulate(*args, **_) -> TensorType:
    if len(args) == 1 and isinstance(args[0], ItemsType):  # the items a reducer dequeued
        return args[0].item
    out = args[0]
    for t in args[1:]:
        out = _elementwise(out, t)
    return out


def _accumulate_flops(args: tuple, out: TensorType) -> int:
    count = args[0].count if len(args) == 1 and isinstance(args[0], ItemsType) else len(args)
    return _n(out) * max(count - 1, 0)


def _accumulate_numpy(*args, op: str = "sum"):
    xs = args[0] if len(args) == 1 and isinstance(args[0], list) else args
    out = xs[0]
    for x in xs[1:]:
        out = ACCUMULATE[op](out, x)
    return out


def _assemble(*tiles: TensorType, grid: tuple = ()) -> TensorType:
    t = tiles[0]
    return TensorType(tuple(n * g for n, g in zip(t.shape, grid)), t.dtype)


def _assemble_numpy(*tiles, grid: tuple = ()):
    cells = np.empty(grid, dtype=object)
    for idx, tile in zip(np.ndindex(*grid), tiles):
        cells[idx] = tile
    return np.block(cells.tolist())


def _interleave(*tiles: TensorType) -> TensorType:
    return TensorType((tiles[0].shape[0] * len(tiles),), tiles[0].dtype)


def _interleave_numpy(*tiles):
    return np.stack(tiles, axis=1).reshape(-1)


def _take_tile(
    x: TensorType, tiling: str = "block", index: tuple = (), tile: tuple = (), grid: tuple = ()
) -> TensorType:
    return TensorType(tuple(tile), x.dtype)


def _take_tile_numpy(x, tiling: str = "block", index: tuple = (), tile: tuple = (), grid: tuple = ()):
    if tiling == "cyclic":
        return x[index[0] :: grid[0]]
    return x[tuple(slice(i * t, (i + 1) * t) for i, t in zip(index, tile))]


# ------------------------------------------------------------------------ TensorFlow rules
# (``tf`` is the module, passed in: importing the registry never imports TensorFlow)


def _tf_norm(tf, x):
    return tf.norm(tf.reshape(x, [-1]))


def _tf_reduce(fn: str, many: str):
    def lower(tf, *xs):
        if len(xs) == 1:
            return getattr(tf.math, fn)(xs[0])
        out = xs[0]
        for x in xs[1:]:
            out = getattr(tf.math, many)(out, x)
        return out

    return lower


def _tf_accumulate(tf, *xs, op: str = "sum"):
    if len(xs) == 1:  # the items a reducer dequeued, stacked along axis 0
        return {"sum": tf.reduce_sum, "max": tf.reduce_max, "min": tf.reduce_min, "prod": tf.reduce_prod}[op](
            xs[0], axis=0
        )
    if op == "sum":
        return tf.add_n(list(xs))
    fn = {"max": tf.maximum, "min": tf.minimum, "prod": tf.multiply}[op]
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


def _tf_assemble(tf, *tiles, grid: tuple = ()):
    def build(level: int, offset: int, stride: int):
        if level == len(grid) - 1:
            return tf.concat([tiles[offset + k] for k in range(grid[level])], axis=level)
        inner = stride // grid[level]
        return tf.concat([build(level + 1, offset + k * inner, inner) for k in range(grid[level])], axis=level)

    return build(0, 0, math.prod(grid))


def _tf_interleave(tf, *tiles):
    return tf.reshape(tf.stack(list(tiles), axis=1), [-1])


def _tf_take_tile(tf, x, tiling: str = "block", index: tuple = (), tile: tuple = (), grid: tuple = ()):
    if tiling == "cyclic":
        return x[index[0] :: grid[0]]
    return x[tuple(slice(i * t, (i + 1) * t) for i, t in zip(index, tile))]


#: Up to this many sub-spectra, the radix-P stage is a P x P matmul (no transposed batch of
#: tiny FFTs; the rounding stays near machine precision); beyond it, a batch of FFTs
#: (docs/running.md, "Measurements behind the choices").
SMALL_RADIX = 64


def _split(m: int) -> int:
    """The largest divisor of ``m`` up to its square root."""
    return next(b for b in range(math.isqrt(m), 0, -1) if m % b == 0)


def _tf_twiddled(tf, y, ps, n: int):
    """``y[i] * W_N^(ps[i] k)`` for the rows of ``y`` (sub-spectra of M), k < M, without a
    sine or cosine per element: with k = a + B b (B a divisor of M near its square root),
    W^(p k) = W^(p a) W^(p B b), two broadcast products over each row seen as (M/B, B);
    each factor's angle is reduced mod N in integers first, so it stays exact for any p."""
    m = int(y.shape[-1])
    b = _split(m)
    real = tf.float64 if y.dtype == tf.complex128 else tf.float32
    ps = np.asarray(ps, dtype=np.int64)[:, None]

    def w(exponents: np.ndarray):
        angle = tf.constant((-2.0 * math.pi / n) * (exponents % n), real)
        return tf.complex(tf.cos(angle), tf.sin(angle))

    inner = w(ps * np.arange(b, dtype=np.int64))[:, None, :]  # W^(p a), a < B
    outer = w(ps * b * np.arange(m // b, dtype=np.int64))[:, :, None]  # W^(p B b), b < M/B
    return tf.reshape(tf.reshape(y, [len(ps), m // b, b]) * inner * outer, [len(ps), m])


#: Up to this many rows x sub-spectra, the radix-P stage of fft_combine is a sum of scaled
#: sub-spectra (no stacked copy of them); beyond it, one matmul of the stack.
LINEAR_TERMS = 8


def _tf_radix_rows(tf, z, q0: int, q1: int):
    """Rows q0..q1-1 of the length-P DFT across the twiddled sub-spectra ``z`` (a list of
    P vectors of M, or their (P, M) stack), as one vector: sums of scaled vectors when few,
    a (q1-q0) x P matmul of the stack, or (all rows of a large P) a batch of FFTs."""
    p_count = len(z) if isinstance(z, list) else int(z.shape[0])
    dft = np.exp(-2j * np.pi * np.outer(np.arange(q0, q1), np.arange(p_count)) / p_count)
    if (q1 - q0) * p_count <= LINEAR_TERMS:
        z = z if isinstance(z, list) else tf.unstack(z)  # at most LINEAR_TERMS rows
        rows = []
        for c in dft:
            acc = z[0] * tf.constant(c[0], z[0].dtype) if c[0] != 1 else z[0]
            for zp, cp in zip(z[1:], c[1:]):
                acc = acc + zp * tf.constant(cp, zp.dtype)
            rows.append(acc)
        return rows[0] if len(rows) == 1 else tf.concat(rows, 0)
    stacked = tf.stack(z) if isinstance(z, list) else z
    if p_count > SMALL_RADIX and (q0, q1) == (0, p_count):
        return tf.reshape(tf.transpose(tf.signal.fft(tf.transpose(stacked))), [-1])
    return tf.reshape(tf.linalg.matmul(tf.constant(dft, dtype=stacked.dtype), stacked), [-1])


def _tf_fft_merge(tf, items, stride: int = 0):
    """Twiddle each sub-spectrum Y_p by W_N^(p k), then a length-P DFT across p: on the
    (P, M) stack of the queue's items (or of the interleaved vector's sub-spectra)."""
    if len(items.shape) == 1:  # one vector, the sub-spectra interleaved
        items = tf.transpose(tf.reshape(items, [-1, stride]))
    m = int(items.shape[1])
    return _tf_radix_rows(tf, _tf_twiddled(tf, items, range(stride), stride * m), 0, stride)


def _tf_fft_combine(tf, *tiles, stride: int = 0, lo: int = 0, hi: int = -1):
    """Elements lo..hi-1 of the merged spectrum, from the sub-spectra themselves: each is
    twiddled on its own (as soon as it arrives), then the radix-P rows that cover lo..hi-1."""
    m = int(tiles[0].shape[0])
    hi = stride * m if hi < 0 else hi
    q0, q1 = lo // m, -(-hi // m)
    z = [tiles[0]] + [_tf_twiddled(tf, t[None, :], [p], stride * m)[0] for p, t in enumerate(tiles) if p]
    out = _tf_radix_rows(tf, z, q0, q1)
    return out if (lo, hi) == (q0 * m, q1 * m) else out[lo - q0 * m : hi - q0 * m]


def _tf_log2(tf, x):
    return tf.math.log(x) / tf.math.log(tf.constant(2.0, dtype=x.dtype))


def _tf_of_floats(fn: Callable) -> Callable:
    """``fn`` for a TF op that takes floats only (sqrt, floor, norm, ...): an integer input
    is computed in float64, as NumPy computes it; the lowering casts the result to the
    node's dtype, as the NumPy engine does."""

    def lower(tf, x):
        return fn(tf, tf.cast(x, tf.float64) if x.dtype.is_integer else x)

    return lower


# ------------------------------------------------------------------------ the entries


def _elementwise_op(name: str, symbol: str, numpy: Callable, tf: Callable) -> None:
    register(
        Op(
            name,
            f"elementwise a {symbol} b; scalars broadcast",
            _float_only(symbol, _elementwise) if symbol in ("//", "%") else _elementwise,
            lambda a, o: _n(o),
            numpy,
            tf,
            nargs=(2, 2),
            callable=False,
            symbol=symbol,
            cast_inputs=True,
        )
    )


def _comparison(name: str, symbol: str, numpy: Callable, tf: Callable) -> None:
    register(
        Op(
            name,
            f"elementwise comparison a {symbol} b (a condition, or a mask of a tile's shape)",
            _compare(symbol),
            lambda a, o: 1,
            numpy,
            tf,
            nargs=(2, 2),
            callable=False,
            symbol=symbol,
            cast_inputs=True,
        )
    )


def _where_numpy(c, a, b):
    return np.where(c, a, b)


def _elementwise_function(name: str, doc: str, numpy: Callable, tf: Callable, infer: Infer | None = None) -> None:
    register(Op(name, doc, infer or _unary_same(name), lambda a, o: _n(o), numpy, tf))


# operators
_elementwise_op("add", "+", np.add, lambda tf, a, b: tf.math.add(a, b))
_elementwise_op("sub", "-", np.subtract, lambda tf, a, b: tf.math.subtract(a, b))
_elementwise_op("mul", "*", np.multiply, lambda tf, a, b: tf.math.multiply(a, b))
_elementwise_op("div", "/", np.divide, lambda tf, a, b: tf.math.divide(a, b))
_elementwise_op("pow", "**", np.power, lambda tf, a, b: tf.math.pow(a, b))
_elementwise_op("floordiv", "//", np.floor_divide, lambda tf, a, b: tf.math.floordiv(a, b))
_elementwise_op("mod", "%", np.mod, lambda tf, a, b: tf.math.floormod(a, b))
register(
    Op(
        "neg",
        "elementwise -a",
        _unary_same("neg"),
        lambda a, o: _n(o),
        np.negative,
        lambda tf, a: tf.math.negative(a),
        callable=False,
        symbol="-",
        cast_inputs=True,
    )
)
register(
    Op(
        "matmul",
        "matrix product of two tiles",
        _matmul,
        lambda a, o: 2 * a[0].shape[0] * a[0].shape[1] * a[1].shape[1],
        np.matmul,
        lambda tf, a, b: tf.linalg.matmul(a, b),
        nargs=(2, 2),
        symbol="@",
        ranks=(2, 2),
        cast_inputs=True,
    )
)
register(
    Op(
        "matvec",
        "matrix-vector product",
        _matvec,
        lambda a, o: 2 * a[0].shape[0] * a[0].shape[1],
        np.matmul,
        lambda tf, a, x: tf.linalg.matvec(a, x),
        nargs=(2, 2),
        symbol="@",
        ranks=(2, 1),
        cast_inputs=True,
    )
)
register(
    Op(
        "dot",
        "inner product of two vectors (conjugates neither)",
        _dot,
        lambda a, o: 2 * a[0].shape[0],
        np.dot,
        lambda tf, a, b: tf.tensordot(a, b, 1),
        nargs=(2, 2),
        symbol="@",
        ranks=(1, 1),
        cast_inputs=True,
    )
)
_comparison("eq", "==", np.equal, lambda tf, a, b: tf.math.equal(a, b))
_comparison("ne", "!=", np.not_equal, lambda tf, a, b: tf.math.not_equal(a, b))
_comparison("lt", "<", np.less, lambda tf, a, b: tf.math.less(a, b))
_comparison("le", "<=", np.less_equal, lambda tf, a, b: tf.math.less_equal(a, b))
_comparison("gt", ">", np.greater, lambda tf, a, b: tf.math.greater(a, b))
_comparison("ge", ">=", np.greater_equal, lambda tf, a, b: tf.math.greater_equal(a, b))
register(
    Op(
        "and",
        "logical and, elementwise on masks",
        _logical,
        lambda a, o: 1,
        lambda *xs: functools.reduce(np.logical_and, xs),
        _tf_logical("logical_and"),
        nargs=(2, MANY),
        callable=False,
        symbol="and",
    )
)
register(
    Op(
        "or",
        "logical or, elementwise on masks",
        _logical,
        lambda a, o: 1,
        lambda *xs: functools.reduce(np.logical_or, xs),
        _tf_logical("logical_or"),
        nargs=(2, MANY),
        callable=False,
        symbol="or",
    )
)
register(
    Op(
        "not",
        "logical not, elementwise on masks",
        _logical,
        lambda a, o: 1,
        np.logical_not,
        lambda tf, x: tf.math.logical_not(x),
        callable=False,
        symbol="not",
    )
)

# functions
register(
    Op(
        "norm",
        "Euclidean (Frobenius) norm",
        _norm,
        lambda a, o: 2 * a[0].size,
        lambda x: np.linalg.norm(np.ravel(x)),
        _tf_of_floats(_tf_norm),
    )
)
register(
    Op(
        "sum",
        "sum of all elements, or over a free tile index",
        _reduce_all("sum"),
        lambda a, o: a[0].size,
        np.sum,
        _tf_reduce("reduce_sum", "add"),
        reduction=True,
    )
)
register(
    Op(
        "max",
        "largest element, over a free tile index, or of several values",
        _reduce_all("max"),
        lambda a, o: sum(t.size for t in a),
        lambda *xs: np.max(xs[0]) if len(xs) == 1 else np.maximum.reduce(xs),
        _tf_reduce("reduce_max", "maximum"),
        nargs=(1, 8),
        reduction=True,
        cast_inputs=True,
    )
)
register(
    Op(
        "min",
        "smallest element, over a free tile index, or of several values",
        _reduce_all("min"),
        lambda a, o: sum(t.size for t in a),
        lambda *xs: np.min(xs[0]) if len(xs) == 1 else np.minimum.reduce(xs),
        _tf_reduce("reduce_min", "minimum"),
        nargs=(1, 8),
        reduction=True,
        cast_inputs=True,
    )
)
_elementwise_function("abs", "elementwise absolute value", np.abs, lambda tf, x: tf.math.abs(x), _real_valued("abs"))
_elementwise_function("sqrt", "elementwise square root", np.sqrt, _tf_of_floats(lambda tf, x: tf.math.sqrt(x)))
_elementwise_function("log2", "elementwise base-2 logarithm", np.log2, _tf_of_floats(_tf_log2))
_elementwise_function("ceil", "elementwise ceiling", np.ceil, _tf_of_floats(lambda tf, x: tf.math.ceil(x)))
_elementwise_function("floor", "elementwise floor", np.floor, _tf_of_floats(lambda tf, x: tf.math.floor(x)))
_elementwise_function("exp", "elementwise exponential", np.exp, _tf_of_floats(lambda tf, x: tf.math.exp(x)))
_elementwise_function("log", "elementwise natural logarithm", np.log, _tf_of_floats(lambda tf, x: tf.math.log(x)))
_elementwise_function("sin", "elementwise sine", np.sin, _tf_of_floats(lambda tf, x: tf.math.sin(x)))
_elementwise_function("cos", "elementwise cosine", np.cos, _tf_of_floats(lambda tf, x: tf.math.cos(x)))


def _rand(*args, seed=0, origin=(), extent=(), step=(), shape=(), iteration=0) -> TensorType:
    """rand(A[i], seed=s): uniform float64 in [0, 1), one per element of A[i]."""
    if args:
        return TensorType(_tensor(args[0], 0, "rand").shape, "float64")
    return TensorType(tuple(extent), "float64")


def _tf_rand(tf, seed=0, origin=(), extent=(), step=(), shape=(), iteration=0):
    from .random import TFRandom

    return TFRandom(tf).rand(int(seed), origin, extent, step, shape, iteration)


def _rand_numpy(seed=0, origin=(), extent=(), step=(), shape=(), iteration=0):
    from .random import rand_values

    return rand_values(int(seed), origin, extent, step, shape, iteration)


register(
    Op(
        "rand",
        "uniform random numbers in [0, 1), one per element of a part of an array, from the seed, the "
        "element's index in the array and the loop's iteration (fresh each iteration)",
        _rand,
        lambda a, o: 10 * _n(o),
        _rand_numpy,
        _tf_rand,
        kwargs=("seed",),  # the expander adds where the argument's elements sit, and the iteration
        position_only=True,
        iteration=True,
    )
)


def element_key(items: tuple) -> tuple:
    """Python's index of an element subscript: ("i", k) is an index, ("s", start, stop,
    step) a slice (None: open)."""
    return tuple(it[1] if it[0] == "i" else slice(*it[1:]) for it in items)


def _part(x: TensorType, items: tuple = ()) -> TensorType:
    """x[items] with Python's rules (negative indices count from the end)."""
    x = _tensor(x, 0, "a part of a tile")
    if len(items) > x.rank:
        raise OpTypeError(f"{x} has {x.rank} dimension(s) but is indexed with {len(items)}", arg=0)
    shape = []
    for d, (it, n) in enumerate(zip(items, x.shape)):
        if it[0] == "i":
            if not -n <= it[1] < n:
                raise OpTypeError(
                    f"element index {it[1]} is outside dimension {d} of {x} (0 to {n - 1}, or -{n} to -1)"
                )
            continue
        if it[3] == 0:
            raise OpTypeError("a slice's step cannot be zero")
        size = len(range(*slice(*it[1:]).indices(n)))
        if size == 0:
            raise OpTypeError(f"the slice selects no element of dimension {d} of {x}", "check its bounds")
        shape.append(size)
    return TensorType((*shape, *x.shape[len(items) :]), x.dtype)


def _concat(*args: TensorType, axis: int = 0) -> TensorType:
    first = _tensor(args[0], 0, "concat")
    if not -first.rank <= axis < first.rank:
        raise OpTypeError(f"concat: axis {axis} is not a dimension of {first}")
    a = axis % first.rank
    size = 0
    for i, t in enumerate(args):
        t = _tensor(t, i, "concat")
        if t.rank != first.rank or t.shape[:a] + t.shape[a + 1 :] != first.shape[:a] + first.shape[a + 1 :]:
            raise OpTypeError(
                f"concat along axis {axis}: {t} does not match {first}", "the other dimensions must agree", arg=i
            )
        if t.dtype != first.dtype:
            raise OpTypeError(f"concat: dtype mismatch {first} and {t}", code="dtype-mismatch", arg=i)
        size += t.shape[a]
    return TensorType((*first.shape[:a], size, *first.shape[a + 1 :]), first.dtype)


def _fill(value=0, shape=(), dtype="float64") -> TensorType:
    return TensorType(tuple(shape), dtype)


register(
    Op(
        "part",
        "a part of a tile: x[0, :], x[1:-1, :] (Python's slicing; a halo row or column)",
        _part,
        lambda a, o: 0,
        lambda x, items=(): np.asarray(x)[element_key(items)],
        lambda tf, x, items=(): x[element_key(items)],
        kwargs=("items",),
        callable=False,
        owner_computes=True,
    )
)
register(
    Op(
        "concat",
        "tiles joined along an axis (default 0): concat(a, b, axis=1)",
        _concat,
        lambda a, o: 0,
        lambda *xs, axis=0: np.concatenate(xs, axis=axis),
        lambda tf, *xs, axis=0: tf.concat(list(xs), axis),
        nargs=(2, MANY),
        kwargs=("axis",),
    )
)
register(
    Op(
        "fill",
        "a tile of one value: a read outside the tile grid of an array with a `boundary:`",
        _fill,
        lambda a, o: 0,
        lambda value=0, shape=(), dtype="float64": np.full(shape, value, dtype=dtype),
        lambda tf, value=0, shape=(), dtype="float64": tf.fill(list(shape), tf.constant(value, tf.as_dtype(dtype))),
        nargs=(0, 0),
        kwargs=("value", "shape", "dtype"),
        callable=False,
    )
)
register(
    Op(
        "where",
        "elementwise choice: a where the condition (a mask or a scalar) holds, else b",
        _where,
        lambda a, o: _n(o),
        _where_numpy,
        lambda tf, c, a, b: tf.where(c, a, b),
        nargs=(3, 3),
        cast_inputs=True,
        conditions=1,
    )
)
register(
    Op(
        "fft",
        "1-D discrete Fourier transform (of a vector, or along `axis` of a tile: default the last)",
        _fft("fft"),
        _fft_flops,
        lambda x, axis=-1: np.fft.fft(x, axis=axis),
        lambda tf, x, axis=-1: _tf_along(tf, tf.signal.fft, x, axis),
        kwargs=("axis",),
    )
)
register(
    Op(
        "fft2",
        "2-D discrete Fourier transform of a matrix",
        _fft("fft2", 2),
        _fft_flops,
        np.fft.fft2,
        lambda tf, x: tf.signal.fft2d(x),
    )
)
register(
    Op(
        "ifft2",
        "2-D inverse discrete Fourier transform of a matrix",
        _fft("ifft2", 2),
        _fft_flops,
        np.fft.ifft2,
        lambda tf, x: tf.signal.ifft2d(x),
    )
)
register(
    Op(
        "ifft",
        "1-D inverse discrete Fourier transform (of a vector, or along `axis` of a tile)",
        _fft("ifft"),
        _fft_flops,
        lambda x, axis=-1: np.fft.ifft(x, axis=axis),
        lambda tf, x, axis=-1: _tf_along(tf, tf.signal.ifft, x, axis),
        kwargs=("axis",),
    )
)
register(
    Op(
        "fft_merge",
        "merge P interleaved sub-spectra with twiddle factors (radix-P stage)",
        _fft_merge,
        _fft_merge_flops,
        fft_merge_numpy,
        _tf_fft_merge,
        kwargs=("stride",),
        of_tiles=_fft_merge_of_tiles,
        flops_kwargs=True,
    )
)
register(
    Op(
        "fft_combine",
        "elements lo..hi-1 of fft_merge, from the P sub-spectra (fft_merge of an array's cyclic tiles)",
        _fft_combine,
        _fft_merge_flops,
        fft_combine_numpy,
        _tf_fft_combine,
        nargs=(1, MANY),
        kwargs=("stride", "lo", "hi"),
        callable=False,
        part=_fft_combine_part,
        flops_kwargs=True,
    )
)
register(Op("transpose", "matrix transpose", _transpose, lambda a, o: 0, np.transpose, lambda tf, x: tf.transpose(x)))
register(
    Op(
        "tril",
        "lower triangle of a matrix (zeros above the diagonal)",
        _matrix("tril"),
        lambda a, o: 0,
        np.tril,
        lambda tf, x: tf.linalg.band_part(x, -1, 0),
    )
)
register(
    Op(
        "triu",
        "upper triangle of a matrix (zeros below the diagonal)",
        _matrix("triu"),
        lambda a, o: 0,
        np.triu,
        lambda tf, x: tf.linalg.band_part(x, 0, -1),
    )
)
register(
    Op(
        "diag",
        "a matrix's main diagonal, or the square matrix with a vector on its diagonal",
        _diag,
        lambda a, o: 0,
        np.diag,
        lambda tf, x: tf.linalg.diag(x) if len(x.shape) == 1 else tf.linalg.diag_part(x),
    )
)
register(
    Op(
        "cholesky",
        "the lower Cholesky factor L of a symmetric positive definite tile (A = L L^T; POTRF; "
        "reads the lower triangle; NaN where the tile is not positive definite)",
        _cholesky,
        lambda a, o: o.shape[0] ** 3 // 3,
        cholesky_numpy,
        lambda tf, x: tf.linalg.band_part(tf.linalg.cholesky(x), -1, 0),
    )
)
register(
    Op(
        "solve_triangular",
        "X with A X = B (right=1: X A = B) for the lower (lower=0: upper) triangle of A, "
        "or its transpose (trans=1); TRSM",
        _solve_triangular,
        lambda a, o: a[0].shape[0] ** 2 * (o.size // a[0].shape[0]),
        _solve_triangular_numpy,
        _tf_solve_triangular,
        nargs=(2, 2),
        kwargs=("lower", "trans", "right"),
        cast_inputs=True,
    )
)
register(
    Op(
        "solve",
        "X with A X = B for a square A (GESV: LU with partial pivoting); NaN where A is singular (a zero pivot)",
        _solve,
        lambda a, o: 2 * a[0].shape[0] ** 3 // 3 + 2 * a[0].shape[0] ** 2 * (o.size // a[0].shape[0]),
        _solve_numpy,
        _tf_solve,
        nargs=(2, 2),
        cast_inputs=True,
    )
)
register(
    Op(
        "eye",
        "the n x n identity matrix (float64)",
        _eye,
        lambda a, o: 0,
        lambda n=0: np.eye(n),
        lambda tf, n=0: tf.eye(n, dtype=tf.float64),
        sized=True,
    )
)
register(
    Op(
        "reshape",
        "a tile's elements in row-major order as a vector, or as `rows` rows",
        _reshape,
        lambda a, o: 0,
        lambda x, rows=0: np.reshape(x, (-1,) if not rows else (rows, -1)),
        lambda tf, x, rows=0: tf.reshape(x, [-1] if not rows else [rows, -1]),
        kwargs=("rows",),
    )
)
register(Op("copy", "a copy of a tile", _unary_same("copy"), lambda a, o: 0, np.copy, lambda tf, x: tf.identity(x)))

# structural ops the compiler inserts (never written in a spec)
register(
    Op(
        "assign_add",
        "a += b, in place on the owner of a",
        _assign_add,
        lambda a, o: _n(o),
        np.add,
        lambda tf, a, b: tf.math.add(a, b),
        nargs=(2, 2),
        callable=False,
        cast_inputs=True,
    )
)
register(
    Op(
        "accumulate",
        "combine many values with the reducer's op (sum, max, min, prod)",
        _accumulate,
        _accumulate_flops,
        _accumulate_numpy,
        _tf_accumulate,
        nargs=(1, MANY),
        kwargs=("op",),
        callable=False,
        cast_inputs=True,
    )
)
register(
    Op(
        "assemble",
        "block tiles (row-major grid order) into one array",
        _assemble,
        lambda a, o: 0,
        _assemble_numpy,
        _tf_assemble,
        nargs=(1, MANY),
        kwargs=("grid",),
        callable=False,
    )
)
register(
    Op(
        "interleave",
        "cyclic tiles into one array: tile p holds elements p, p+P, ...",
        _interleave,
        lambda a, o: 0,
        _interleave_numpy,
        _tf_interleave,
        nargs=(1, MANY),
        callable=False,
    )
)
register(
    Op(
        "take_tile",
        "one tile of a whole array",
        _take_tile,
        lambda a, o: 0,
        _take_tile_numpy,
        _tf_take_tile,
        kwargs=("tiling", "index", "tile", "grid"),
        callable=False,
    )
)

__all__ = [
    "Op",
    "REGISTRY",
    "register",
    "unregister",
    "get",
    "by_symbol",
    "functions",
    "TensorType",
    "ItemsType",
    "OpTypeError",
    "DTYPES",
    "ITEMSIZE",
]
