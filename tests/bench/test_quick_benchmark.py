"""The quick benchmark set runs end to end and every dfc run verifies (a smoke test, with
--smoke: one run of each figure, so it checks that the harness works, not speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_set_runs_and_verifies(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--set", "quick", "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (result,) = tmp_path.glob("quick-*.json")
    data = json.loads(result.read_text())
    assert result.with_suffix(".png").stat().st_size > 0
    benches = {r["benchmark"] for r in data["rows"]}
    assert benches == {"matmul", "cg", "fft", "cholesky", "stream"}
    assert all(r["verified"] and r["dfc"] > 0 and r["baseline_value"] > 0 for r in data["rows"])
    assert {
        "dask threads",
        "dask 2 processes",
        "numpy",
        "scipy.fft (all cores)",
        "raw loopback socket",
        "bare TF assign_add",
    } <= {r["baseline"] for r in data["rows"]}
    assert data["peak_blas_gflops"] > 0 and data["memory_copy_gbps"] > 0
    assert data["machine"]["cores"] and data["machine"]["tensorflow"]
    assert data["smoke"] and data["repeats"] == 1  # one run each: the figures are not medians
    (scale,) = data["compiler_scaling"]
    assert scale["tile_tasks"] >= 1000 and len(scale["seconds_all"]) == data["repeats"]
    assert scale["seconds"] == sorted(scale["seconds_all"])[len(scale["seconds_all"]) // 2]
    fixed = data["fixed_costs"]
    assert {"trivial_run_s", "tensorflow_import_s", "cg_default_run_s", "cg_default_compute_s"} <= set(fixed)
    assert 0 < fixed["cg_default_compute_s"] < fixed["cg_default_run_s"]
