"""One walk over a compute expression, shared by the type checker (``lang/shapes.py``),
the expander (``passes/expand.py``) and the verifier (``runtime/verify.py``).

The walker knows the syntax: which Python node spells which op of the registry (an
operator by its symbol and its operands' ranks, a call by its name), and the order in
which sub-expressions are visited (operands left to right, then the op). What a value *is*
— a type, a node of the IR, a NumPy array — and what applying an op to values means is
its subclass's business: :meth:`Walker.leaf` hooks and :meth:`Walker.apply`.

Two evaluators stay apart on purpose: ``lang/expr.py`` computes the numbers of params,
sizes and indices (exact integers and fractions, ``//`` and ``%``: a different language
from the tile expressions), and ``dfc/oracle.py`` is the tests' reference, which shares
no code with what it checks.
"""

from __future__ import annotations

import ast
from typing import Generic, Sequence, TypeVar

from ..ops import REGISTRY, Op, by_symbol
from .expr import allow_deep_expressions

V = TypeVar("V")

#: The operators of the language, by the Python syntax node that spells them.
SYMBOLS: dict[type, str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.USub: "-",
    ast.Not: "not",
    ast.And: "and",
    ast.Or: "or",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}


class Walker(Generic[V]):
    """Post-order evaluation of an expression's tree into values of type ``V``."""

    def walk(self, node: ast.AST) -> V:
        allow_deep_expressions()  # cheap, and a TensorFlow import may have lowered it
        method = _DISPATCH.get(type(node))
        if method is None:
            return self.forbidden(node)
        return getattr(self, method)(node)

    # ---------------------------------------------------------------- hooks
    def constant(self, node: ast.Constant) -> V:
        raise NotImplementedError

    def name(self, node: ast.Name) -> V:
        raise NotImplementedError

    def subscript(self, node: ast.Subscript) -> V:
        raise NotImplementedError

    def rank(self, value: V) -> int | None:
        """The rank of a value (None: unknown), to choose among ops of one symbol (``@``)."""
        raise NotImplementedError

    def apply(self, node: ast.AST, op: str, args: list[V], arg_nodes: Sequence[ast.AST], **kwargs) -> V:
        raise NotImplementedError

    def call(self, node: ast.Call, op: Op) -> V:
        """A call of a registry op: its arguments, then the op (keywords: :meth:`keywords`)."""
        args = [self.walk(a) for a in node.args]
        return self.apply(node, op.name, args, node.args, **self.keywords(node, op))

    def keywords(self, node: ast.Call, op: Op) -> dict:
        return {}

    def plus(self, node: ast.UnaryOp, value: V) -> V:
        """``+x``: ``x`` itself."""
        return value

    def no_operator(self, node: ast.AST, symbol: str, args: list[V]) -> V:
        """An operator no op of the registry takes with these operands."""
        raise ValueError(f"no op for '{symbol}' in '{ast.unparse(node)}'")

    def unknown_call(self, node: ast.Call) -> V:
        raise ValueError(f"unknown function in '{ast.unparse(node)}'")

    def forbidden(self, node: ast.AST) -> V:
        raise ValueError(f"'{ast.unparse(node)}' is not an expression of the language")

    # ---------------------------------------------------------------- syntax
    def operator(self, node: ast.AST, syntax: ast.AST, args: list[V], arg_nodes: Sequence[ast.AST]) -> V:
        symbol = SYMBOLS[type(syntax)]
        op = by_symbol(symbol, tuple(self.rank(a) for a in args))
        if op is None:
            return self.no_operator(node, symbol, args)
        return self.apply(node, op.name, args, arg_nodes)

    def _binop(self, node: ast.BinOp) -> V:
        args = [self.walk(node.left), self.walk(node.right)]
        return self.operator(node, node.op, args, (node.left, node.right))

    def _unaryop(self, node: ast.UnaryOp) -> V:
        value = self.walk(node.operand)
        if isinstance(node.op, ast.UAdd):
            return self.plus(node, value)
        return self.operator(node, node.op, [value], (node.operand,))

    def _boolop(self, node: ast.BoolOp) -> V:
        return self.operator(node, node.op, [self.walk(v) for v in node.values], node.values)

    def _compare(self, node: ast.Compare) -> V:
        """``a < b <= c``: each comparison, then their ``and``."""
        left_node, left, parts = node.left, self.walk(node.left), []
        for syntax, right_node in zip(node.ops, node.comparators):
            right = self.walk(right_node)
            parts.append(self.operator(node, syntax, [left, right], (left_node, right_node)))
            left_node, left = right_node, right
        if len(parts) == 1:
            return parts[0]
        return self.apply(node, "and", parts, [node] * len(parts))

    def _subscript(self, node: ast.Subscript) -> V:
        """``A[i, k]`` (tiles of an array: :meth:`subscript`) or ``EXPR[0, 1:-1]`` (elements of
        a value: the ``part`` op, its bounds computed by :meth:`element_bound`)."""
        if self.tiles_of(node):
            return self.subscript(node)
        value = self.walk(node.value)
        subs = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        items: list[tuple] = []
        for sub in subs:
            if isinstance(sub, ast.Slice):
                bounds = [None if b is None else self.element_bound(b) for b in (sub.lower, sub.upper, sub.step)]
                items.append(("s", *bounds))
            else:
                items.append(("i", self.element_bound(sub)))
        return self.apply(node, "part", [value], [node.value], items=tuple(items))

    def element_bound(self, node: ast.expr) -> int:
        """A number in an element subscript (a param expression)."""
        raise NotImplementedError

    def tiles_of(self, node: ast.Subscript) -> bool:
        """Whether ``node`` names tiles of an array (``A[i, k]``), not elements of a value."""
        return isinstance(node.value, ast.Name)

    def _attribute(self, node: ast.Attribute) -> V:
        """``a.T``: the transpose of ``a`` (the parser lets no other attribute through)."""
        if node.attr != "T":
            return self.forbidden(node)
        return self.apply(node, "transpose", [self.walk(node.value)], [node.value])

    def _call(self, node: ast.Call) -> V:
        op = REGISTRY.get(node.func.id) if isinstance(node.func, ast.Name) else None
        if op is None or not op.callable:
            return self.unknown_call(node)
        return self.call(node, op)


_DISPATCH = {
    ast.Constant: "constant",
    ast.Name: "name",
    ast.Subscript: "_subscript",
    ast.BinOp: "_binop",
    ast.UnaryOp: "_unaryop",
    ast.BoolOp: "_boolop",
    ast.Compare: "_compare",
    ast.Call: "_call",
    ast.Attribute: "_attribute",
}
