"""The local cluster's server factory: ``python -m dfc.runtime.server --zygote``.

Each server of the local cluster used to be a Python process of its own that imported
TensorFlow (seconds each, and several of them share the machine's cores with the client's
own import). The zygote imports TensorFlow once, while the client compiles and imports its
own, then forks one server per task: a fork is milliseconds, and each server is still a
process of its own (killed, stopped and named one by one, as before). The zygote creates no
session, server or device before it forks, so a child starts from TensorFlow's state right
after its import (docs/running.md, "How the local cluster starts").

Protocol, one line each way:

- client -> zygote, on its standard input: a JSON object per server
  ``{"job", "task", "intra", "inter", "log", "ready"}`` (``log``: the file its standard
  error goes to; ``ready``: a FIFO it writes ``ready`` to once it listens);
- zygote -> client, on its standard output: ``pid JOB:TASK PID`` once forked,
  ``exit PID CODE`` when a server ends (CODE as ``Popen.returncode``: -N for signal N).

The zygote dies with its client (``PR_SET_PDEATHSIG``), each server with the zygote; when
its standard input closes it kills its servers and exits.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import IO, Any

from .watch import exit_reason


def main() -> None:
    """The zygote's loop: fork a server per request, report each one's pid and its end;
    exits when its standard input closes."""
    from . import server

    server.import_tensorflow()
    children: dict[int, str] = {}
    out = sys.stdout
    stdin = sys.stdin.buffer
    pending = b""
    woken, wake = os.pipe()  # a server's end wakes the loop at once (SIGCHLD)
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        _reap(children, out)
        ready, _, _ = select.select([stdin, woken], [], [], 1.0)
        if woken in ready:
            os.read(woken, 4096)
        if stdin not in ready:
            continue
        chunk = os.read(stdin.fileno(), 65536)
        if not chunk:  # the client is gone or done: so are its servers
            for pid in children:
                _kill(pid)
            os._exit(0)  # at once: the interpreter's teardown with TensorFlow loaded takes a second
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            ask = json.loads(line)
            pid = os.fork()
            if pid == 0:  # the server
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(woken)
                os.close(wake)
                _child(ask)  # never returns
            children[pid] = f"{ask['job']}:{ask['task']}"
            print(f"pid {children[pid]} {pid}", file=out, flush=True)


def _child(ask: dict) -> None:
    code = 1
    try:
        from . import server
        from .cluster import _die_with_parent

        os.setsid()  # a process group of its own: stop() signals the group, as before
        _die_with_parent()
        server.name_process(ask["job"], ask["task"])
        log = os.open(ask["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log, 2)
        code = server.serve(
            json.loads(os.environ[server.CLUSTER_ENV]),
            ask["job"],
            ask["task"],
            ask["intra"],
            ask["inter"],
            ask["ready"],
        )
    except BaseException as e:  # noqa: BLE001 - a child must never return into the zygote's loop
        try:
            print(f"dfc server: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        finally:
            os._exit(1)
    os._exit(code)


def _reap(children: dict[int, str], out: IO[str]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.pop(pid, None)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(f"exit {pid} {code}", file=out, flush=True)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Zygote:
    """The client's end: starts the zygote, asks it for servers, learns when they end."""

    def __init__(self, env: dict[str, str]):
        from .cluster import _die_with_parent

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dfc.runtime.server", "--zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.pids: dict[str, int] = {}
        self.codes: dict[int, int] = {}
        self._buffer = b""

    def fork(self, job: str, task: int, intra: int, inter: int, log: str, ready: str) -> Forked:
        ask = {"job": job, "task": task, "intra": intra, "inter": inter, "log": log, "ready": ready}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(ask).encode() + b"\n")
        self.proc.stdin.flush()
        return Forked(self, f"{job}:{task}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def read(self) -> None:
        """Take in what the zygote said so far (never blocks)."""
        assert self.proc.stdout is not None
        while not self.proc.stdout.closed:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._buffer += chunk
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                word, a, b = line.decode().split()
                if word == "pid":
                    self.pids[a] = int(b)
                else:
                    self.codes[int(a)] = int(b)

    def close(self, grace: float = 2.0) -> None:
        """End the zygote (it kills any server still alive)."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.read()  # the last servers' ends
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Forked:
    """A server the zygote forked, seen as a ``subprocess.Popen`` (pid, poll, wait,
    returncode, and ``stdout``: its ready FIFO, opened by the cluster)."""

    def __init__(self, zygote: Zygote, label: str):
        self.zygote, self.label = zygote, label
        self.stdout: Any = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        """Its process id, once the zygote has forked it (0 before)."""
        self.zygote.read()
        return self.zygote.pids.get(self.label, 0)

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        pid = self.pid
        if pid and pid in self.zygote.codes:
            self.returncode = self.zygote.codes[pid]
        elif not self.zygote.alive():  # its servers die with it (PR_SET_PDEATHSIG)
            from .cluster import _state

            if not pid or _state(pid) in ("", "Z"):
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.label, timeout or 0.0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def __repr__(self) -> str:
        return f"<server {self.label} pid {self.pid} {exit_reason(self.returncode) or 'running'}>"
