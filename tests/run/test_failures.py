"""A port taken between choosing it and the server binding it. (Killed servers, Ctrl-C and
the other faults are tests/run/test_faults.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def start(*extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dfc",
            "run",
            str(ROOT / "specs" / "stream.yaml"),
            "--set",
            "MB=8",
            "--set",
            "reps=100000",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_iterations(proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "iteration" in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"dfc exited early: {proc.returncode}")
    raise AssertionError("dfc never started iterating")


def test_a_port_taken_before_the_server_binds_it_is_retried(monkeypatch):
    import socket

    from dfc.lang import load_spec_text
    from dfc.runtime import cluster as cl

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    real, calls = cl.free_ports, []

    def first_one_taken(n):
        calls.append(n)
        return [taken, *real(n - 1)] if len(calls) == 1 else real(n)

    monkeypatch.setattr(cl, "free_ports", first_one_taken)
    spec = load_spec_text(b"dfc: 1\nname: ports\ncluster: {worker: {tasks: 2}}\n", "ports.yaml")
    try:
        with cl.LocalCluster(spec, start_timeout=60) as c:
            assert len(calls) == 2 and all(t.process.poll() is None for t in c.tasks)
            assert str(taken) not in c.target
    finally:
        blocker.close()
