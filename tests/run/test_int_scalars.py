"""Integer scalars and integer arguments of the float functions, on both engines.

The bugs these guard against: an int64 scalar (``{init: 0, dtype: int64}``) crashed the TF
engine with a traceback (``Expected int64, but got 0.0``: a scalar's variable starts from
the constant 0.0, which TF refused to make an int64 of), and floor, ceil, sqrt, log2 and
norm of an integer crashed it too (TF has them for floats only), while the NumPy engine
ran both; the oracle left those of an integer in float64. Each case is checked against
plain NumPy written out here by hand: a value computed by an op is converted to the op's
dtype (truncated, as NumPy's ``astype`` does)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dfc.ir.interp import run_numpy
from dfc.lang import load_spec
from dfc.oracle import run_oracle
from dfc.passes import compile_spec

N, P = 8, 2
A = np.array([0, 1, 3, 4, 9, 15, 16, 50])  # read from a .npy file: known without any dfc code
INITS = {"0": 0, '"N / 4"': 2, '"max(max(a[i])) - 47"': 3}  # k's `init:` and its value


def write_spec(folder, dtype: str, init: str):
    np.save(folder / "a.npy", A.astype(dtype))
    (folder / "ints.yaml").write_text(f"""
dfc: 1
name: ints
params: {{N: {N}, P: {P}}}
cluster: {{worker: {{tasks: {P}}}}}
arrays:
  a: {{shape: [N], dtype: {dtype}, tile: [N/P], init: {{file: a.npy}}}}
  b: {{shape: [N], dtype: {dtype}, tile: [N/P], init: zeros, output: true}}
scalars:
  k: {{init: {init}, dtype: {dtype}}}
  m: {{init: 7, dtype: {dtype}}}
loop:
  max: 10
  until: k >= 5
  steps:
    - {{let: m, value: "floor(m) + ceil(m) + sqrt(m * 4) + log2(m + 1)"}}
    - {{for: {{i: P}}, update: {{"b[i]": "b[i] * k + sqrt(a[i]) + norm(a[i]) + m"}}}}
    - {{let: k, value: k + 1}}
""")
    return folder / "ints.yaml"


def by_hand(dtype: str, k: int):
    """b, k, m and the iterations run, by the loop's definition."""
    b, m = np.zeros(N, dtype), 7
    norms = np.repeat([math.trunc(np.linalg.norm(t)) for t in np.split(A.astype(float), P)], N // P)
    for iteration in range(1, 11):
        m = m + m + math.trunc(math.sqrt(m * 4)) + math.trunc(math.log2(m + 1))
        b = (b * k + np.trunc(np.sqrt(A)).astype(dtype) + norms + m).astype(dtype)
        k += 1
        if k >= 5:
            break
    return b, k, m, iteration


def check(result, dtype: str, k0: int) -> None:
    b, k, m, iterations = by_hand(dtype, k0)
    assert result.iterations_run == iterations
    assert result.arrays["b"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(result.arrays["b"], b)
    assert (result.scalars["k"], result.scalars["m"]) == (k, m)


@pytest.mark.parametrize("dtype", ["int64", "int32"])
@pytest.mark.parametrize("init", sorted(INITS))
def test_integer_scalars_on_the_numpy_engine_and_the_oracle(tmp_path, dtype, init):
    spec = load_spec(write_spec(tmp_path, dtype, init))
    check(run_numpy(compile_spec(spec)), dtype, INITS[init])
    check(run_oracle(spec), dtype, INITS[init])


@pytest.mark.slow
def test_integer_scalars_on_the_tf_engine(tmp_path):
    from dfc.runtime.tf_engine import run_tf

    g = compile_spec(load_spec(write_spec(tmp_path, "int64", "0")))
    check(run_tf(g, timeout=120), "int64", 0)
