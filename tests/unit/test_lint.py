"""The code stays lint-clean (issue 13): ruff with the rules of pyproject.toml (unused and
undefined names, syntax errors, import order) over the package, tests, benchmarks and
examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "dfc", "tests", "benchmarks",
                           "examples"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
