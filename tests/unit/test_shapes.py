from pathlib import Path

import pytest

from dfc.diagnostics import Pos
from dfc.lang import load_spec
from dfc.lang.expr import ExprError, parse_expr
from dfc.lang.shapes import Scope, infer
from dfc.ops import ItemsType, TensorType, functions

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.fixture(scope="module")
def cg():
    return load_spec(SPECS / "cg.yaml", ["N=64"])


def typ(text, scope, allow_free=False):
    return infer(parse_expr(text, Pos("t", 1, 1, 1), True, functions() + ("log2",)), scope, allow_free)


def test_tiles_rows_and_whole_arrays(cg):
    s = Scope(cg.arrays, cg.params, {"i": 2})
    assert typ("A[i, :]", s) == TensorType((32, 64), "float64")
    assert typ("A[i, :] @ p", s) == TensorType((32,), "float64")
    assert typ("A @ x", s) == TensorType((64,), "float64")
    assert typ("p[i]", s) == TensorType((32,), "float64")
    assert typ("dot(p[i], q[i])", s) == TensorType((), "float64")
    assert typ("norm(b - A @ x) / norm(b)", s) == TensorType((), "float64")


def test_free_index_only_inside_a_reduction(cg):
    s = Scope(cg.arrays, cg.params, {}, {"rr": TensorType((), "float64")})
    assert typ("rr / sum(dot(p[i], q[i]))", s) == TensorType((), "float64")
    with pytest.raises(ExprError) as info:
        typ("dot(p[i], q[i])", s)
    assert info.value.diagnostic.code == "free-index"


def test_scalars_adopt_tensor_dtype_but_tensors_must_match(cg):
    s = Scope(cg.arrays, cg.params, {"i": 2}, {"alpha": TensorType((), "float32")})
    assert typ("x[i] + alpha * p[i]", s).dtype == "float64"


@pytest.mark.parametrize(
    "text, code",
    [
        ("A[i]", "index-rank"),
        ("A[i, 0] @ A[i, 0]", "shape-mismatch"),
        ("p[j]", "free-index"),
        ("p[i + 1]", "out-of-range"),
        ("fft(p)", "dtype-mismatch"),
        ("dot(p)", "bad-call"),
        ("nrm(p)", None),
        ("N[i]", "expr-type"),
        ("rr", "undefined-name"),
        ("p < A", "shape-mismatch"),
        ("where(p, p, 0)", "shape-mismatch"),
        ("not p", "shape-mismatch"),
    ],
)
def test_errors(cg, text, code):
    s = Scope(cg.arrays, cg.params, {"i": 2})
    with pytest.raises(ExprError) as info:
        typ(text, s)
    if code:
        assert info.value.diagnostic.code == code


def test_comparisons_of_tiles_are_masks_and_where_chooses(cg):
    s = Scope(cg.arrays, cg.params, {"i": 2})
    assert typ("p[i] < 1", s) == TensorType((32,), "bool")
    assert typ("where(p[i] < 1, p[i], 0)", s) == TensorType((32,), "float64")
    assert typ("where(p[i] < 1, 1, 0)", s) == TensorType((32,), "float64")
    assert typ("p[i] // 2 + p[i] % 3", s) == TensorType((32,), "float64")


def test_fft_merge_needs_the_queue_items(cg):
    item = TensorType((16,), "complex128")
    s = Scope(cg.arrays, {"P": 4}, items={"spectra": ItemsType(item, 4)})
    assert typ("fft_merge(spectra, stride=P)", s) == TensorType((64,), "complex128")
    with pytest.raises(ExprError):
        typ("fft_merge(spectra, stride=2)", s)


def test_every_mistake_in_an_expression_first_occurrence_first(cg):
    s = Scope(cg.arrays, cg.params, {"i": 2})
    with pytest.raises(ExprError) as info:
        typ("foo * p[k] + p[i + 2] + q[k] * foo + bar", s)
    diags = info.value.diagnostics
    assert [(d.code, d.pos.col) for d in diags] == [
        ("undefined-name", 1),
        ("free-index", 9),
        ("out-of-range", 16),
        ("undefined-name", 38),
    ]
    assert info.value.diagnostic is diags[0]


def test_range_hints_are_right_for_offsets(cg):
    s = Scope(cg.arrays, cg.params, {"i": 2})
    for text, hint in [
        ("p[i + 1]", "make the `for:` extent of 'i' 1,"),
        ("p[i - 1]", "wrap it around"),
        ("p[N]", "tile indices run from 0 to 1"),
    ]:
        with pytest.raises(ExprError) as info:
            typ(text, s)
        assert hint in info.value.diagnostic.hint
        assert "make the `for:` extent 2" not in info.value.diagnostic.hint


def test_hints_write_0_along_dimensions_of_one_tile():
    from dfc.lang.shapes import tile_example

    assert tile_example("o", (4, 1), ["i"]) == "o[i, 0]"
    assert tile_example("o", (1, 4), ["k"]) == "o[0, k]"
    assert tile_example("A", (4, 4), ["i"]) == "A[i, j]"
