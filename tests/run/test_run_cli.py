"""`dfc run` on the TF engine from the command line: .npy inputs read by their owner,
--out, sweeps, the JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dfc.cli import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SPEC = """dfc: 1
name: fromfile
params: {N: 64, P: 2}
cluster: {worker: {tasks: P}}
arrays:
  A: {shape: [N, N], dtype: float64, tile: [N/P, N], init: {file: A.npy}}
  x: {shape: [N], dtype: float64, init: {file: x.npy}}
  y: {shape: [N], dtype: float64, tile: [N/P], output: true}
tasks:
  mv: {for: {i: P}, compute: "A[i, :] @ x", out: "y[i]"}
verify: {reference: "A @ x", rtol: 1e-12}
metrics: {flops: 2*N**2}
"""


def test_npy_inputs_out_dir_and_json(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "A.npy", rng.standard_normal((64, 64)))
    np.save(tmp_path / "x.npy", rng.standard_normal(64))
    (tmp_path / "spec.yaml").write_text(SPEC)
    out, report = tmp_path / "out", tmp_path / "r.json"
    assert main(["run", str(tmp_path / "spec.yaml"), "--out", str(out), "--json", str(report), "--quiet"]) == 0
    y = np.load(out / "y.npy")
    np.testing.assert_allclose(y, np.load(tmp_path / "A.npy") @ np.load(tmp_path / "x.npy"), rtol=1e-12)
    r = json.loads(report.read_text())
    assert r["engine"] == "tf" and r["verified"] and {"startup", "init", "compute", "verify"} <= set(r["seconds"])
    assert r["metrics"]["gflops"] > 0 and r["predicted_seconds"] > 0


def test_sweep_prints_a_table_and_reports_each_run(tmp_path, capsys):
    report = tmp_path / "sweep.json"
    assert (
        main(
            ["run", str(ROOT / "specs" / "stream.yaml"), "--sweep", "MB=1,2", "--set", "reps=2", "--json", str(report)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "GB/s" in out and out.count("verified") >= 2
    r = json.loads(report.read_text())
    assert r["sweep"] == "MB" and [run["params"]["MB"] for run in r["runs"]] == [1, 2]
    assert all(run["metrics"]["gbps"] > 0 for run in r["runs"])


def test_bad_sweep_is_a_usage_error(capsys):
    assert main(["run", str(ROOT / "specs" / "stream.yaml"), "--sweep", "MBB=1,2"]) == 2
    assert "params: MB, reps" in capsys.readouterr().err


def test_set_pins_a_swept_param(tmp_path):
    report = tmp_path / "one.json"
    assert (
        main(
            [
                "run",
                str(ROOT / "specs" / "stream.yaml"),
                "--set",
                "MB=1",
                "--set",
                "reps=2",
                "--json",
                str(report),
                "--quiet",
            ]
        )
        == 0
    )
    r = json.loads(report.read_text())
    assert "sweep" not in r and r["params"]["MB"] == 1


def test_trace_writes_a_chrome_trace_and_summarises_each_task(tmp_path, capsys):
    trace, report = tmp_path / "t.json", tmp_path / "r.json"
    assert (
        main(
            [
                "run",
                str(ROOT / "specs" / "stream.yaml"),
                "--set",
                "MB=2",
                "--set",
                "reps=3",
                "--trace",
                str(trace),
                "--json",
                str(report),
            ]
        )
        == 0
    )
    events = json.loads(trace.read_text())["traceEvents"]
    processes = {e["args"]["name"] for e in events if e["ph"] == "M"}
    assert any("/job:ps/" in p for p in processes) and any("/job:worker/" in p for p in processes)
    rows = json.loads(report.read_text())["trace"]
    ps = next(r for r in rows if "/job:ps/" in r["device"])
    assert ps["op_s"] > 0 and any(t["op"] == "RecvTensor" for t in ps["top"])  # the vector crossed
    # the predicted schedule beside it: a process per device and link, and each device's
    # predicted busy time beside its measured op time
    predicted = {p for p in processes if p.startswith("predicted: ")}
    assert "predicted: /job:ps/task:0/device:CPU:0" in predicted and any("->" in p for p in predicted)
    assert ps["predicted_busy_s"] > 0
    out = capsys.readouterr().out
    assert "trace (compute phase" in out and "(predicted busy" in out


@pytest.mark.parametrize(
    "extra,why", [(["--engine", "numpy"], "numpy engine has no trace"), ([], "pin the swept param")]
)
def test_trace_refuses_what_it_cannot_trace(tmp_path, capsys, extra, why):
    assert main(["run", str(ROOT / "specs" / "stream.yaml"), "--trace", str(tmp_path / "t.json"), *extra]) == 2
    assert why in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--trace", "--json"])
def test_an_output_that_cannot_be_written_is_refused_before_the_run(tmp_path, capsys, flag):
    missing = tmp_path / "no" / "such" / "out.json"
    assert main(["run", str(ROOT / "specs" / "stream.yaml"), "--set", "MB=1", flag, str(missing)]) == 2
    assert f"{flag} {missing}: no folder" in capsys.readouterr().err
    assert main(["run", str(ROOT / "specs" / "stream.yaml"), "--set", "MB=1", flag, str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_the_servers_logs_are_removed_after_a_successful_run(tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert main(["run", str(ROOT / "specs" / "stream.yaml"), "--set", "MB=1", "--set", "reps=2", "--quiet"]) == 0
    assert not list(scratch.glob("dfc-cluster-*"))


def test_an_output_scalar_is_printed_reported_written_and_verified(tmp_path, capsys):
    """specs/power.yaml on the TF engine: the eigenvalue `lam` (an output scalar) is printed,
    under `outputs` in the JSON, a 0-d lam.npy in --out, equal to the NumPy engine's and the
    oracle's; it is the dominant eigenvalue of A (NumPy's eigvalsh on the whole matrix)."""
    from dfc.lang import load_spec
    from dfc.oracle import run_oracle

    sets = ["N=256", "iterations=200"]
    out, report = tmp_path / "out", tmp_path / "r.json"
    args = ["run", str(ROOT / "specs" / "power.yaml"), *[a for s in sets for a in ("--set", s)]]
    assert main([*args, "--out", str(out), "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    r = json.loads(report.read_text())
    lam = np.load(out / "lam.npy")
    assert lam.shape == () and lam.dtype == np.float64 and float(lam) == r["outputs"]["lam"]
    assert f"lam = {r['outputs']['lam']:.10g}" in printed
    assert sorted(p.name for p in out.iterdir()) == ["lam.npy", "v.npy"]
    meaning = run_oracle(load_spec(ROOT / "specs" / "power.yaml", sets))
    assert r["iterations_run"] == meaning.iterations_run < 200
    a = meaning.arrays["A"]
    assert float(lam) == pytest.approx(np.linalg.eigvalsh(a)[-1], rel=1e-10)
    assert r["verified"] is True
    assert main([*args, "--engine", "numpy", "--json", str(report), "--quiet"]) == 0
    assert json.loads(report.read_text())["outputs"]["lam"] == pytest.approx(float(lam), rel=1e-12)
