"""The code stays clean (issue 13): ruff's lint rules and its formatter, and mypy's type
check, all configured in pyproject.toml, over the package (and, for ruff, the tests,
benchmarks and examples)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ["dfc", "tests", "benchmarks", "examples"]


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_ruff_finds_nothing():
    proc = _run("ruff", "check", "--no-cache", *TREES)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_code_is_formatted():
    proc = _run("ruff", "format", "--check", "--no-cache", *TREES)
    assert proc.returncode == 0, "run `ruff format`:\n" + proc.stdout + proc.stderr


def test_mypy_finds_nothing():
    proc = _run("mypy", "--no-incremental")  # files and settings: pyproject.toml
    assert proc.returncode == 0, proc.stdout + proc.stderr
