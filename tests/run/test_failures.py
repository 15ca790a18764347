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


@pytest.mark.parametrize(
    "asked, user, want", [("1", "", True), ("0", "", False), ("1", "glibc.malloc.hugetlb=0", False)]
)
def test_huge_pages_reach_the_servers_when_asked(monkeypatch, asked, user, want):
    """DFC_HUGE_PAGES=1: every server process starts with glibc's huge-page tunable; off
    by default, and a tunable the user set is theirs."""
    from dfc.lang import load_spec_text
    from dfc.runtime import cluster as cl

    monkeypatch.setenv("DFC_HUGE_PAGES", asked)
    if user:
        monkeypatch.setenv("GLIBC_TUNABLES", user)
    else:
        monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    spec = load_spec_text(b"dfc: 1\nname: pages\ncluster: {worker: {tasks: 2}}\n", "pages.yaml")
    with cl.LocalCluster(spec, start_timeout=60) as c:
        tunables = []
        for t in c.tasks:
            raw = Path(f"/proc/{t.process.pid}/environ").read_bytes().split(b"\0")
            env = dict(kv.decode().split("=", 1) for kv in raw if b"=" in kv)
            tunables.append(env.get("GLIBC_TUNABLES", ""))
    assert len(tunables) == 2
    assert all(("glibc.malloc.hugetlb=1" in t) == want for t in tunables), tunables
    if user:
        assert all(t == user for t in tunables)
