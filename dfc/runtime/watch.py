"""Session calls that are watched: a ``session.run`` runs in a thread of its own while the
calling thread watches the cluster's servers, so that

- a task that dies is reported within a poll (a remote task's check is a connection,
  so it takes longer), even when the call would wait on it for minutes: TF's
  client sees no error while the master (worker:0) it talks to is gone;
- a stopped task (SIGSTOP: alive, never answering) is named when it has been stopped for
  a few seconds, and the call gives up at the timeout, naming it;
- Ctrl-C and SIGTERM reach the calling thread at once (it waits in short steps), in the
  middle of a long call too; the call itself is abandoned to its thread, which ends
  when the servers are stopped.

A call abandoned this way leaves its thread in TensorFlow; the runner refuses further
calls, and the session is closed with a deadline (``close_within``)."""

from __future__ import annotations

import queue
import signal
import threading
import time

POLL_S = 0.2
REMOTE_POLL_S = 1.0
STOPPED_WARN_S = 3.0
GRACE_S = 2.0  # past the timeout, for TF's own deadline to answer first


def exit_reason(code: int | None) -> str:
    """'killed by SIGKILL', 'exit code 1', ..."""
    if code is None:
        return ""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Runner:
    """Runs calls one at a time in a worker thread; ``run`` waits while watching ``cluster``."""

    def __init__(self, cluster, lost, say=lambda *a: None):
        self.cluster, self.lost, self.say = cluster, lost, say
        self.stuck = False  # a call was abandoned: its thread is still inside TensorFlow
        self._jobs: queue.Queue = queue.Queue()
        self._poll = REMOTE_POLL_S if not getattr(cluster, "local", True) or not hasattr(cluster, "stopped") else POLL_S
        self._thread = threading.Thread(target=self._serve, daemon=True, name="dfc-session-run")
        self._thread.start()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, box, done = job
            try:
                box["out"] = fn()
            except BaseException as e:  # handed to the waiting thread
                box["error"] = e
            done.set()

    def run(self, fn, what: str, timeout: float):
        """``fn()`` in the worker thread; raises ``lost(message)`` when a task dies or stays
        stopped past the timeout; whatever ``fn`` raised otherwise."""
        if self.stuck:
            raise self.lost(f"cannot run {what}: an earlier call to the cluster never returned")
        box: dict = {}
        done = threading.Event()
        self._jobs.put((fn, box, done))
        deadline = time.monotonic() + timeout + GRACE_S
        stopped_at: dict[str, float] = {}
        warned: set[str] = set()
        try:
            while not done.wait(self._poll):
                dead = self.cluster.dead()
                if dead:
                    raise self.lost(self.died(dead, what))
                now = time.monotonic()
                stopped = self.cluster.stopped() if hasattr(self.cluster, "stopped") else []
                for t in stopped:
                    since = stopped_at.setdefault(t.label, now)
                    if now - since >= STOPPED_WARN_S and t.label not in warned:
                        warned.add(t.label)
                        self.say(
                            f"warning: task {t.label} is stopped (SIGSTOP) and does not answer; "
                            f"dfc gives up {max(deadline - now, 0):.0f} s from now (--timeout)"
                        )
                if now > deadline:
                    names = ", ".join(t.label for t in stopped)
                    raise self.lost(
                        f"no answer from the cluster within {timeout:.0f} s during {what}"
                        + (f": task {names} is stopped (SIGSTOP): hung, not dead" if stopped else "")
                        + "\n  hint: --timeout S sets the limit of each call"
                    )
        except BaseException:  # a lost task, Ctrl-C, SIGTERM: the call is left to its thread
            if not done.is_set():
                self.stuck = True
            raise
        if "error" in box:
            raise box["error"]
        return box["out"]

    @staticmethod
    def died(dead: list, what: str) -> str:
        parts = []
        for t in dead:
            code = getattr(getattr(t, "process", None), "returncode", None)
            at = f" at {t.address}" if getattr(t, "address", "") else ""
            parts.append(t.label + at + (f" ({exit_reason(code)})" if code is not None else ""))
        tail = dead[0].log_tail() if hasattr(dead[0], "log_tail") else ""
        return f"task {', '.join(parts)} died during {what}" + (f":\n{tail}" if tail else "")

    def close(self) -> None:
        self._jobs.put(None)


def close_within(session, within: float) -> None:
    """Close a TF session, waiting at most ``within`` seconds: with a server gone, TF's
    close retries until its own deadline (about 30-60 s), and there is nothing left on the
    servers for it to free (they are stopped)."""

    def close():
        try:
            session.close()
        except Exception:  # a server already gone  # noqa: BLE001
            pass

    closer = threading.Thread(target=close, daemon=True, name="dfc-close")
    closer.start()
    closer.join(timeout=within)
