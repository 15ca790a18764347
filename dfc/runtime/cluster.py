"""The local cluster: one TensorFlow server process per task of the spec's cluster, on
127.0.0.1 with free ports. Started with a deadline, stopped on success, on failure and on
Ctrl-C (a context manager, an ``atexit`` hook and a SIGTERM handler), and each server
also exits by itself when ``dfc`` dies.

Threads: each task gets ``intra = max(1, cores // tasks)`` threads inside ops and 2
between ops unless the spec's ``threads:`` says otherwise, so the processes share the
machine's cores without oversubscribing them (seed 001)."""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from ..ir.facts import Facts
from ..lang.model import Spec
from .gpus import GPUError, assign, machine_gpus, server_env
from .private import state
from .server import CLUSTER_ENV
from .watch import exit_reason
from .zygote import Forked, Zygote


class ClusterError(Exception):
    """A task failed to start, or died."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: all sockets are held open until every port is chosen.
    (A port can still be taken between this and the server binding it: ``start`` retries.)"""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


BIND_ATTEMPTS = 3


_warned: list[str] = []


def warn_if_shared() -> None:
    """Say once per process when the local cluster runs in the shared network."""
    private, why = state()
    if not private and not _warned:
        _warned.append(why)
        print(
            f"dfc: warning: the local cluster is not private ({why}): while it runs, any process "
            "that can reach this machine can connect to its TensorFlow servers and run ops as you "
            '(docs/running.md, "Who can reach the servers")',
            file=sys.stderr,
        )


@dataclass
class Task:
    job: str
    index: int
    address: str
    process: subprocess.Popen | Forked | None = None
    log: str = ""

    @property
    def label(self) -> str:
        return f"{self.job}:{self.index}"

    @property
    def started(self) -> Any:
        """Its server's process (a ``subprocess.Popen`` with a pipe on its standard output)."""
        assert self.process is not None and self.process.stdout is not None, f"{self.label} was not started"
        return self.process

    def log_tail(self, lines: int = 8) -> str:
        try:
            with open(self.log, errors="replace") as f:
                tail = [ln for ln in f.read().splitlines() if ln.strip()][-lines:]
            return "\n".join("    " + ln for ln in tail)
        except OSError:
            return ""


#: glibc's tunable that backs malloc's large blocks with transparent huge pages
#: (madvise; glibc 2.35 and later, ignored by older ones)
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"


def huge_pages(environ) -> dict[str, str]:
    """With ``DFC_HUGE_PAGES=1``, the environment that has the servers' large buffers
    (tensors received, results) faulted in 2 MiB pages instead of 4 KiB ones. Off by
    default: here it made FFT 2^24's compute 1.6 s -> 1.0 s but the initialisation of
    every spec slower (CG: 0.49 s -> 0.98 s; docs/running.md, "Measurements behind the
    choices"). A ``glibc.malloc.hugetlb`` the user set is kept."""
    have = environ.get("GLIBC_TUNABLES", "")
    if environ.get("DFC_HUGE_PAGES", "0").lower() not in ("1", "on", "yes", "true") or "glibc.malloc.hugetlb" in have:
        return {}
    return {"GLIBC_TUNABLES": f"{have}:{HUGE_PAGES_TUNABLE}" if have else HUGE_PAGES_TUNABLE}


@dataclass
class LocalCluster:
    spec: Spec | Facts  # what it reads is the cluster: its jobs, their tasks, devices and threads
    start_timeout: float = 60.0
    tasks: list[Task] = field(default_factory=list)
    logdir: str = ""  # the servers' logs: removed after a successful run, kept after a failed one
    _zygote: Zygote | None = field(default=None, repr=False)

    @property
    def cluster_dict(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for t in self.tasks:
            out.setdefault(t.job, []).append(t.address)
        return out

    @property
    def target(self) -> str:
        first = next((t for t in self.tasks if t.job == "worker"), self.tasks[0])
        return f"grpc://{first.address}"

    def threads(self, job) -> tuple[int, int]:
        total = sum(j.tasks for j in self.spec.cluster.values())
        cores = os.cpu_count() or 1
        return job.threads.intra or max(1, cores // total), job.threads.inter or 2

    def start(self) -> LocalCluster:
        self.spawn()
        return self.wait()

    def wait(self) -> LocalCluster:
        """Wait until every server is ready; if one could not bind its port (taken in the
        meantime by another process), start the cluster again on fresh ports."""
        for attempt in range(BIND_ATTEMPTS):
            try:
                return self._wait()
            except ClusterError as e:
                if "Could not start gRPC server" not in str(e) or attempt == BIND_ATTEMPTS - 1:
                    raise
                self.spawn()
        raise AssertionError("unreachable")

    def spawn(self) -> LocalCluster:
        """Start every server process; returns at once (``wait`` waits for them)."""
        slots = [(j.name, i) for j in self.spec.cluster.values() for i in range(j.tasks)]
        gpu_slots = [s for s in slots if self.spec.cluster[s[0]].device == "gpu"]
        try:  # before anything starts: a machine without the GPUs the spec asks for
            turns = dict(
                zip(gpu_slots, assign(machine_gpus(os.environ), [self.spec.cluster[job].gpus for job, _ in gpu_slots]))
            )
        except GPUError as e:
            raise ClusterError(str(e)) from None
        self.tasks = [Task(job, i, f"127.0.0.1:{port}") for (job, i), port in zip(slots, free_ports(len(slots)))]
        self.logdir = self.logdir or tempfile.mkdtemp(prefix="dfc-cluster-")
        warn_if_shared()
        # the addresses go through the environment: ps shows a command line to every user
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            "PYTHONUNBUFFERED": "1",
            CLUSTER_ENV: json.dumps(self.cluster_dict),
            **huge_pages(os.environ),
        }
        _LIVE.append(self)
        # CPU tasks are forked by one process that imported TensorFlow once; a GPU task is a
        # process of its own, started fresh (CUDA is never carried across a fork)
        try:
            forked = [t for t in self.tasks if (t.job, t.index) not in turns]
            zygote = self._zygote = Zygote({**env, **server_env(None, False)}) if forked else None
            for t in self.tasks:
                t.log = os.path.join(self.logdir, f"{t.job}-{t.index}.log")
                threads = self.threads(self.spec.cluster[t.job])
                if zygote is not None and t in forked:
                    self._fork(t, zygote, *threads)
                else:  # each GPU task sees its own GPUs, as GPU:0..
                    self._popen(t, {**env, **server_env(*turns[(t.job, t.index)])}, *threads)
        except BaseException:
            self.stop()
            raise
        self._started = time.monotonic()
        return self

    def _fork(self, t: Task, zygote: Zygote, intra: int, inter: int) -> None:
        ready = os.path.join(self.logdir, f"{t.job}-{t.index}.ready")
        if os.path.exists(ready):  # an earlier start's (a port was taken: started again)
            os.unlink(ready)
        os.mkfifo(ready, 0o600)
        t.process = zygote.fork(t.job, t.index, intra, inter, t.log, ready)
        # opened to read and write: select() then waits for the line, not for a writer
        t.process.stdout = os.fdopen(os.open(ready, os.O_RDWR), "rb")

    def _popen(self, t: Task, env: dict[str, str], intra: int, inter: int) -> None:
        with open(t.log, "w") as log:
            t.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dfc.runtime.server",
                    "--job",
                    t.job,
                    "--task",
                    str(t.index),
                    "--intra",
                    str(intra),
                    "--inter",
                    str(inter),
                    "--watch-parent",
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def _wait(self) -> LocalCluster:
        """Wait until every server says it is ready (or fail, stopping them all)."""
        deadline = self._started + self.start_timeout
        waiting = {t.started.stdout.fileno(): t for t in self.tasks}
        try:
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    names = ", ".join(t.label for t in waiting.values())
                    raise ClusterError(f"{names} did not start within {self.start_timeout:.0f} s")
                ready, _, _ = select.select(list(waiting), [], [], min(left, 0.5))
                for fd in ready:
                    t = waiting[fd]
                    line = t.started.stdout.readline()
                    if line.strip() == b"ready":
                        del waiting[fd]
                    elif not line:
                        t.started.wait(timeout=5)
                        raise ClusterError(
                            f"task {t.label} exited while starting ({exit_reason(t.started.returncode)})"
                            + (f":\n{t.log_tail()}" if t.log_tail() else "")
                        )
                for t in list(waiting.values()):
                    if t.started.poll() is not None:
                        raise ClusterError(
                            f"task {t.label} exited while starting ({exit_reason(t.started.returncode)})"
                            + (f":\n{t.log_tail()}" if t.log_tail() else "")
                        )
        except BaseException:
            self.stop()
            raise
        return self

    def dead(self) -> list[Task]:
        return [t for t in self.tasks if t.process is not None and t.process.poll() is not None]

    def stopped(self) -> list[Task]:
        """The tasks that are alive but stopped (SIGSTOP, or a debugger): they never answer."""
        return [
            t
            for t in self.tasks
            if t.process is not None and t.process.poll() is None and _state(t.process.pid) in ("T", "t")
        ]

    def stop(self, grace: float = 5.0) -> None:
        if self._zygote is not None and any(t.process is not None and not t.process.pid for t in self.tasks):
            self._zygote.close(grace=0.5)  # still starting (a Ctrl-C, a failed start): it forks no more
        for t in self.tasks:
            if t.process is not None and t.process.poll() is None:
                _signal_group(t.process.pid, signal.SIGTERM)
                _signal_group(t.process.pid, signal.SIGCONT)  # a stopped server acts on SIGTERM once continued
        deadline = time.monotonic() + grace
        for t in self.tasks:
            if t.process is None:
                continue
            try:
                t.process.wait(timeout=max(deadline - time.monotonic(), 0.05))
            except subprocess.TimeoutExpired:
                _signal_group(t.process.pid, signal.SIGKILL)
                if self._zygote is not None:
                    self._zygote.close()  # a server not yet forked is never forked
                t.process.wait(timeout=5)
            if t.process.stdout:
                t.process.stdout.close()
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None
        if self in _LIVE:
            _LIVE.remove(self)

    def remove_logs(self) -> None:
        if self.logdir:
            shutil.rmtree(self.logdir, ignore_errors=True)
            self.logdir = ""

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, kind, *exc) -> None:
        self.stop()
        if kind is None:
            self.remove_logs()


_LIVE: list[LocalCluster] = []


def _signal_group(pid: int, sig: int) -> None:
    """Signal a server's process group (pid 0: a server not yet forked, which has none)."""
    if pid <= 0:
        return
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _state(pid: int) -> str:
    """A process's state letter from /proc (R, S, T for stopped, ...; '' when unknown)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return ""


def _die_with_parent() -> None:
    """In a server, before it starts: the kernel sends it SIGKILL when the thread that
    started it dies. That also ends a server that is stopped (SIGSTOP) when dfc is killed,
    which its own parent watch cannot (Linux; elsewhere the watch alone)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@atexit.register
def stop_all() -> None:
    """Stop every cluster this process started and has not stopped (at exit, or before
    the CLI skips the interpreter's teardown)."""
    for c in list(_LIVE):
        c.stop(grace=2.0)


class Terminated(SystemExit):
    """SIGTERM arrived (a batch system ending the job, ``kill``): unwinds like Ctrl-C."""


def _terminate(*_) -> None:
    raise Terminated(143)


def install_sigterm_handler() -> None:
    """Turn SIGTERM into :class:`Terminated` (a SystemExit) so context managers and atexit
    stop the servers, and the CLI says what it stopped."""
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _terminate)
