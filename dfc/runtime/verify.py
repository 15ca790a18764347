"""Verification that scales, on whole arrays with NumPy, whatever engine produced them.

- ``freivalds``: ``C == A @ B`` checked with random vectors in O(N²): ``C r`` against
  ``A (B r)``, pushing ``r`` through the right-hand side's products right to left;
- ``residual``: a scalar expression must fall below a bound;
- ``reference``: an output against NumPy's result, normwise:
  ``‖X − R‖ ≤ atol + rtol·‖R‖``;
- ``exact``: both sides of an equation element by element (within ``rtol``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np

from ..lang.checks import output_names
from ..lang.expr import Expr, evaluate
from ..lang.model import Spec, VerifyExact, VerifyFreivalds, VerifyReference, VerifyResidual
from ..lang.walk import Walker
from ..ops import REGISTRY


@dataclass(frozen=True)
class Verdict:
    ok: bool
    method: str
    detail: str
    value: float = 0.0

    def to_json(self) -> dict:
        return {"ok": self.ok, "method": self.method, "detail": self.detail, "value": self.value}


def np_eval(expr: Expr, node: ast.AST, env: dict):
    """Evaluate an expression on whole arrays with the registry's NumPy references."""
    return _Whole(expr, env).walk(node)


class _Whole(Walker):
    """An expression on whole arrays (names only, no tiles)."""

    def __init__(self, expr: Expr, env: dict):
        self.expr, self.env = expr, env

    def constant(self, node):
        return node.value

    def name(self, node):
        return self.env[node.id]

    def rank(self, value):
        return np.ndim(value)

    def apply(self, node, op, args, arg_nodes, **kwargs):
        return REGISTRY[op].numpy(*args, **kwargs)

    def keywords(self, node, op):
        return {k.arg: evaluate(Expr(self.expr.text, k.value, self.expr.pos), self.env) for k in node.keywords}

    def element_bound(self, node):
        return int(evaluate(Expr(self.expr.text, node, self.expr.pos), self.env))

    def tiles_of(self, node):
        return False  # whole arrays: a subscript takes elements (u[1:-1, :])

    def forbidden(self, node):
        raise ValueError(f"verification cannot evaluate '{ast.unparse(node)}' (use whole arrays)")

    subscript = unknown_call = forbidden

    def no_operator(self, node, symbol, args):
        return self.forbidden(node)


def _times_vector(expr: Expr, node: ast.AST, env: dict, r: np.ndarray) -> np.ndarray:
    """``node @ r`` without forming any matrix product: right to left through ``@``."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        return _times_vector(expr, node.left, env, _times_vector(expr, node.right, env, r))
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        a, b = _times_vector(expr, node.left, env, r), _times_vector(expr, node.right, env, r)
        return a + b if isinstance(node.op, ast.Add) else a - b
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        for scalar, matrix in ((node.left, node.right), (node.right, node.left)):
            s = np_eval(expr, scalar, env) if not _has_array(scalar, env) else None
            if s is not None:
                return s * _times_vector(expr, matrix, env, r)
    return np.asarray(np_eval(expr, node, env)) @ r


def _has_array(node: ast.AST, env: dict) -> bool:
    return any(isinstance(n, ast.Name) and np.ndim(env.get(n.id, 0)) > 0 for n in ast.walk(node))


def _env(spec: Spec, arrays: dict, scalars: dict) -> dict:
    return {**spec.params, **scalars, **arrays}


def verify(spec: Spec, arrays: dict[str, np.ndarray], scalars: dict[str, float] | None = None) -> Verdict | None:
    v = spec.verify
    if v is None:
        return None
    env = _env(spec, arrays, scalars or {})
    if isinstance(v, VerifyFreivalds):
        tree = v.freivalds.tree
        assert isinstance(tree, ast.Compare)  # validated: an equation
        left, right = tree.left, tree.comparators[0]
        worst = 0.0
        rng = np.random.default_rng(12345)
        lhs = np.asarray(np_eval(v.freivalds, left, env))
        for _ in range(v.trials):
            r = rng.standard_normal((lhs.shape[-1],)).astype(lhs.dtype)
            a, b = lhs @ r, _times_vector(v.freivalds, right, env, r)
            err = float(np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(np.float64).tiny))
            worst = max(worst, err)
        eps = float(np.finfo(lhs.dtype).eps)
        bound = 100 * eps * np.sqrt(lhs.shape[0])
        return Verdict(
            bool(worst <= bound),
            "freivalds",
            f"{v.trials} random vectors: relative error {worst:.2e} (bound {bound:.1e})",
            worst,
        )
    if isinstance(v, VerifyResidual):
        value = float(np_eval(v.residual, v.residual.tree, env))
        ok = bool(value < v.below)  # NaN never passes
        why = "below" if ok else "not a number: the computation broke down, not" if np.isnan(value) else "not below"
        return Verdict(ok, "residual", f"{v.residual.text} = {value:.3e} ({why} {v.below:g})", value)
    if isinstance(v, VerifyReference):
        of = v.of or output_names(spec)[0]
        ref = np.asarray(np_eval(v.reference, v.reference.tree, env))
        got = np.asarray(arrays[of] if of in arrays else (scalars or {})[of])
        err = float(np.linalg.norm(got - ref))
        scale = float(np.linalg.norm(ref))
        rel = err / scale if scale else err
        return Verdict(
            bool(err <= v.atol + v.rtol * scale),
            "reference",
            f"{of} vs {v.reference.text}: relative error {rel:.2e} (rtol {v.rtol:g})",
            rel,
        )
    if isinstance(v, VerifyExact):
        tree = v.exact.tree
        assert isinstance(tree, ast.Compare)  # validated: an equation
        a = np.asarray(np_eval(v.exact, tree.left, env))
        b = np.asarray(np_eval(v.exact, tree.comparators[0], env))
        try:  # a side may be one number (`a == 4`): it stands for every element
            a, b = np.broadcast_arrays(a, b)
        except ValueError:
            return Verdict(
                False, "exact", f"{v.exact.text}: the sides have shapes {a.shape} and {b.shape}", float("inf")
            )
        same = np.isclose(a, b, rtol=v.rtol, atol=0) if v.rtol else a == b.astype(a.dtype)
        bad = int(np.count_nonzero(~same))  # NaN equals nothing, itself included
        return Verdict(
            bad == 0,
            "exact",
            f"{v.exact.text}: " + ("every element matches" if bad == 0 else f"{bad} of {a.size} elements differ"),
            float(bad),
        )
    raise AssertionError(v)


def metrics(spec: Spec, iterations_run: int) -> dict[str, float]:
    """The spec's metrics for one run: total flops and/or bytes."""
    env = {**spec.params, "iterations_run": iterations_run}
    out = {}
    for key in ("flops", "bytes"):
        expr = getattr(spec.metrics, key)
        if expr is not None:
            out[key] = float(evaluate(expr, env))
    return out
