"""The expression language: Python syntax, parsed with :mod:`ast` and checked against a
whitelist of node types and functions. Nothing is ever passed to ``eval`` or ``exec``.

Numbers are exact: integers stay integers, ``/`` of integers is an exact fraction, and a
size that does not come out whole is an error rather than a silently truncated float.
"""

from __future__ import annotations

import ast
import math
import operator
import sys
import weakref
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterator, Mapping, cast

from ..diagnostics import Diagnostic, Pos, did_you_mean

MAX_EXPR_CHARS = 2000
MAX_EXPR_DEPTH = 40
MAX_MAGNITUDE = 2**256  # beyond this, a number in a spec is a mistake
MAX_SIZE = 2**62  # anything used as a size, count or extent
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # every integer an engine holds

# The passes that walk an expression (type inference, evaluation, expansion, the oracle,
# ast.unparse in messages) recurse a few frames per level, and a flat chain P+P+...+P as
# long as MAX_EXPR_CHARS allows is MAX_EXPR_CHARS/2 levels: Python's default of 1000
# frames is too few for it. (Python frames, not C stack, since Python 3.11.) Importing
# TensorFlow sets the limit back to 3000, so every walk's entry point asks again.
_FRAMES_PER_LEVEL = 6
_DEEP_ENOUGH = 1000 + _FRAMES_PER_LEVEL * MAX_EXPR_CHARS // 2


def allow_deep_expressions() -> None:
    """Raise Python's recursion limit to what the longest allowed expression needs."""
    if sys.getrecursionlimit() < _DEEP_ENOUGH:
        sys.setrecursionlimit(_DEEP_ENOUGH)


allow_deep_expressions()

#: Scalar math available everywhere an expression is allowed.
MATH_FUNCTIONS = ("abs", "ceil", "floor", "log2", "max", "min", "sqrt")

Number = int | float | Fraction | bool


class ExprError(Exception):
    """A mistake in an expression: ``diagnostic``, the first of ``diagnostics`` when one
    expression holds several (they are in the order of their positions). ``parsed``: the
    expression all the same, when its only mistakes are calls to unknown functions, so
    that the mistakes in the rest of it (types, tile indices) can be found too."""

    def __init__(self, diagnostic: Diagnostic, *more: Diagnostic, parsed: Expr | None = None):
        self.diagnostic = diagnostic
        self.diagnostics = [diagnostic, *more]
        self.parsed = parsed
        super().__init__(diagnostic.message)


@dataclass(frozen=True, eq=False)
class Expr:
    """A parsed expression and where its text sits in the YAML file.

    ``exact`` is true when ``pos`` is the first character of the expression's text on a
    single line, so positions of sub-expressions can be computed from AST offsets.
    """

    text: str
    tree: ast.expr = field(repr=False)
    pos: Pos
    exact: bool = False

    def at(self, node: ast.AST | None) -> Pos:
        """The source position of a sub-expression (the whole expression if unknown)."""
        if node is None or not self.exact or getattr(node, "lineno", None) != 1:
            return self.pos  # unknown, on a later line, or a node without a place (ast.Load, ast.Add)
        start: int = getattr(node, "col_offset")
        end: int = getattr(node, "end_col_offset", start + 1)
        if getattr(node, "end_lineno", 1) != 1:
            end = len(self.text)
        return self.pos.shifted(start, end - start)

    def error(self, node: ast.AST | None, code: str, message: str, hint: str = "") -> ExprError:
        return ExprError(Diagnostic(self.at(node), code, message, hint))

    def names(self) -> set[str]:
        """Every name the expression mentions, function names excluded."""
        funcs = {id(n.func) for n in ast.walk(self.tree) if isinstance(n, ast.Call)}
        return {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and id(n) not in funcs}

    def base(self) -> str | None:
        """The array or queue a target expression names: 'C' for 'C[i, j]' or 'C'."""
        node = self.tree.value if isinstance(self.tree, ast.Subscript) else self.tree
        return node.id if isinstance(node, ast.Name) else None

    def src(self, node: ast.AST) -> str:
        return ast.unparse(node)

    def written(self, node: ast.AST) -> str:
        """The text of ``node`` as written (``1e999``, not ``1e309``), else ``src``."""
        return ast.get_source_segment(self.text.strip() if "\n" in self.text else self.text, node) or self.src(node)

    def __str__(self) -> str:
        return self.text


_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult)
_UNARY = (ast.USub, ast.UAdd, ast.Not)
_CMP = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.Constant,
    ast.Name,
    ast.Subscript,
    ast.Slice,
    ast.Tuple,
    ast.Call,
    ast.keyword,
    ast.Load,
    ast.And,
    ast.Or,
    *_BINOPS,
    *_UNARY,
    *_CMP,
)
_DESCRIBE = {
    ast.Attribute: "attribute access ('.')",
    ast.Lambda: "lambda",
    ast.IfExp: "if-else",
    ast.ListComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.List: "lists",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.JoinedStr: "f-strings",
    ast.Starred: "'*' unpacking",
    ast.NamedExpr: "':='",
    ast.Await: "await",
    ast.BitAnd: "'&'",
    ast.BitOr: "'|'",
    ast.BitXor: "'^'",
    ast.LShift: "'<<'",
    ast.RShift: "'>>'",
    ast.Invert: "'~'",
    ast.Is: "'is'",
    ast.IsNot: "'is not'",
    ast.In: "'in'",
    ast.NotIn: "'not in'",
}


def parse_expr(
    text: object, pos: Pos, exact: bool = False, functions: tuple[str, ...] = MATH_FUNCTIONS, elements: bool = False
) -> Expr:
    """Parse ``text`` (a string or a YAML number) into an :class:`Expr`, or raise ExprError.

    ``functions`` are the callable names allowed (math functions, plus op names in
    compute expressions).
    """
    if isinstance(text, bool):
        text = "True" if text else "False"
    if isinstance(text, float) and not math.isfinite(text):
        raise ExprError(Diagnostic(pos, "bad-value", f"{text} is not a finite number", "write a number"))
    if isinstance(text, (int, float)):
        text, exact = repr(text), False
    if not isinstance(text, str):
        raise ExprError(
            Diagnostic(
                pos,
                "expr-type",
                f"expected an expression, got {type_name(text)}",
                "write a number or an expression such as 'N/P'",
            )
        )
    probe = Expr(text, ast.Constant(0), pos, exact)
    if len(text) > MAX_EXPR_CHARS:
        raise probe.error(
            None,
            "expr-too-long",
            f"expression is {len(text)} characters long (at most {MAX_EXPR_CHARS})",
            "split it with params",
        )
    if not text.strip():
        raise probe.error(None, "expr-syntax", "empty expression", "write a number or an expression")
    try:
        tree = ast.parse(text.strip() if "\n" in text else text, mode="eval")
    except SyntaxError as e:
        if "too many nested" in (e.msg or ""):
            raise probe.error(None, "expr-too-long", "expression nests too deeply", "simplify it") from None
        col = max((e.offset or 1) - 1, 0)
        err_pos = pos.shifted(col, 1) if exact and (e.lineno or 1) == 1 else pos
        raise ExprError(
            Diagnostic(
                err_pos,
                "expr-syntax",
                f"invalid expression: {e.msg}",
                "expressions use Python syntax, e.g. 'A[i, k] @ B[k, j]' or 'N/T'",
            )
        ) from None
    except (RecursionError, MemoryError, ValueError):
        raise probe.error(None, "expr-too-long", "expression nests too deeply", "simplify it") from None
    expr = Expr(text, tree.body, pos, exact)
    _check_whitelist(expr, tree, functions, elements)
    return expr


def _check_whitelist(expr: Expr, tree: ast.Expression, functions: tuple[str, ...], elements: bool = False) -> None:
    """Refuse what is not in the language, every mistake at once, in the order of their
    positions (a mistake repeated, the same message again, only where it first occurs).
    What is not in the language is not looked into; the arguments of an unknown function
    are, and when unknown functions are the only mistakes the error carries the parsed
    expression (``ExprError.parsed``). Depth counts nesting, not length: the left operand
    of a binary operator continues its chain (``P+P+...+P`` is one level however long; the
    length limit bounds it), and an expression nested too deeply is that one mistake.
    Mistakes in an operator or context node (``&``, ``is``), which has no position, are
    reported at the expression that holds it."""
    found: list[Diagnostic] = []
    # slices with bounds are element subscripts of a value (u[i, j][1:-1, :]), never of tiles
    bounded = {
        id(sub)
        for n in ast.walk(tree)
        if isinstance(n, ast.Subscript) and (elements or not isinstance(n.value, ast.Name))
        for sub in (n.slice.elts if isinstance(n.slice, ast.Tuple) else [n.slice])
        if isinstance(sub, ast.Slice)
    }
    stack: list[tuple[ast.AST, int, ast.AST]] = [(tree, 0, tree.body)]
    while stack:
        node, depth, where = stack.pop()
        if hasattr(node, "col_offset"):
            where = node
        if depth > MAX_EXPR_DEPTH:
            raise expr.error(
                where,
                "expr-too-long",
                "expression nests too deeply",
                f"at most {MAX_EXPR_DEPTH} levels; split it with params",
            )
        try:
            _check_node(expr, node, where, functions, id(node) in bounded)
        except ExprError as e:
            found.append(e.diagnostic)
            if e.diagnostic.code != "unknown-function":
                continue
        chain = node.left if isinstance(node, ast.BinOp) and isinstance(node.left, ast.BinOp) else None
        func = node.func if isinstance(node, ast.Call) else None  # checked with its call
        children = [
            (child, depth + (child is not chain), where) for child in ast.iter_child_nodes(node) if child is not func
        ]
        stack.extend(reversed(children))  # left to right: the order of the source when positions tie
    if found:
        seen, first = set(), []
        for d in sorted(found, key=lambda d: (d.pos.line, d.pos.col)):
            if (d.code, d.message) not in seen:
                seen.add((d.code, d.message))
                first.append(d)
        raise ExprError(*first, parsed=expr if all(d.code == "unknown-function" for d in first) else None)


def _check_node(expr: Expr, node: ast.AST, where: ast.AST, functions: tuple[str, ...], bounded: bool = False) -> None:
    """Raise ExprError if ``node`` itself (not its children) is not in the language."""
    if isinstance(node, ast.Attribute) and "transpose" in functions:  # a compute expression
        if node.attr != "T":
            raise expr.error(
                node,
                "expr-forbidden",
                f"'.{node.attr}' is not an attribute of a tile",
                "'.T' (the transpose) is the only one, e.g. 'A[i, k].T'",
            )
        return
    if not isinstance(node, _ALLOWED):
        what = _DESCRIBE.get(type(node), type(node).__name__)
        raise expr.error(
            where,
            "expr-forbidden",
            f"{what} is not allowed in an expression",
            "expressions allow numbers, names, + - * / // % ** @, comparisons, "
            "and/or/not, tile subscripts and calls to known functions",
        )
    if isinstance(node, ast.Constant) and (
        isinstance(node.value, (str, bytes, complex)) or node.value is None or node.value is ...
    ):
        raise expr.error(
            node,
            "expr-forbidden",
            f"the literal {node.value!r} is not allowed",
            "only numbers and True/False are literals in expressions",
        )
    if isinstance(node, ast.Constant) and not isinstance(node.value, bool):
        check_number(expr, node, cast(Number, node.value), f"the literal {expr.written(node)}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise expr.error(
                node.func,
                "expr-forbidden",
                "only named functions can be called",
                "call a function such as sum(...), dot(...) or log2(...)",
            )
        if node.func.id not in functions:
            raise expr.error(
                node.func,
                "unknown-function",
                f"unknown function '{node.func.id}'",
                did_you_mean(node.func.id, functions)
                or (
                    f"the functions are {', '.join(functions)}"
                    if functions
                    else "no function can be called in a target or a queue key: index it with "
                    "`for:` indices and params, e.g. 'y[i + 1]'"
                ),
            )
        if any(k.arg is None for k in node.keywords):
            raise expr.error(node, "expr-forbidden", "'**' unpacking is not allowed")
    if isinstance(node, ast.Slice) and (node.lower or node.upper or node.step) and not bounded:
        raise expr.error(
            node,
            "expr-forbidden",
            "only ':' (all tiles) is allowed as a slice of tiles",
            "index tiles with names such as A[i, :]; slice the elements of a tile with a second subscript: "
            "A[i, j][1:-1, :]",
        )
    if isinstance(node, ast.Name) and node.id.startswith("__"):
        raise expr.error(node, "expr-forbidden", f"the name '{node.id}' is not allowed")


def type_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "nothing (null)",
    }.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------- numbers


def _norm(v: Number) -> Number:
    if isinstance(v, Fraction) and v.denominator == 1:
        return int(v.numerator)
    return v


def _exact_log2(x: Number) -> Number:
    if isinstance(x, int) and x > 0 and x & (x - 1) == 0:
        return x.bit_length() - 1
    return math.log2(x)


def _exact_sqrt(x: Number) -> Number:
    if isinstance(x, int) and x >= 0 and math.isqrt(x) ** 2 == x:
        return math.isqrt(x)
    return math.sqrt(x)


_MATH: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "ceil": math.ceil,
    "floor": math.floor,
    "log2": _exact_log2,
    "max": max,
    "min": min,
    "sqrt": _exact_sqrt,
}
_ARITH = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def evaluate(expr: Expr, env: Mapping[str, Number]) -> Number:
    """Evaluate a numeric expression exactly. Raise ExprError on anything else."""
    allow_deep_expressions()
    return _norm(_eval(expr, expr.tree, env))


def _eval(expr: Expr, node: ast.AST, env: Mapping[str, Number]) -> Number:
    if isinstance(node, ast.Constant):
        return cast(Number, node.value)  # a number: the whitelist let no other literal through
    if isinstance(node, ast.Name):
        if node.id not in env:
            raise expr.error(
                node,
                "undefined-name",
                f"undefined name '{node.id}'",
                did_you_mean(node.id, env) or "define it under `params:`",
            )
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        v = _eval(expr, node.operand, env)
        return not v if isinstance(node.op, ast.Not) else (-v if isinstance(node.op, ast.USub) else +v)
    if isinstance(node, ast.BoolOp):
        vals = [_eval(expr, v, env) for v in node.values]
        return all(vals) if isinstance(node.op, ast.And) else any(vals)
    if isinstance(node, ast.Compare):
        left = _eval(expr, node.left, env)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(expr, right_node, env)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BinOp):
        return _binop(expr, node, _eval(expr, node.left, env), _eval(expr, node.right, env))
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)  # the whitelist calls named functions only
        if node.keywords:
            raise expr.error(node, "expr-type", f"{node.func.id}() takes no keyword arguments here")
        args = [_eval(expr, a, env) for a in node.args]
        fn = _MATH.get(node.func.id)
        if fn is None:
            raise expr.error(
                node,
                "expr-type",
                f"'{node.func.id}' works on arrays, not on numbers",
                "this expression must give a number",
            )
        try:
            return _check_magnitude(expr, node, _norm(fn(*args)))
        except (TypeError, ValueError, OverflowError) as e:
            raise expr.error(node, "expr-value", f"{expr.src(node)}: {e}") from None
    if isinstance(node, ast.Subscript):
        raise expr.error(
            node, "expr-type", "array indexing is not allowed here", "this expression must give a number, e.g. 'N/T'"
        )
    raise expr.error(node, "expr-type", f"'{expr.src(node)}' is not a number")


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled(expr: Expr) -> Callable[[Mapping[str, Number]], Number]:
    """``evaluate`` for an expression evaluated many times (a queue's shard for every
    push): the tree is turned once into nested closures with the same exact semantics."""
    fn = _COMPILED.get(expr)
    if fn is None:
        inner = _closure(expr, expr.tree)
        fn = _COMPILED[expr] = lambda env: _norm(inner(env))
    return fn


def _closure(expr: Expr, node: ast.AST) -> Callable:
    if isinstance(node, ast.Constant):
        value = node.value
        return lambda env: value
    if isinstance(node, ast.Name):
        key = node.id

        def name(env):
            try:
                return env[key]
            except KeyError:
                return _eval(expr, node, env)  # reports the undefined name

        return name
    if isinstance(node, ast.BinOp):
        left, right = _closure(expr, node.left), _closure(expr, node.right)
        op = type(node.op)
        exact = _ARITH.get(op)
        if exact is None and op is not ast.Div:
            return lambda env: _binop(expr, node, left(env), right(env))

        def ints(env):  # the common case, integers, without _binop's checks of every type
            a, b = left(env), right(env)
            if type(a) is int and type(b) is int and (b or op in (ast.Add, ast.Sub, ast.Mult)):
                if exact is not None:
                    v = exact(a, b)
                elif a % b == 0:  # ``/`` of integers, whole: what Fraction(a, b) normalises to
                    v = a // b
                else:
                    return _binop(expr, node, a, b)
                if -MAX_MAGNITUDE <= v <= MAX_MAGNITUDE:
                    return v
            return _binop(expr, node, a, b)

        return ints
    return lambda env: _eval(expr, node, env)


def _binop(expr: Expr, node: ast.BinOp, a: Any, b: Any) -> Number:  # ints, floats, fractions, bools
    op = type(node.op)
    if op is ast.MatMult:
        raise expr.error(node, "expr-type", "'@' multiplies arrays, not numbers")
    if op in (ast.Div, ast.FloorDiv, ast.Mod) and b == 0:
        raise expr.error(
            node, "zero-division", f"division by zero in '{expr.src(node)}'", f"'{expr.src(node.right)}' is 0 here"
        )
    if op is ast.Div:
        if isinstance(a, float) or isinstance(b, float):
            result: Number = a / b
        else:
            result = Fraction(a) / Fraction(b)
    elif op is ast.Pow:
        size_a: Any = abs(a)
        size_b: Any = abs(b)
        if (
            isinstance(b, (int, Fraction))
            and not isinstance(b, bool)
            and size_b > 4096
            or (
                isinstance(a, (int, Fraction))
                and isinstance(b, int)
                and size_a > 1
                and size_b * math.log2(size_a) > 256
            )
        ):
            raise expr.error(
                node, "too-large", f"'{expr.src(node)}' is far too large", "sizes and counts must fit in 64 bits"
            )
        try:
            result = a**b
            if isinstance(result, complex):
                raise ValueError("a negative number to a fractional power")
        except (OverflowError, ZeroDivisionError, ValueError) as e:
            raise expr.error(node, "expr-value", f"cannot compute '{expr.src(node)}': {e}") from None
        if isinstance(b, Fraction) and b.denominator != 1:
            result = float(a) ** float(b)
    else:
        result = _ARITH[op](a, b)
    return _check_magnitude(expr, node, _norm(result))


def _check_magnitude(expr: Expr, node: ast.AST, v: Any) -> Number:
    if isinstance(v, float) and math.isinf(v) or not isinstance(v, float) and abs(v) > MAX_MAGNITUDE:
        raise expr.error(
            node, "too-large", f"'{expr.src(node)}' is far too large", "sizes and counts must fit in 64 bits"
        )
    return v


# ------------------------------------------------------- numbers in array expressions

_FLOAT_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_SIGNS: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
#: the operators on numbers that an array expression allows, and :func:`fold` computes
FOLDABLE = (*_FLOAT_OPS, *_SIGNS)


def fold(expr: Expr, node: Any, *args: Any) -> Number:
    """A number computed from numbers inside an array expression (``2**40`` in
    ``x * 2**40``), as the engines compute it: integers in int64, anything else in
    float64. A result neither holds is an error, where the engines would wrap around or
    give infinity; a power is bounded before it is computed (``9**9**9`` never is)."""
    op = type(node.op)
    try:
        if op in _SIGNS:
            value = _SIGNS[op](args[0])
        elif all(type(v) is int for v in args) and op is not ast.Div:
            value = _int_pow(expr, node, *args) if op is ast.Pow else _ARITH[op](*args)
        else:
            value = _FLOAT_OPS[op](float(args[0]), float(args[1]))
            if isinstance(value, complex):
                raise ValueError("a negative number to a fractional power")
    except OverflowError:
        value = math.inf
    except ZeroDivisionError as e:
        if op is ast.Div:
            raise expr.error(
                node,
                "zero-division",
                f"division by zero in '{expr.written(node)}'",
                f"'{expr.written(node.right)}' is 0",
            ) from None
        raise expr.error(node, "expr-value", f"cannot compute '{expr.written(node)}': {e}") from None
    except ValueError as e:
        raise expr.error(node, "expr-value", f"cannot compute '{expr.written(node)}': {e}") from None
    return check_number(expr, node, value, f"'{expr.written(node)}'")


def _int_pow(expr: Expr, node: Any, a: int, b: int) -> int:
    if b < 0:
        base = f"({float(a)!r})" if a < 0 else repr(float(a))
        raise expr.error(
            node,
            "expr-value",
            f"'{expr.written(node)}': an integer to a negative power",
            f"integers stay integers: write a float base, e.g. {base}**{b}",
        )
    if abs(a) > 1 and b > 64:  # at least 2**65: out of int64, and not worth computing
        raise _int64_error(expr, node, f"'{expr.written(node)}'", f"at least 2**{b}")
    return a**b


def check_number(expr: Expr, node: ast.AST, value: Number, what: str) -> Number:
    """``value`` if an engine can hold it (an integer in int64, a finite float), else the
    error, at ``node``, that ``what`` does not fit."""
    if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        raise _int64_error(expr, node, what, approx(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise expr.error(
            node,
            "too-large",
            f"{what} overflows float64 (it is {value})",
            "numbers in expressions are at most 1.8e+308",
        )
    return value


def _int64_error(expr: Expr, node: ast.AST, what: str, value: str) -> ExprError:
    return expr.error(
        node,
        "too-large",
        f"{what} is {value}, which does not fit in int64",
        "integers are 64-bit, at most 2**63 - 1 (about 9.22e+18); for a larger number write a float, e.g. 1e+23",
    )


def approx(v: Number) -> str:
    """A number short enough for a message: 2**100 is '1.27e+30'; integers near int64's
    range stay exact (2**63 is 9223372036854775808)."""
    if isinstance(v, int) and abs(v) >= 10**21:
        return f"{v:.3g}" if v.bit_length() <= 1000 else f"about 2**{v.bit_length() - 1}"
    return _fmt(v)


def as_number(v: Number) -> int | float:
    """A final value: exact integers stay int; fractions become floats."""
    v = _norm(v)
    return float(v) if isinstance(v, Fraction) else v


def whole(expr: Expr, env: Mapping[str, Number], what: str, minimum: int | None = 1) -> int:
    """Evaluate a size, count or extent: it must be a whole number within range.

    A division that does not come out whole is reported at that division.
    """
    for node in _walk_postorder(expr.tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            sub = Expr(expr.text, node, expr.pos, expr.exact)
            try:
                a, b = _eval(expr, node.left, env), _eval(expr, node.right, env)
            except ExprError:
                break  # the full evaluation below reports it
            if isinstance(a, (int, Fraction)) and isinstance(b, (int, Fraction)) and b != 0:
                q = Fraction(a) / Fraction(b)
                if q.denominator != 1:
                    raise sub.error(
                        node,
                        "not-whole",
                        f"{what} is {expr.src(node)} = {_fmt(a)}/{_fmt(b)} = {float(q):g}, not a whole number",
                        "sizes must divide exactly: choose values where "
                        f"{expr.src(node.right)} divides {expr.src(node.left)}",
                    )
    v = evaluate(expr, env)
    if isinstance(v, bool) or not isinstance(v, (int, Fraction)) or _norm(v) != int(v):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise expr.error(
                None, "not-whole", f"{what} is {_show(expr, v)}, not a whole number", "sizes and counts are integers"
            )
    v = int(v)
    if abs(v) > MAX_SIZE:
        raise expr.error(
            None,
            "too-large",
            f"{what} is {_show(expr, f'{v:.3g}')}, far too large",
            "sizes and counts must fit in 64 bits",
        )
    if minimum is not None and v < minimum:
        raise expr.error(
            None,
            "bad-size",
            f"{what} is {_show(expr, v)}; it must be at least {minimum}",
            "sizes and counts must be positive",
        )
    return v


def _show(expr: Expr, v: object) -> str:
    """'N = 1e+30' when the text is not the value itself, else just the value."""
    value = _fmt(v) if isinstance(v, (int, float, Fraction)) else str(v)
    return value if expr.text.strip() == value else f"{expr.text.strip()} = {value}"


def _fmt(v: Number) -> str:
    if isinstance(v, Fraction):
        return f"{v.numerator}/{v.denominator}" if v.denominator != 1 else str(v.numerator)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _walk_postorder(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        yield from _walk_postorder(child)
    yield node
