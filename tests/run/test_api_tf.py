"""The Python API on the TF engine: the README's one-liner and examples/sweep_cg.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_one_line_from_python_runs_a_spec_on_a_private_local_cluster():
    code = "import dfc; r = dfc.load('specs/cg.yaml', N=256).run(); print(r.verified, r.engine)"
    proc = subprocess.run(
        [sys.executable, "-m", "dfc.runtime.private", sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "tf"], proc.stdout
    assert "not private" not in proc.stderr  # the runner gave it a network of its own


def test_the_sweep_example_runs_and_verifies(tmp_path):
    out, picture = tmp_path / "reports.json", tmp_path / "cg.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dfc.runtime.private",
            sys.executable,
            "examples/sweep_cg.py",
            "--sizes",
            "128,256",
            "--json",
            str(out),
            "--plot",
            str(picture),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    reports = json.loads(out.read_text())
    assert [r["params"]["N"] for r in reports] == [128, 256]
    assert all(r["verified"] and r["engine"] == "tf" for r in reports)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
