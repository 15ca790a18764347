"""Results come back through files written by their owners (tf.io.serialize_tensor): the
client reads the raw data after checking the TensorProto field that holds it."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf  # a hard dependency: a broken install fails here, not skips

from dfc.runtime.tf_engine import RunError, _tensor_file


def serialized(value) -> bytes:  # graph mode: other tests may have turned eager execution off
    with tf.Graph().as_default(), tf.compat.v1.Session() as s:
        return s.run(tf.io.serialize_tensor(tf.constant(value)))


@pytest.mark.parametrize(
    "dtype,shape",
    [("float32", (3, 4)), ("complex128", (5,)), ("float64", ()), ("float64", (70_000,)), ("float64", (400, 500))],
)  # a multi-byte length varint; past MAP_BYTES, mapped
def test_serialized_tensors_read_back_exactly(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    value = rng.standard_normal(shape).astype(dtype)
    if dtype.startswith("complex"):
        value = value + 1j * rng.standard_normal(shape)
    path = tmp_path / "t.tensor"
    path.write_bytes(serialized(value))
    got = _tensor_file(str(path), np.dtype(dtype), shape)
    assert got.dtype == value.dtype and got.shape == value.shape
    np.testing.assert_array_equal(got, value)


def test_a_file_of_another_shape_is_refused(tmp_path):
    path = tmp_path / "t.tensor"
    path.write_bytes(serialized(np.zeros(4)))
    with pytest.raises(RunError, match="not a float64"):
        _tensor_file(str(path), np.dtype("float64"), (3,))


@pytest.mark.slow
def test_without_room_for_the_files_results_come_through_the_session(monkeypatch):
    from pathlib import Path

    from dfc.ir.interp import run_numpy
    from dfc.lang import load_spec
    from dfc.passes import compile_spec
    from dfc.runtime import tf_engine

    monkeypatch.setattr(tf_engine, "_scratch", lambda need: None)
    root = Path(__file__).resolve().parents[2]
    g = compile_spec(load_spec(root / "specs" / "matmul.yaml", ["N=128", "T=64"]))
    got, want = tf_engine.run_tf(g, timeout=120), run_numpy(g)
    np.testing.assert_allclose(got.arrays["C"], want.arrays["C"], rtol=1e-5)


def test_a_truncated_file_is_refused(tmp_path):
    path = tmp_path / "t.tensor"
    path.write_bytes(serialized(np.zeros(4))[:10])
    with pytest.raises(RunError, match="not a float64"):
        _tensor_file(str(path), np.dtype("float64"), (4,))


def test_a_mapped_result_outlives_its_file_and_is_the_callers_to_change(tmp_path):
    from dfc.runtime.tf_engine import MAP_BYTES

    value = np.arange(MAP_BYTES // 8 + 3, dtype=np.float64)
    path = tmp_path / "t.tensor"
    data = serialized(value)
    path.write_bytes(data)
    got = _tensor_file(str(path), np.dtype("float64"), value.shape)
    assert type(got) is np.ndarray and got.flags.writeable
    path.unlink()
    np.testing.assert_array_equal(got, value)
    got[:] = -1  # a private copy: the file (were it kept) is not written
    path.write_bytes(data)
    np.testing.assert_array_equal(_tensor_file(str(path), np.dtype("float64"), value.shape), value)
