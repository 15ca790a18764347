"""Fixtures for tests that start TensorFlow servers: each such test fails if it leaves a
dfc server process or a listening port behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from procs import listening_ports, server_processes


@pytest.fixture(autouse=True)
def no_leftovers():
    procs, ports = server_processes(), listening_ports()
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left_procs = server_processes() - procs
        left_ports = listening_ports() - ports
        if not left_procs and not left_ports:
            return
        time.sleep(0.2)
    for pid in left_procs:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    pytest.fail(f"the test left dfc servers {sorted(left_procs)} or listening ports {sorted(left_ports)} behind")


@pytest.fixture(scope="session")
def cg_runs(tmp_path_factory) -> list[Path]:
    """Two uninterrupted runs of specs/cg.yaml with CG_SETS at once, each into its own --out
    folder (the reference of the fault and retry tests)."""
    import subprocess
    import sys

    from procs import CG_SETS

    root = Path(__file__).resolve().parents[2]
    outs = [tmp_path_factory.mktemp(f"cg-run{i}") for i in range(2)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dfc",
                "run",
                str(root / "specs" / "cg.yaml"),
                *[a for s in CG_SETS for a in ("--set", s)],
                "--out",
                str(out),
                "--quiet",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    return outs
