"""Servers dfc did not start: ``dfc serve`` on each host, and the client that uses them.

The two talk through two TensorFlow resources on each server, so no second channel is
needed:

- ``dfc_identity``, a string variable ``dfc serve`` sets: dfc's and TensorFlow's versions,
  the host, the process id, its task and the cluster it serves. The client's preflight
  reads every task's: the versions and the cluster must be the client's, and the
  processes distinct (N copies of one task, each serving alone, look like a cluster
  until they are asked who they are).
- ``dfc_release``, a queue the server waits on. The client says ``hello`` when it
  connects, ``alive`` every few seconds while it runs, and ``release`` at the end (also
  on failure and Ctrl-C): ``dfc serve`` exits when released, when nobody said hello
  within its idle deadline, or when a client that said hello goes silent.

Policy: every call has a deadline; a task that does not answer is named by host, port,
job and task.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from typing import Any

from .clusters import Layout, TaskSlot
from .watch import close_within

IDENTITY = "dfc_identity"
RELEASE = "dfc_release"
SYNCED = "dfc_synced"
#: the client says it is alive this often; a server gives up on it after SILENT seconds
KEEPALIVE_S = 5.0
SILENT_S = 60.0
#: a server that answers but has no identity for this long is not a `dfc serve`
UNSET_S = 10.0


def device(t: TaskSlot) -> str:
    return f"/job:{t.job}/replica:0/task:{t.index}/device:CPU:0"


def release_queue(tf, t: TaskSlot):
    with tf.device(device(t)):
        return tf.queue.FIFOQueue(64, [tf.string], shapes=[[]], shared_name=RELEASE, name=f"release_{t.job}_{t.index}")


def synced_queue(tf, t: TaskSlot):
    """Where ``dfc serve`` answers a ``sync FOLDER`` word: '' when the folder's files are
    durable, else why not."""
    with tf.device(device(t)):
        return tf.queue.FIFOQueue(8, [tf.string], shapes=[[]], shared_name=SYNCED, name=f"synced_{t.job}_{t.index}")


def identity_handle(tf, t: TaskSlot):
    with tf.device(device(t)):
        return tf.raw_ops.VarHandleOp(
            dtype=tf.string, shape=[], shared_name=IDENTITY, name=f"identity_{t.job}_{t.index}"
        )


def identity(job: str, task: int, cluster: dict) -> str:
    import tensorflow as tf

    from .. import __version__

    return json.dumps(
        {
            "dfc": __version__,
            "tensorflow": tf.__version__,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "job": job,
            "task": task,
            "cluster": cluster,
        }
    )


def answers(t: TaskSlot, timeout: float = 1.0) -> bool:
    try:
        socket.create_connection((t.host, t.port), timeout=timeout).close()
        return True
    except OSError:
        return False


class RemoteTask:
    """A task of a remote cluster, as the TF engine sees it (like a local Task)."""

    def __init__(self, slot: TaskSlot):
        self.slot, self.job, self.index, self.label = slot, slot.job, slot.index, f"{slot.label} at {slot.address}"

    def log_tail(self, lines: int = 8) -> str:
        return ""  # its log is where dfc serve runs


class RemoteCluster:
    """The cluster of a layout whose servers ``dfc serve`` started: the same interface as
    the local cluster for the TF engine (spawn, wait, dead, stop)."""

    def __init__(self, layout: Layout, start_timeout: float = 60.0):
        self.layout, self.start_timeout = layout, start_timeout
        self.tasks = [RemoteTask(t) for t in layout.tasks]
        self.logdir = ""
        self._control: Any = None  # the session of the control queues (a tf.compat.v1.Session)
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None
        self._released = False
        self.identities: list[dict] = []  # each task's, in task order, once the preflight has read them

    @property
    def target(self) -> str:
        first = next((t for t in self.layout.tasks if t.job == "worker"), self.layout.tasks[0])
        return f"grpc://{first.address}"

    @property
    def local(self) -> bool:
        """Whether every task runs on this machine (the results can come back through files)."""
        return all(t.host in ("localhost", "::1") or t.host.startswith("127.") for t in self.layout.tasks)

    def spawn(self) -> RemoteCluster:
        return self

    def remove_logs(self) -> None:
        pass

    def dead(self) -> list[RemoteTask]:
        return [t for t in self.tasks if not answers(t.slot)]

    def wait(self) -> RemoteCluster:
        """The preflight: every task answers within the deadline, runs this dfc and
        TensorFlow, and is a process of its own; then hello, and the keepalive starts."""
        from .tf_engine import RunError

        deadline = time.monotonic() + self.start_timeout
        missing = self.tasks
        while missing and time.monotonic() < deadline:
            missing = [t for t in missing if not answers(t.slot)]
            if missing:
                time.sleep(0.5)
        if missing:
            raise RunError(
                f"no answer within {self.start_timeout:.0f} s from "
                + ", ".join(t.label for t in missing)
                + "\n  hint: start `dfc serve SPEC --cluster ... --job J --task I` on each host first"
            )
        import tensorflow as tf

        ms = int(max(self.start_timeout, 10) * 1000)
        config = tf.compat.v1.ConfigProto(operation_timeout_in_ms=ms)
        self._released = True  # until the checks pass: servers this client refuses are left alone
        self.identities = self._identities(tf, config, deadline)
        self._check(self.identities)
        self._released = False
        graph = tf.Graph()
        with graph.as_default():
            queues = [release_queue(tf, t) for t in self.layout.tasks]
            self._say = {word: [q.enqueue(tf.constant(word)) for q in queues] for word in ("hello", "alive", "release")}
            self._folder = tf.compat.v1.placeholder(tf.string, [])
            self._sync = [
                (q.enqueue(tf.strings.join(["sync ", self._folder])), synced_queue(tf, t).dequeue())
                for q, t in zip(queues, self.layout.tasks)
            ]
        self._control = tf.compat.v1.Session(self.target, graph=graph, config=config)
        self._options = tf.compat.v1.RunOptions(timeout_in_ms=ms)
        self._control.run(self._say["hello"], options=self._options)
        self._keeper = threading.Thread(target=self._keepalive, daemon=True, name="dfc-keepalive")
        self._keeper.start()
        return self

    def _identities(self, tf, config, deadline: float) -> list[dict]:
        """Every task's identity, asked of each server directly (a session on its own
        address, the read unplaced, so it runs where the session lands): two names of one
        process then give one identity twice, where a read relayed by one master would
        fail on the device it cannot find."""
        graph = tf.Graph()
        with graph.as_default():
            handle = tf.raw_ops.VarHandleOp(dtype=tf.string, shape=[], shared_name=IDENTITY, name="identity")
            read = tf.raw_ops.ReadVariableOp(resource=handle, dtype=tf.string)
        found = []
        for t in self.tasks:
            with tf.compat.v1.Session(f"grpc://{t.slot.address}", graph=graph, config=config) as session:
                found.append(json.loads(self._ask(tf, session, read, deadline, t)))
        return found

    def _ask(self, tf, session, read, deadline: float, t: RemoteTask) -> bytes:
        """``t``'s identity, tried in short attempts until the deadline: a server that has
        only just started can leave the first attempt waiting a long time. A server that
        answers without an identity for UNSET_S is not a `dfc serve` (which sets it before
        it says ready)."""
        from .tf_engine import RunError

        unset_since = None
        while True:
            left = deadline - time.monotonic()
            try:
                return session.run(
                    read, options=tf.compat.v1.RunOptions(timeout_in_ms=int(max(min(left, 3.0), 0.5) * 1000))
                )
            except (
                tf.errors.DeadlineExceededError,
                tf.errors.UnavailableError,
                tf.errors.FailedPreconditionError,
            ) as e:
                now = time.monotonic()
                if isinstance(e, tf.errors.FailedPreconditionError):  # up, but no identity (yet)
                    unset_since = unset_since or now
                if now >= deadline or (unset_since is not None and now - unset_since > UNSET_S):
                    waited = now - (deadline - self.start_timeout)
                    raise RunError(
                        f"{t.label} did not say who it is within {waited:.0f} s ({type(e).__name__}): "
                        "is it `dfc serve` of this spec?"
                    ) from None
                time.sleep(0.3)
            except tf.errors.OpError as e:
                first = (e.message or "").splitlines()[:1]
                raise RunError(
                    f"{t.label} did not say who it is ({type(e).__name__}"
                    f"{': ' + first[0] if first else ''}): is it `dfc serve` of this spec?"
                ) from None

    def _check(self, found: list[dict]) -> None:
        """Each task runs this dfc and TensorFlow, serves this cluster, is its own process."""
        import tensorflow as tf

        from .. import __version__
        from .tf_engine import ClusterMismatch

        wrong = [
            f"{t.label} runs dfc {f['dfc']} with TensorFlow {f['tensorflow']}"
            for t, f in zip(self.tasks, found)
            if (f["dfc"], f["tensorflow"]) != (__version__, tf.__version__)
        ]
        if wrong:
            raise ClusterMismatch(
                f"this client runs dfc {__version__} with TensorFlow {tf.__version__}, but " + "; ".join(wrong)
            )
        mine = self.layout.cluster_dict()
        other = [f"{t.label} serves {f['cluster']}" for t, f in zip(self.tasks, found) if f.get("cluster") != mine]
        if other:
            raise ClusterMismatch(
                f"the servers were started for another cluster than this client's {mine}: "
                + "; ".join(other)
                + "\n  hint: start every `dfc serve` and the client with the same "
                "--cluster"
            )
        owners: dict[tuple, str] = {}
        for t, f in zip(self.tasks, found):
            same = owners.setdefault((f["host"], f["pid"]), t.label)
            if same != t.label or (f["job"], f["task"]) != (t.job, t.index):
                raise ClusterMismatch(
                    f"{t.label} answers as {f['job']}:{f['task']} (process {f['pid']} on {f['host']})"
                    + (f", the same process as {same}" if same != t.label else "")
                    + ": each task needs its own `dfc serve --job J --task I`"
                )

    def _keepalive(self) -> None:
        import tensorflow as tf

        short = tf.compat.v1.RunOptions(timeout_in_ms=int(KEEPALIVE_S * 1000))
        while not self._stop.wait(KEEPALIVE_S):
            try:
                self._control.run(self._say["alive"], options=short)
            except Exception:  # a dead task: the run's own calls report it
                return

    def stop(self, grace: float = 5.0) -> None:
        """Release every server (they exit); the ones that are gone already are skipped."""
        self._stop.set()
        if self._keeper is not None:  # no keepalive may be in flight to a server released under it
            self._keeper.join(timeout=KEEPALIVE_S + grace)
        if self._control is None:
            return
        if self._released:  # refused by the preflight: not ours to release
            self._close()
            return
        self._released = True
        import tensorflow as tf

        master = self.target.removeprefix("grpc://")
        last = [t.address == master for t in self.layout.tasks]  # the master goes last: it relays the others
        for q, _ in sorted(zip(self._say["release"], last), key=lambda x: x[1]):
            try:
                self._control.run(q, options=tf.compat.v1.RunOptions(timeout_in_ms=int(grace * 1000)))
            except tf.errors.OpError:
                pass
        self._close()

    def sync(self, folder: str, owners=None) -> None:
        """Have each server (of ``owners``, labels 'job:task'; all by default) fsync the
        checkpoint files it wrote into ``folder``; OSError when one cannot."""
        import tensorflow as tf

        for (ask, answer), t in zip(self._sync, self.layout.tasks):
            if owners is not None and f"{t.job}:{t.index}" not in owners:
                continue
            try:
                self._control.run(ask, {self._folder: folder}, options=self._options)
                why = self._control.run(answer, options=self._options).decode()
            except tf.errors.OpError as e:
                why = f"no answer ({type(e).__name__})"
            if why:
                raise OSError(f"{t.label} at {t.address} could not fsync its checkpoint files: {why}")

    def restart(self, grace: float = 5.0) -> None:
        """Ask every server that answers to start again with fresh state (``dfc run
        --retries``; its supervisor restarts a dead one by itself), each through a session
        of its own: the master may be the task that died."""
        import tensorflow as tf

        self._stop.set()
        if self._keeper is not None:
            self._keeper.join(timeout=KEEPALIVE_S + grace)
        if self._control is not None:
            self._close(within=0.0)
        self._released = True
        options = tf.compat.v1.RunOptions(timeout_in_ms=int(grace * 1000))
        asked = []
        for t in self.layout.tasks:
            if not answers(t, timeout=grace):
                continue
            asked.append(t)
            graph = tf.Graph()
            with graph.as_default():
                word = release_queue(tf, t).enqueue(tf.constant("restart"))
            session = tf.compat.v1.Session(f"grpc://{t.address}", graph=graph)
            try:
                session.run(word, options=options)
            except tf.errors.OpError:
                pass
            finally:
                close_within(session, 0.0)
        # the next preflight must not meet a server that is about to exit: wait for each
        # to close its port (its successor needs seconds to load TensorFlow)
        deadline = time.monotonic() + grace
        while asked and time.monotonic() < deadline:
            asked = [t for t in asked if answers(t, timeout=0.2)]
            time.sleep(0.05)

    def _close(self, within: float = 2.0) -> None:
        """Close the control session, waiting at most ``within`` seconds: once the master
        is released and gone, TensorFlow's close retries it until its own deadline (60 s),
        and nothing is left on the servers for it to free."""
        control, self._control = self._control, None
        close_within(control, within)
