"""Results come back through files written by their owners (tf.io.serialize_tensor): the
client reads the raw data after checking the TensorProto field that holds it."""

from __future__ import annotations

import numpy as np
import pytest

from dfc.runtime.tf_engine import RunError, _tensor_file

tf = pytest.importorskip("tensorflow")


def serialized(value) -> bytes:  # graph mode: other tests may have turned eager execution off
    with tf.Graph().as_default(), tf.compat.v1.Session() as s:
        return s.run(tf.io.serialize_tensor(tf.constant(value)))


@pytest.mark.parametrize("dtype,shape", [("float32", (3, 4)), ("complex128", (5,)), ("float64", ()),
                                         ("float64", (70_000,))])  # a multi-byte length varint
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
