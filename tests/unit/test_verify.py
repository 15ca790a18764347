"""The verifier's verdicts on results given by hand: one number on one side of an exact
equation stands for every element, NaN never passes, and a failure says how much failed."""

from __future__ import annotations

import numpy as np

from dfc.lang import load_spec_text
from dfc.runtime.verify import verify


def spec(check: str):
    return load_spec_text(
        (
            "dfc: 1\nname: v\narrays:\n  a: {shape: [8], dtype: float64, init: ones, output: true}\n"
            f"verify: {check}\n"
        ).encode(),
        "v.yaml",
    )


def test_an_exact_equation_with_a_number_checks_every_element():
    s = spec('{exact: "a == 4"}')
    assert verify(s, {"a": np.full(8, 4.0)}, {}).ok
    one_off = np.full(8, 4.0)
    one_off[3] = 5
    v = verify(s, {"a": one_off}, {})
    assert not v.ok and "1 of 8 elements differ" in v.detail
    with_nan = np.full(8, 4.0)
    with_nan[0] = np.nan
    assert not verify(s, {"a": with_nan}, {}).ok


def test_a_residual_that_is_nan_fails_and_says_so():
    s = spec('{residual: "sum(a)", below: 1.0e-6}')
    v = verify(s, {"a": np.full(8, np.nan)}, {})
    assert not v.ok and "not a number: the computation broke down" in v.detail and "(below" not in v.detail
    assert verify(s, {"a": np.zeros(8)}, {}).ok


def test_cg_with_tol_zero_stops_at_the_exact_solution_and_verifies(tmp_path):
    """`until: rr <= tol**2 * bb`: with tol=0, CG stops when the residual is exactly zero,
    where it used to go on, divide 0 by 0 and fail verification with NaN."""
    import json
    from pathlib import Path

    from dfc.cli import main

    out = tmp_path / "r.json"
    spec = str(Path(__file__).resolve().parents[2] / "specs" / "cg.yaml")
    assert (
        main(
            [
                "run",
                spec,
                "--set",
                "N=256",
                "--set",
                "tol=0",
                "--set",
                "iterations=2000",
                "--engine",
                "numpy",
                "--quiet",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    r = json.loads(out.read_text())
    assert r["verified"] and r["iterations_run"] < 2000
