"""Numbers in expressions (issue 10, item 6): long flat chains work at any length the
character limit allows, integer literals fit in int64, numbers computed from numbers in
array expressions fit in int64/float64 and in the dtype they meet (checked at validation,
bounded before they are computed), and a .npy input cut short after validation is a
user error when the NumPy engine or the oracle reads it. Expected values come from plain
NumPy and Python, never from dfc."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from dfc.diagnostics import Pos
from dfc.ir.interp import run_numpy
from dfc.lang import SpecError, load_spec, load_spec_text
from dfc.lang.expr import MAX_EXPR_CHARS, ExprError, parse_expr
from dfc.lang.shapes import Scope, infer
from dfc.ops import TensorType
from dfc.oracle import run_oracle
from dfc.passes import compile_spec

POS = Pos("t.yaml", 3, 10, 10)


def spec_text(compute: str, dtype: str = "float64", params: str = "{P: 3}", shape: str = "8") -> str:
    return f"""dfc: 1
name: numbers
params: {params}
arrays:
  x: {{shape: [{shape}], dtype: {dtype}, tile: [4], init: {{random: uniform, seed: 1}}}}
  y: {{shape: [{shape}], dtype: {dtype}, tile: [4], output: true}}
tasks:
  t: {{for: {{i: 2}}, compute: "{compute}", out: "y[i]"}}
"""


def results(text: str) -> list[np.ndarray]:
    """y from the NumPy engine and from the oracle, and x (to compute the expectation)."""
    spec = load_spec_text(text.encode(), "numbers.yaml")
    engine, oracle = run_numpy(compile_spec(spec, "heft", None)), run_oracle(spec)
    return [engine.arrays["y"], oracle.arrays["y"], oracle.arrays["x"]]


# ------------------------------------------------------------------- long chains

LONGEST = (MAX_EXPR_CHARS - len("+x[i]")) // 2  # 'P+' per term: the most the length limit allows


@pytest.fixture
def tensorflow_imported():
    """Importing TensorFlow sets Python's recursion limit to 3000 (whatever it was before);
    CI imports it in the tests that run before these ones."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(3000)
    yield
    sys.setrecursionlimit(old)


@pytest.mark.parametrize("n", [40, 200, LONGEST])
def test_a_long_chain_of_params_validates_and_computes(n, tensorflow_imported):
    y_engine, y_oracle, x = results(spec_text("+".join(["P"] * n) + "+x[i]"))
    want = x + 3 * n
    np.testing.assert_allclose(y_engine, want, rtol=1e-12)
    np.testing.assert_allclose(y_oracle, want, rtol=1e-12)


@pytest.mark.parametrize("n", [40, 200, 399])
def test_a_long_chain_of_tiles_validates_and_computes(n):
    y_engine, y_oracle, x = results(spec_text("-".join(["x[i]"] * n)))
    want = x.copy()
    for _ in range(n - 1):  # left to right, as written
        want = want - x
    np.testing.assert_allclose(y_engine, want, rtol=1e-12)
    np.testing.assert_allclose(y_oracle, want, rtol=1e-12)


def test_long_chains_in_params_and_sizes():
    n = 300
    text = spec_text(
        "x[i] * Q", params="{P: 3, Q: '" + "+".join(["P"] * n) + "'}", shape="'" + "+".join(["2"] * 4) + "'"
    )
    spec = load_spec_text(text.encode(), "numbers.yaml")
    assert spec.params["Q"] == 3 * n
    assert spec.arrays["x"].shape == (8,)


def test_a_long_chain_with_a_mistake_at_its_end_is_reported_there():
    text = "+".join(["P"] * 200) + "+zz"
    with pytest.raises(SpecError) as info:
        load_spec_text(spec_text(text).encode(), "numbers.yaml")
    (d,) = info.value.diagnostics
    assert d.code == "undefined-name" and "'zz'" in d.message
    assert (d.pos.line, d.pos.col) == (8, len('  t: {for: {i: 2}, compute: "') + 1 + text.index("zz"))


@pytest.mark.parametrize(
    "text, marked",
    [
        ("x & 1", "x & 1"),
        ("~x", "~x"),
        ("a is b", "a is b"),
        ("a not in b", "a not in b"),
        ("1 + (a | b)", "a | b"),
    ],
)
def test_an_operator_node_is_reported_at_its_expression(text, marked):
    """Operators and contexts (ast.BitAnd, ast.Load) have no position of their own."""
    with pytest.raises(ExprError) as info:
        parse_expr(text, POS, True)
    d = info.value.diagnostic
    assert d.code == "expr-forbidden"
    start = text.index(marked)
    assert (d.pos.col, d.pos.end_col) == (POS.col + start, POS.col + start + len(marked) - 1)


def test_real_nesting_is_still_limited():
    for text in ("-" * 60 + "x", "f(" * 45 + "x" + ")" * 45, "2**(" * 45 + "2" + ")" * 45):
        with pytest.raises(ExprError) as info:
            parse_expr(text, POS, True, ("f",))
        assert info.value.diagnostic.code == "expr-too-long"
        assert "nests too deeply" in info.value.diagnostic.message


# ------------------------------------------------------------------- numbers


def refusal(compute: str, dtype: str = "int64", params: str = "{P: 3}"):
    with pytest.raises(SpecError) as info:
        load_spec_text(spec_text(compute, dtype, params).encode(), "numbers.yaml")
    (d,) = info.value.diagnostics
    return d


@pytest.mark.parametrize(
    "compute, dtype, marked, message",
    [
        (
            "x[i] * 99999999999999999999999",
            "float64",
            "99999999999999999999999",
            "the literal 99999999999999999999999 is 1e+23, which does not fit in int64",
        ),
        ("x[i] * 9223372036854775808", "int64", "9223372036854775808", "does not fit in int64"),
        ("x[i] * 1e999", "float64", "1e999", "the literal 1e999 overflows float64"),
        ("9**9**9*x[i]", "int64", "9**9**9", "'9**9**9' is at least 2**387420489, which does not fit in int64"),
        ("9**9**9*x[i]", "float64", "9**9**9", "does not fit in int64"),
        ("2**100000*x[i]", "float64", "2**100000", "does not fit in int64"),
        ("x[i] * (2**62 * 8)", "int64", "2**62 * 8", f"is {2**65}, which does not fit in int64"),
        ("x[i] * (2**63 + 0)", "int64", "2**63", "does not fit in int64"),
        ("x[i] * -2**63", "int64", "2**63", "does not fit in int64"),  # each step must fit
        ("x[i] * (1e300 * 1e300)", "float64", "1e300 * 1e300", "overflows float64"),
        ("x[i] * 10.0**400", "float64", "10.0**400", "overflows float64"),
        ("x[i] * 2**-1", "float64", "2**-1", "an integer to a negative power"),
        ("x[i] * (1 / 0)", "float64", "1 / 0", "division by zero"),
        ("x[i] * 2**40", "int32", "2**40", "is 1099511627776, which does not fit in int32"),
        ("x[i] + 1e300", "float32", "1e300", "which does not fit in float32"),
        ("x[i] * 1e19", "int64", "1e19", "which does not fit in int64"),
        ("x[i] * (abs(-2**62) * 4)", "float64", "abs(-2**62) * 4", f"is {2**64}, which does not fit in int64"),
        ("x[i] * (min(2**62, 2**62) + 2**62)", "float64", "min(2**62, 2**62) + 2**62", "does not fit in int64"),
        ("x[i] * abs(-2**40)", "int32", "abs(-2**40)", "which does not fit in int32"),
        ("x[i] * floor(1e19)", "int64", "floor(1e19)", "which does not fit in int64"),
        ("x[i] * sqrt(-1.0)", "float64", "sqrt(-1.0)", "cannot compute 'sqrt(-1.0)': invalid value"),
        ("x[i] * log2(0)", "float64", "log2(0)", "cannot compute 'log2(0)': divide by zero"),
    ],
)
def test_numbers_that_do_not_fit_are_errors_at_their_position(compute, dtype, marked, message):
    d = refusal(compute, dtype)
    assert message in d.message
    col = len('  t: {for: {i: 2}, compute: "') + 1 + compute.index(marked)
    assert (d.pos.line, d.pos.col, d.pos.end_col) == (8, col, col + len(marked) - 1)


def test_a_number_compared_with_a_scalar_must_fit_its_dtype():
    scope = Scope({}, {}, scalars={"s": TensorType((), "int32")})
    assert infer(parse_expr("s > 2**31 - 1", POS, True), scope) == TensorType((), "bool")
    with pytest.raises(ExprError) as info:
        infer(parse_expr("s > 2**31", POS, True), scope)
    assert info.value.diagnostic.message == (
        "'2**31' is 2147483648, which does not fit in int32, the dtype of 's > 2**31'"
    )


def test_a_param_used_in_an_array_expression_must_fit_in_int64():
    d = refusal("x[i] * Q", "float64", "{Q: 2**100}")
    assert d.message == f"param 'Q' is {float(2**100):.3g}, which does not fit in int64"


def test_towers_are_refused_without_being_computed(tmp_path):
    (tmp_path / "s.yaml").write_text(spec_text("9**9**9*x[i] + 2**(2**62)*x[i] + (-3)**10**18*x[i]"))
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "dfc", "validate", str(tmp_path / "s.yaml")], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("does not fit in int64") == 3
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize(
    "compute, dtype, want",
    [
        ("x[i] * (2**62 - 1 + 2**62)", "int64", lambda x: x * np.int64(2**63 - 1)),
        ("x[i] * 3**39", "int64", lambda x: x * np.int64(3**39)),
        ("x[i] * (-2)**63", "int64", lambda x: x * np.int64(-(2**63))),
        ("x[i] * 2**31 / 2**31", "float64", lambda x: x * 2.0**31 / 2.0**31),
        ("x[i] * 2.0**-1", "float64", lambda x: x * 0.5),
        ("x[i] * (1e300 * 1e-300)", "float32", lambda x: x * np.float32(1e300 * 1e-300)),
        ("x[i] - 1 + (2**31 - 1)", "int32", lambda x: x - 1 + np.int32(2**31 - 1)),
        ("x[i] * abs(-3) + max(1, 2.5) * floor(2.7)", "float64", lambda x: x * 3 + 2.5 * 2.0),
        ("x[i] * sqrt(4.0) + min(3, 2**62)", "int64", lambda x: x * 2 + 3),
    ],
)
def test_numbers_that_fit_compute_exactly(compute, dtype, want):
    text = spec_text(compute, dtype)
    if dtype.startswith("int"):
        text = text.replace("init: {random: uniform, seed: 1}", "init: ones")
    y_engine, y_oracle, x = results(text)
    np.testing.assert_array_equal(y_engine, want(x))
    np.testing.assert_array_equal(y_oracle, want(x))


# ------------------------------------------------------------------- .npy inputs

NPY_SPEC = """dfc: 1
name: npy
arrays:
  a: {shape: [16], dtype: float64, tile: [4], init: {file: a.npy}}
  b: {shape: [16], dtype: float64, tile: [4], output: true}
tasks:
  t: {for: {i: 4}, compute: "2 * a[i]", out: "b[i]"}
"""


@pytest.fixture
def npy_spec(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(16.0))
    (tmp_path / "s.yaml").write_text(NPY_SPEC)
    spec = load_spec(tmp_path / "s.yaml")
    return spec, compile_spec(spec, "heft", None), tmp_path / "a.npy"


@pytest.mark.parametrize(
    "run", [lambda spec, g: run_numpy(g), lambda spec, g: run_oracle(spec)], ids=["numpy", "oracle"]
)
def test_a_npy_cut_short_after_validation_is_a_user_error(npy_spec, run):
    spec, g, path = npy_spec
    np.testing.assert_array_equal(run(spec, g).arrays["b"], 2 * np.arange(16.0))
    data = path.read_bytes()
    path.write_bytes(data[:-40])
    with pytest.raises(SpecError) as info:
        run(spec, g)
    (d,) = info.value.diagnostics
    assert d.code == "bad-file" and d.hint
    assert d.message == f"'{path}' has {16 * 8 - 40} bytes of data but its header says float64[16], {16 * 8} bytes"
    assert (d.pos.file, d.pos.line) == (str(path.parent / "s.yaml"), 4)


@pytest.mark.parametrize(
    "run", [lambda spec, g: run_numpy(g), lambda spec, g: run_oracle(spec)], ids=["numpy", "oracle"]
)
def test_a_npy_replaced_after_validation_is_a_user_error(npy_spec, run):
    spec, g, path = npy_spec
    np.save(path, np.arange(8, dtype=np.int32))
    with pytest.raises(SpecError, match=r"now holds int32\[8\], not float64\[16\]"):
        run(spec, g)
    path.write_bytes(b"\x93NUMPY")
    with pytest.raises(SpecError, match="is not a readable .npy file"):
        run(spec, g)


def test_dfc_run_exits_2_when_a_npy_is_cut_short_after_validation(tmp_path, monkeypatch, capsys):
    import dfc.passes
    from dfc.cli import main

    np.save(tmp_path / "a.npy", np.arange(16.0))
    (tmp_path / "s.yaml").write_text(NPY_SPEC)
    real = dfc.passes.compile_spec

    def compile_then_truncate(*args, **kwargs):
        g = real(*args, **kwargs)
        (tmp_path / "a.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:-40])
        return g

    monkeypatch.setattr(dfc.passes, "compile_spec", compile_then_truncate)
    rc = main(["run", str(tmp_path / "s.yaml"), "--engine", "numpy", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"{tmp_path / 's.yaml'}:4:6: error: '{tmp_path / 'a.npy'}' has 88 bytes of data" in err
