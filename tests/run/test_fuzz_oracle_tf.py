"""A sample of the fuzzer's programs (tests/fuzz.py) through the TensorFlow engine on a
real local cluster, against the oracle. Each seed below was, before its fix, one of:
a reduction over a one-tile grid reduced along a missing axis, ints initialised from a
float, complex scalars read back with float(), two keys of one queue sharing a TF queue,
and two writes of one tile in one iteration racing (TF kept no control dependency on the
assign). The seeds cover every dtype."""

from __future__ import annotations

import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dfc.lang import load_spec_text  # noqa: E402
from dfc.oracle import run_oracle  # noqa: E402
from dfc.passes import compile_spec  # noqa: E402
from dfc.runtime.tf_engine import run_tf  # noqa: E402

from fuzz import disagreements, program  # noqa: E402

pytestmark = pytest.mark.slow
SEEDS = {0: "complex128", 2: "float32", 4: "float64", 5: "int32", 13: "complex64", 19: "int64"}


DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("seed", sorted(SEEDS), ids=[f"{s}-{d}" for s, d in sorted(SEEDS.items())])
def test_generated_programs_on_tf_agree_with_the_oracle(seed):
    text = (DATA / f"fuzz{seed}.yaml").read_text()  # saved: a change to the generator keeps them
    spec = load_spec_text(text.encode(), f"fuzz{seed}.yaml")
    assert spec.arrays["u"].dtype == SEEDS[seed]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        want = run_oracle(spec)
    got = run_tf(compile_spec(spec), timeout=120)
    assert not disagreements(want, got), (disagreements(want, got), text)


@pytest.mark.parametrize("seed", [101, 202])
def test_fresh_generated_programs_on_tf_agree_with_the_oracle(seed):
    text = program(random.Random(seed).choice)
    spec = load_spec_text(text.encode(), f"fuzz{seed}.yaml")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        want = run_oracle(spec)
    got = run_tf(compile_spec(spec), timeout=120)
    assert not disagreements(want, got), (disagreements(want, got), text)


def test_the_issue_case_on_tf_gives_the_true_ratio():
    root = Path(__file__).resolve().parents[1]
    spec = load_spec_text((root / "unit" / "data" / "ratio.yaml").read_bytes(), "ratio.yaml")
    got = run_tf(compile_spec(spec), timeout=120)
    a, b = got.arrays["a"], got.arrays["b"]
    np.testing.assert_allclose(got.arrays["y"], np.full(8, a @ a / (b @ b)), rtol=1e-14)
    assert a @ a / (b @ b) == pytest.approx(1.0229, abs=5e-5)
    assert not disagreements(run_oracle(spec), got)


def test_a_number_takes_the_dtype_it_meets_on_tf():
    text = b"""dfc: 1
name: t
params: {N: 6, P: 3}
cluster: {worker: {tasks: 2}}
arrays:
  x: {shape: [N], dtype: int64, tile: [N/P], init: {constant: 3}}
  y: {shape: [N], dtype: int64, tile: [N/P], output: true}
tasks:
  ints: {for: {i: P}, compute: "2.5 * x[i] + x[i]", out: "y[i]"}
"""
    spec = load_spec_text(text, "t.yaml")
    got = run_tf(compile_spec(spec), timeout=120)
    np.testing.assert_array_equal(got.arrays["y"], np.full(6, 9))
    assert not disagreements(run_oracle(spec), got)
