""".npy inputs read on the TF engine by each tile's owner: a block tile reads only its band
of rows, a cyclic tile and an untiled array the whole data. Checked against NumPy on the
arrays the test wrote."""

from __future__ import annotations

import numpy as np
import pytest

from dfc.lang import load_spec
from dfc.passes import compile_spec
from dfc.runtime.tf_engine import run_tf

pytestmark = pytest.mark.slow

SPEC = """\
dfc: 1
name: npy_tiles
cluster: {worker: {tasks: 3}}
arrays:
  A: {shape: [12, 10], dtype: float64, tile: [4, 5], init: {file: A.npy}}
  R: {shape: [9, 4], dtype: int32, tile: [3, 4], init: {file: R.npy}}
  z: {shape: [12], dtype: complex128, tile: {cyclic: 3}, init: {file: z.npy}}
  s: {shape: [5], dtype: float32, init: {file: s.npy}}
  B: {shape: [12, 10], dtype: float64, tile: [4, 5], output: true}
  Q: {shape: [9, 4], dtype: int32, tile: [3, 4], output: true}
  w: {shape: [12], dtype: complex128, tile: {cyclic: 3}, output: true}
  t: {shape: [5], dtype: float32, output: true}
tasks:
  b: {for: {i: 3, j: 2}, compute: "2 * A[i, j]", out: "B[i, j]"}
  q: {for: {i: 3}, compute: "R[i, 0] + 1", out: "Q[i, 0]"}
  c: {for: {p: 3}, compute: "z[p] * 2", out: "w[p]"}
  u: {compute: "s - 1", out: t}
"""


def test_each_tile_of_a_npy_input_is_read_right(tmp_path):
    rng = np.random.default_rng(7)
    A = rng.standard_normal((12, 10))
    R = rng.integers(-100, 100, (9, 4)).astype(np.int32)
    z = rng.standard_normal(12) + 1j * rng.standard_normal(12)
    s = rng.standard_normal(5).astype(np.float32)
    for name, x in {"A": A, "R": R, "z": z, "s": s}.items():
        np.save(tmp_path / f"{name}.npy", x)
    (tmp_path / "spec.yaml").write_text(SPEC)
    got = run_tf(compile_spec(load_spec(str(tmp_path / "spec.yaml"))), timeout=120).arrays
    np.testing.assert_array_equal(got["B"], 2 * A)
    np.testing.assert_array_equal(got["Q"], R + 1)
    np.testing.assert_array_equal(got["w"], z * 2)
    np.testing.assert_array_equal(got["t"], s - np.float32(1))
