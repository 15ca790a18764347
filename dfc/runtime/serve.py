"""``dfc serve``: this process's TensorFlow server, for a cluster across hosts.

Policy: it serves only where the trust rule allows (dfc/runtime/trust.py: no globally
reachable address unless ``--trust-network``), and says every address it can be
reached on; it prints one ``ready`` line once it listens; it exits when the client
releases it, when no client says hello within the idle deadline, when a client that said
hello goes silent for SILENT_S, on SIGTERM or SIGINT (srun's end of step) — never lingers.

Restarts: ``dfc serve`` is a small supervisor (it never loads TensorFlow) of one child
process that runs the server. When the child dies (killed, out of memory), or the client
says ``restart`` (``dfc run --retries`` after a lost task: every server must start with
fresh state, no queue holding items of the failed run), the supervisor starts a new child
on the same port, up to MAX_RESTARTS times; released, abandoned or refused, it exits with
the child's code. A restarted child that finds its port taken is tried again for up to
PORT_WAIT_S: while the port had no listener, any outgoing connection of the machine could
be given it as its local port (a cluster file's port in the ephemeral range), and such a
connection is short-lived. At the first start a taken port is the user's to fix: no retry.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from .checkpoint import fsync_folder
from .cluster import _die_with_parent
from .clusters import Layout, TaskSlot
from .remote import SILENT_S, identity, identity_handle, release_queue, synced_queue
from .server import group_leader
from .trust import interface_addresses
from .watch import exit_reason

#: the child's exit code when the client asked for a restart
RESTART = 4
#: the child's exit code when it cannot listen on its port
PORT_TAKEN = 5
MAX_RESTARTS = 8
PORT_WAIT_S = 30.0


def supervise(argv: list[str], label: str, say=print) -> int:
    """Run ``dfc serve ARGV --child`` until it is released, abandoned or refused; start it
    again when it dies or is asked to restart. Its first ``ready`` line is passed on."""
    stopping: list[int] = []
    child: list[subprocess.Popen] = []

    def stop(signum, _frame):  # the server's own SIGTERM is its default: it ends at once
        stopping.append(signum)
        if child and child[0].poll() is None:
            child[0].send_signal(signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    ready = False
    for attempt in range(MAX_RESTARTS + 1):
        port_wait = time.monotonic() + PORT_WAIT_S
        while True:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dfc", "serve", *argv, "--child"],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
            child[:] = [proc]
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.strip() == b"ready" and not ready:
                    ready = True
                    print("ready", flush=True)
            code = proc.wait()
            proc.stdout.close()
            if stopping or code != PORT_TAKEN or attempt == 0 or time.monotonic() > port_wait:
                break
            say(f"dfc serve: {label}: its port is taken for now; trying again in a second")
            time.sleep(1.0)
        if stopping:
            return 128 + stopping[0] if code < 0 else code
        if code == PORT_TAKEN:
            return 1
        if code == RESTART:
            say(f"dfc serve: {label}: the client asked for a fresh server; starting it again")
        elif code < 0:
            say(
                f"dfc serve: {label}: its server died ({exit_reason(code)}); starting it again "
                f"({attempt + 1} of {MAX_RESTARTS})"
            )
        else:
            return code
    say(f"dfc serve: {label}: its server was started {MAX_RESTARTS + 1} times; giving up")
    return 1


def serve(layout: Layout, me: TaskSlot, idle_timeout: float, say=print) -> int:
    """Serve ``me`` of ``layout`` until released (exit code 0) or abandoned (3); 1 if its
    server cannot start."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from .tf_engine import quiet_tensorflow

    quiet_tensorflow(False)
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    reachable = ", ".join(f"{name} {a}" for name, ips in sorted(interface_addresses().items()) for a in ips)
    say(f"dfc serve: {me.label} of '{layout.source}' cluster on port {me.port}, reachable on: {reachable}")
    # the task that forms collective groups (all-reduces): the one every server and the
    # client name (server.group_leader); without it a server never joins a group, and an
    # all-reduce on a cluster of `dfc serve` servers waits until the run's timeout
    config = tf.compat.v1.ConfigProto()
    config.experimental.collective_group_leader = group_leader(layout.cluster_dict())
    try:
        server = tf.distribute.Server(
            tf.train.ClusterSpec(layout.cluster_dict()), job_name=me.job, task_index=me.index, config=config, start=True
        )
    except tf.errors.OpError as e:
        taken = "Could not start gRPC server" in str(e)
        why = (
            f"it cannot listen on port {me.port}: another process has it (a TensorFlow server listens on its "
            "port of every address, so two tasks of one machine need two ports), or it is below 1024"
            if taken
            else ((e.message or "").splitlines() or [type(e).__name__])[0]
        )
        say(f"dfc serve: {me.label}: cannot start its server: {why}")
        return PORT_TAKEN if taken else 1
    graph = tf.Graph()
    with graph.as_default():
        handle = identity_handle(tf, me)
        known = tf.raw_ops.AssignVariableOp(
            resource=handle, value=tf.constant(identity(me.job, me.index, layout.cluster_dict()))
        )
        message = release_queue(tf, me).dequeue()
        answer = tf.compat.v1.placeholder(tf.string, [])
        reply = synced_queue(tf, me).enqueue(answer)
    sess = tf.compat.v1.Session(server.target, graph=graph)
    sess.run(known)
    print("ready", flush=True)
    waiting, deadline = "a client", idle_timeout
    while True:
        t0 = time.monotonic()
        try:
            word = sess.run(message, options=tf.compat.v1.RunOptions(timeout_in_ms=int(deadline * 1000)))
        except tf.errors.DeadlineExceededError:
            say(f"dfc serve: {me.label}: no word from {waiting} in {deadline:.0f} s; exiting")
            return 3
        except tf.errors.CancelledError:  # a client's Session.reset closes every session on the server
            say(f"dfc serve: {me.label}: a client reset this server; waiting for words again")
            sess = tf.compat.v1.Session(server.target, graph=graph)
            sess.run(known)  # (again: a reset of the default container drops the identity)
            continue
        if word == b"release":
            say(f"dfc serve: {me.label}: released by the client; exiting")
            return 0
        if word == b"restart":
            return RESTART
        if word.startswith(b"sync "):  # a checkpoint's files, written here: make them durable
            sess.run(reply, {answer: fsync_folder(word[5:].decode())})
        if word == b"hello":
            waiting = "the client"
        deadline = SILENT_S if waiting == "the client" else max(idle_timeout - (time.monotonic() - t0), 1.0)
