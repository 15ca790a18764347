"""The differential fuzzer: generated programs through the NumPy engine against the
oracle, which shares nothing with the compiler (tests/fuzz.py writes the programs).

CI runs ``DFC_FUZZ_EXAMPLES`` examples (default 200, a few seconds); a longer run:

    DFC_FUZZ_EXAMPLES=5000 python -m pytest tests/unit/test_fuzz_oracle.py -q

A failure prints the shrunk program; hypothesis keeps it in its database and tries it
first next time."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dfc.diagnostics import SpecError  # noqa: E402
from dfc.ir.interp import run_numpy  # noqa: E402
from dfc.lang import load_spec_text  # noqa: E402
from dfc.oracle import OracleError, run_oracle  # noqa: E402
from dfc.passes import compile_spec  # noqa: E402

from fuzz import disagreements, finite, program  # noqa: E402

EXAMPLES = int(os.environ.get("DFC_FUZZ_EXAMPLES", "200"))


def spec_of(text: str):
    try:
        return load_spec_text(text.encode(), "fuzz.yaml")
    except SpecError:  # the generator's rare invalid program (a cycle through a scalar): refused, fine
        return None


def check(text: str) -> None:
    note(text)
    spec = spec_of(text)
    assume(spec is not None)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            want = run_oracle(spec)
        except OracleError:
            assume(False)
        assume(finite(want))
        got = run_numpy(compile_spec(spec))
    assert not disagreements(want, got), disagreements(want, got)


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(st.data())
def test_generated_programs_agree_with_the_oracle(data):
    check(program(lambda options: data.draw(st.sampled_from(list(options)))))
