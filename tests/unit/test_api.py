"""The Python API (dfc/api.py): what the command line does, from Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dfc
from dfc.cli import main

ROOT = Path(__file__).resolve().parents[2]
CG = ROOT / "specs" / "cg.yaml"


def test_load_plan_and_run_on_the_numpy_engine():
    prog = dfc.load(CG, N=128, iterations=40)
    assert prog.params["N"] == 128 and prog.params["iterations"] == 40
    plan = prog.plan(strategy="round-robin")
    assert plan.strategy == "round-robin" and plan.schedule.makespan > 0
    report = prog.run(engine="numpy")
    assert report.verified and report.ok and report.iterations_run > 1
    assert report.rate[0] == "GFLOP/s" and report.rate[1] > 0
    # the answer itself, against plain NumPy on the whole arrays the run ended with
    a, b, x = (report.arrays[k] for k in ("A", "b", "x"))
    assert np.linalg.norm(a @ x - b) / np.linalg.norm(b) < 1e-6


def test_the_report_is_what_dfc_run_json_writes(tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", str(CG), "--set", "N=128", "--engine", "numpy", "--quiet", "--json", str(out)]) == 0
    cli = json.loads(out.read_text())
    api = dfc.load(CG, ["N=128"]).run(engine="numpy").to_json()
    for doc in (cli, api):
        doc.pop("seconds")
        doc["metrics"].pop("gflops")
    assert api == cli


def test_a_sweep_and_params_by_keyword():
    reports = dfc.load(CG, iterations=30).sweep("N", [64, 128], engine="oracle")
    assert [r.params["N"] for r in reports] == [64, 128] and all(r.verified for r in reports)
    assert dfc.load(CG, N="2**7").params["N"] == 128  # a keyword's text is an expression, as --set's


def test_mistakes_raise_spec_error_with_every_diagnostic(tmp_path):
    with pytest.raises(dfc.SpecError) as info:
        dfc.load(CG, N=100, P=3)  # 100 rows in 3 blocks, and more
    assert info.value.diagnostics and all(d.pos.file for d in info.value.diagnostics)
    with pytest.raises(ValueError, match="unknown engine"):
        dfc.load(CG, N=64).run(engine="gpu")


def test_importing_dfc_imports_nothing_heavy():
    code = (
        "import sys, dfc; heavy = {'tensorflow', 'networkx', 'numpy', 'yaml'} & set(sys.modules); "
        "assert not heavy, heavy; assert dfc.load and 'tensorflow' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
