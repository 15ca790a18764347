"""A server killed mid-run: dfc exits 1 within the timeout, names the task, and leaves no
process behind. Ctrl-C stops every server too."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from procs import server_processes

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def start(*extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dfc", "run", str(ROOT / "specs" / "stream.yaml"),
                             "--set", "MB=8", "--set", "reps=100000", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_iterations(proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "iteration" in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"dfc exited early: {proc.returncode}")
    raise AssertionError("dfc never started iterating")


def server_of(job: str, task: int) -> int:
    for pid in server_processes():
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"--job" in cmd and cmd[cmd.index(b"--job") + 1] == job.encode() and cmd[cmd.index(b"--task") + 1] == str(task).encode():
            return pid
    raise AssertionError(f"no server for {job}:{task}")


def test_a_dead_worker_is_an_error_naming_the_task():
    proc = start("--timeout", "8")
    try:
        wait_for_iterations(proc)
        os.kill(server_of("ps", 0), signal.SIGKILL)
        t = time.monotonic()
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - t < 30  # within the timeout, plus teardown
        assert proc.returncode == 1, err
        assert "ps:0" in err and "Traceback" not in err
        logs = re.search(r"the servers' logs are kept in (\S+)", err)  # kept after a failure, and named
        assert logs and (Path(logs[1]) / "worker-0.log").is_file(), err
        shutil.rmtree(logs[1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_stops_every_server():
    proc = start()
    try:
        wait_for_iterations(proc)
        assert server_processes()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        assert proc.returncode == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_port_taken_before_the_server_binds_it_is_retried(monkeypatch):
    import socket

    from dfc.runtime import cluster as cl
    from dfc.spec import load_spec_text

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
