"""An op is one registry entry: registered in one place, it validates, plans and runs on
both engines (issue 13). The answers are checked against NumPy on whole arrays."""

from __future__ import annotations

import numpy as np
import pytest

from dfc import ops
from dfc.cost.model import CostModel
from dfc.cost.plan import make_plan
from dfc.cost.profile import Profile
from dfc.ir.devices import devices
from dfc.ir.interp import run_numpy
from dfc.lang import SpecError, load_spec_text
from dfc.passes import compile_spec
from dfc.runtime.tf_engine import run_tf

SPEC = """\
dfc: 1
name: newop
params: {N: 64, T: 16}
cluster: {worker: {tasks: 2}}
arrays:
  x: {shape: [N], dtype: float64, tile: [T], init: {file: x.npy}}
  y: {shape: [N], dtype: float64, tile: [T], output: true}
tasks:
  f: {for: {i: N/T}, compute: "hypot(expm1(x[i]), 2)", out: "y[i]"}
"""


def _elementwise(a, b):
    return ops.TensorType(a.shape or b.shape, ops.types.unify_dtype(a, b))


# the whole of adding two ops: a function of one argument and one of two, one entry each
NEW = [
    ops.Op(
        "expm1",
        "elementwise e**x - 1",
        lambda a: a,
        lambda args, out: out.size,
        np.expm1,
        lambda tf, x: tf.math.expm1(x),
    ),
    ops.Op(
        "hypot",
        "elementwise sqrt(a**2 + b**2)",
        _elementwise,
        lambda args, out: 3 * out.size,
        np.hypot,
        lambda tf, a, b: tf.sqrt(a * a + b * b),
        nargs=(2, 2),
        cast_inputs=True,
    ),
]


@pytest.fixture
def new_ops():
    for op in NEW:
        ops.register(op)
    yield
    for op in NEW:
        ops.unregister(op.name)


@pytest.fixture
def spec_text(tmp_path):
    x = np.random.default_rng(7).uniform(-2, 2, 64)
    np.save(tmp_path / "x.npy", x)
    return SPEC.encode(), str(tmp_path / "newop.yaml"), x


def test_without_the_entries_the_program_is_refused(spec_text):
    data, file, _ = spec_text
    with pytest.raises(SpecError) as info:
        load_spec_text(data, file)
    messages = [d.message for d in info.value.diagnostics]
    assert any("expm1" in m for m in messages) and any("hypot" in m for m in messages), messages


@pytest.mark.slow
def test_a_new_op_validates_plans_and_runs_on_both_engines(new_ops, spec_text):
    data, file, x = spec_text
    spec = load_spec_text(data, file)
    g = compile_spec(spec)
    plan = make_plan(g, CostModel(Profile(), devices(spec)))
    assert plan.schedule.makespan > 0 and any(c["flops"] for c in plan.task_classes())
    want = np.hypot(np.expm1(x), 2)
    np.testing.assert_allclose(run_numpy(g).arrays["y"], want, rtol=1e-12)
    np.testing.assert_allclose(run_tf(g, timeout=120).arrays["y"], want, rtol=1e-12)
