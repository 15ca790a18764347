"""Init expressions (``init: {expr: ...}``, ``init: eye``): each element's value from its
global indices, computed on the tile's owner with the registry's ops, on NumPy arrays (the
NumPy engine) or TF tensors (the lowering) — one walk, two backends. Every number and
coordinate is float64; the result is converted to the array's dtype (a condition gives
1 or 0). The oracle evaluates the same expression on the whole array on its own."""

from __future__ import annotations

import ast
from typing import Any, Callable, Mapping, Sequence

from ..lang.expr import Expr
from ..lang.walk import Walker
from ..ops import REGISTRY, Op


class InitValues(Walker[Any]):
    """``expr`` at the coordinates ``coords`` (index name -> a broadcastable array of
    float64 coordinates); ``number(v)`` makes a backend constant and ``call(op, args)``
    applies a registry op."""

    def __init__(
        self, coords: Mapping[str, Any], params: Mapping, number: Callable[[Any], Any], call: Callable[[Op, list], Any]
    ):
        self.coords, self.params, self.number, self.call_op = coords, params, number, call

    def value(self, expr: Expr) -> Any:
        return self.walk(expr.tree)

    def constant(self, node: ast.Constant) -> Any:
        return self.number(node.value)

    def name(self, node: ast.Name) -> Any:
        if node.id in self.coords:
            return self.coords[node.id]
        return self.number(self.params[node.id])

    def subscript(self, node: ast.Subscript) -> Any:
        raise ValueError("an init expression indexes no array")  # refused at validation

    def rank(self, value: Any) -> int | None:
        return len(getattr(value, "shape", ()))

    def apply(self, node: ast.AST, op: str, args: list, arg_nodes: Sequence[ast.AST], **kwargs) -> Any:
        return self.call_op(REGISTRY[op], args)


def numpy_values(expr: Expr, coords: Sequence, names: Sequence[str], params: Mapping, shape, dtype: str):
    """A tile's initial value on the NumPy engine."""
    import numpy as np

    at = {n: np.asarray(c, dtype=np.float64) for n, c in zip(names, coords)}
    number = lambda v: np.bool_(v) if isinstance(v, bool) else np.float64(v)  # noqa: E731
    with np.errstate(all="ignore"):  # a NaN or inf is the program's (log(0)): kept, as TF keeps it
        out = InitValues(at, params, number, lambda op, args: op.numpy(*args)).value(expr)
    return np.broadcast_to(np.asarray(out).astype(dtype), shape).copy()


def tf_values(tf, expr: Expr, coords: Sequence, names: Sequence[str], params: Mapping, shape, dtype):
    """A tile's initial value as a TF tensor, computed on its owner."""
    at = {n: tf.cast(c, tf.float64) for n, c in zip(names, coords)}
    number = lambda v: tf.constant(v, tf.bool) if isinstance(v, bool) else tf.constant(v, tf.float64)  # noqa: E731
    out = InitValues(at, params, number, lambda op, args: op.tf(tf, *args)).value(expr)
    if dtype.is_complex:
        out = tf.complex(tf.cast(out, dtype.real_dtype), tf.zeros([], dtype.real_dtype))
    return tf.broadcast_to(tf.cast(out, dtype), list(shape))
