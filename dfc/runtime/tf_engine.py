"""The TensorFlow engine: run a placed IR on a cluster of TF servers.

Startup (servers booting) overlaps with building the graph in the client. Then: one run
initialises every variable on its owner; one runs the prologue; the loop body runs with
one ``session.run`` per iteration (the ``until`` tensor is fetched with it). Every call
has a timeout; when a task dies, the error names it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np

from .. import __version__
from ..ir.interp import Result, gather
from .cluster import ClusterError, LocalCluster
from .private import state
from .server import group_leader
from .watch import Runner, close_within

if TYPE_CHECKING:
    from .remote import RemoteCluster


class RunError(Exception):
    """The run failed (a task died, a call timed out, TF refused the graph)."""


class TaskLost(RunError):
    """A task of the cluster died, or stopped answering, during the run: ``--retries`` may
    start the cluster again and resume from the last checkpoint."""


class ClusterMismatch(RunError):
    """The servers that answer are not the cluster the client needs: another dfc or
    TensorFlow version, another cluster, one process under two names. The user's setup
    is wrong, as with a bad cluster file (exit 2), not the run."""


def quiet_tensorflow(verbose: bool) -> None:
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    # TF closes sessions in a thread of its own; when the cluster is already gone, that
    # thread's error is noise after dfc's own message, not a crash of dfc. Installed once.
    if getattr(threading.excepthook, "dfc", False):
        return
    previous = threading.excepthook

    def hook(args):
        if getattr(args.thread, "name", "") != "SessionCloseThread":
            previous(args)

    setattr(hook, "dfc", True)
    threading.excepthook = hook


def tf_reason(message: str) -> str:
    """The line of a TF error that says what failed, without the graph-mode preamble
    ('Graph execution error:', 'Detected at node ... defined at', the Python frames)."""
    for line in message.splitlines():
        text = re.sub(r"^[A-Z_]+: ", "", line.strip())  # 'DATA_LOSS: ', the status code
        if (
            text
            and not line.startswith((" ", "\t"))
            and not text.startswith(("Graph execution error", "Detected at node", "Node: ", "From /job:", "Hint: "))
            and text.strip("=")
            and not text.startswith("[[")
        ):
            return text
    return message.splitlines()[0] if message else "(no message)"


def _dead_soon(cluster, wait: float = 3.0) -> list:
    """The tasks that have exited within ``wait`` seconds (none: the error is another)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        dead = cluster.dead()
        if dead:
            return dead
        time.sleep(0.1)
    return []


def run_tf(
    g: nx.DiGraph,
    timeout: float = 300.0,
    verbose: bool = False,
    say=lambda *a: None,
    max_iterations: int | None = None,
    trace=None,
    layout=None,
    checkpoint=None,
    resume: bool = False,
    again: bool = False,
    loop: str = "graph",
) -> Result:
    """Run ``g`` on a local cluster, or on the servers of ``layout`` (a
    :class:`~dfc.runtime.clusters.Layout` that ``dfc serve`` started); with ``trace`` (a
    :class:`~dfc.runtime.trace.Trace`), every call of the compute phase is traced into it.
    With ``checkpoint`` (a :class:`~dfc.runtime.checkpoint.Checkpointer`) the loop's state
    is saved as ``loop.checkpoint`` asks; with ``resume`` too, the run starts from the
    newest usable checkpoint instead of the first pass. ``again``: when a task is lost,
    the servers of ``layout`` are asked to start afresh (for a retry), not released.
    ``loop``: how the loop body is built (``dfc.lower.LOOPS``)."""
    facts = g.graph["facts"]
    quiet_tensorflow(verbose)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if layout is None:
        cluster: LocalCluster | RemoteCluster = LocalCluster(facts, start_timeout=max(60.0, timeout / 5))
        where = "TF servers on 127.0.0.1 " + ("in a private network" if state()[0] else "in the shared network")
    else:
        from .remote import RemoteCluster

        cluster = RemoteCluster(layout, start_timeout=min(60.0, timeout))  # its servers are up already
        where = f"servers of the '{layout.source}' cluster"
    try:
        cluster.spawn()
    except ClusterError as e:  # nothing started: the machine cannot hold the cluster
        raise RunError(str(e)) from None
    where = f"{'starting' if layout is None else 'connecting to'} {len(cluster.tasks)} {where}"
    try:
        say(f"{where}: {', '.join(t.label for t in cluster.tasks)}; building the graph")
        import tensorflow as tf

        if not verbose:
            tf.get_logger().setLevel("ERROR")
        from ..lower import lower

        t1 = time.perf_counter()
        lowered = lower(g, loop)
        seconds["build"] = time.perf_counter() - t1
        cluster.wait()
        seconds["startup"] = time.perf_counter() - t0 - seconds["build"]
        if checkpoint is not None:
            checkpoint.store.local = getattr(cluster, "local", True)
            checkpoint.store.sync = getattr(cluster, "sync", None)  # each `dfc serve` fsyncs its files
        result = _drive(
            tf,
            lowered,
            cluster,
            g,
            timeout,
            say,
            seconds,
            max_iterations,
            trace,
            checkpoint if lowered.checkpoint is not None else None,
            resume,
        )
    except (ClusterError, RunError) as e:
        if again and isinstance(e, TaskLost) and hasattr(cluster, "restart"):
            cluster.restart()
        else:
            cluster.stop()
        kind = type(e) if isinstance(e, RunError) else RunError  # a ClusterMismatch stays one
        raise kind(f"{e}\n  the servers' logs are kept in {cluster.logdir}" if cluster.logdir else str(e)) from None
    except BaseException:
        cluster.stop()
        cluster.remove_logs()
        raise
    cluster.stop()
    cluster.remove_logs()
    return result


def read_back(tf, lowered, call, g: nx.DiGraph, shared_files: bool = True) -> dict:
    """Every variable's value. The local cluster shares this machine's file system, so each
    owner writes its tiles into a temporary folder (in RAM, /dev/shm, when it has room) and
    the client reads them straight into arrays, several times faster than the session's
    fetch (one protobuf message through the master; docs/running.md, "Output"). Without
    room for them on disk either, when writing fails, or when an owner runs on another
    machine (``shared_files`` False), through the session's fetch."""
    import numpy as np

    folder_ph, dump, files = lowered.dump
    need = 2 * sum(g.nodes[name]["node"].out_bytes for name in files) + (64 << 20)
    folder = _scratch(need) if shared_files else None
    if folder is None:
        return call(lowered.reads, "fetching the results")
    try:
        try:
            call(dump, "writing the results", feed={folder_ph: folder})
        except RunError:  # e.g. the folder filled up meanwhile; a dead task fails this call too
            return call(lowered.reads, "fetching the results")
        out = {}
        for name, file in files.items():
            n = g.nodes[name]["node"]
            out[name] = _tensor_file(os.path.join(folder, file), np.dtype(n.dtype or "float64"), n.shape)
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _scratch(need: int) -> str | None:
    """A new temporary folder with ``need`` bytes free: in /dev/shm (RAM) if it has them
    (a container's is often 64 MB), else in the temporary directory; None if neither."""
    for where in ("/dev/shm", tempfile.gettempdir()):
        try:
            if os.access(where, os.W_OK) and shutil.disk_usage(where).free >= need:
                return tempfile.mkdtemp(prefix="dfc-fetch-", dir=where)
        except OSError:
            continue
    return None


#: Tensors of at least this many bytes are read back mapped (:func:`_tensor_file`).
MAP_BYTES = 1 << 20


def _tensor_file(path: str, dtype, shape: tuple[int, ...]):
    """The array in a file written by ``tf.io.serialize_tensor``: a TensorProto whose last
    field is the raw little-endian data (``tensor_content``), read without copying it
    through protobuf. The bytes before the data must be that field's tag and length."""
    import numpy as np

    nbytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    size = os.path.getsize(path)
    length, v = bytearray(), nbytes
    while True:  # the varint of nbytes
        length.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not v:
            break
    tag = b"\x22" + bytes(length)  # field 4 (tensor_content), length-delimited
    if nbytes == 0:
        return np.empty(shape, dtype)
    with open(path, "rb") as f:
        if size >= nbytes + len(tag):
            f.seek(size - nbytes - len(tag))
        if size < nbytes + len(tag) or f.read(len(tag)) != tag:
            raise RunError(f"cannot read back {os.path.basename(path)}: not a {dtype}{list(shape)} tensor file")
        if nbytes < MAP_BYTES:
            return np.fromfile(f, dtype=dtype.newbyteorder("<"), count=nbytes // dtype.itemsize).reshape(shape)
    # mapped, not read: reading into fresh memory faults in every page of it (0.3 s for
    # CG's 128 MB matrix here), a private mapping of the file's pages does not; the data
    # outlives the file's removal, and writes to the array stay in this process
    mapped = np.memmap(path, dtype=dtype.newbyteorder("<"), mode="c", offset=size - nbytes, shape=shape)
    return mapped.view(np.ndarray)  # a plain array (the mapping lives as long as it does)


def _drive(
    tf,
    lowered,
    cluster: LocalCluster | RemoteCluster,
    g,
    timeout: float,
    say,
    seconds: dict,
    max_iterations,
    trace=None,
    saver=None,
    resume: bool = False,
) -> Result:
    ms = int(timeout * 1000)
    config = session_config(tf, g, timeout)
    options = tf.compat.v1.RunOptions(timeout_in_ms=ms)
    traced = tf.compat.v1.RunOptions(timeout_in_ms=ms, trace_level=tf.compat.v1.RunOptions.FULL_TRACE)

    runner = Runner(cluster, TaskLost, say)

    def fatal(e: Exception) -> bool:
        """The error ends the run: a task is lost (not a full disk under a checkpoint)."""
        return isinstance(e, TaskLost) or bool(cluster.dead())

    def run(fetches, traces: bool, feed: dict | None):
        if trace is not None and traces:
            meta = tf.compat.v1.RunMetadata()
            out = sess.run(fetches, options=traced, run_metadata=meta, feed_dict=feed)
            trace.add(meta)
            return out
        return sess.run(fetches, options=options, feed_dict=feed)

    def call(fetches, what: str, traces: bool = False, feed: dict | None = None):
        try:
            return runner.run(lambda: run(fetches, traces, feed), what, timeout)
        except tf.errors.OpError as e:
            # a lost connection may be seen before the task's exit: give it a moment
            lost = isinstance(e, (tf.errors.UnavailableError, tf.errors.AbortedError))
            dead = _dead_soon(cluster) if lost else cluster.dead()
            if dead:
                raise TaskLost(Runner.died(dead, what)) from None
            if "Could not satisfy" in e.message or "device specification" in e.message:
                wanted = sorted(set(re.findall(r"/job:[\w-]+/(?:replica:\d+/)?task:\d+/device:\w+:\d+", e.message)))
                raise RunError(
                    f"TensorFlow cannot place the graph during {what}: no such device on this cluster"
                    + (f" ({', '.join(wanted[:3])})" if wanted else "")
                    + "\n  hint: a job with `device: gpu` needs a GPU per task on the machine that runs it"
                ) from None
            if isinstance(e, tf.errors.DeadlineExceededError):
                stopped = cluster.stopped() if hasattr(cluster, "stopped") else []
                if stopped:
                    raise TaskLost(
                        f"no answer from the cluster within {timeout:.0f} s during {what}: task "
                        f"{', '.join(t.label for t in stopped)} is stopped (SIGSTOP): hung, not dead"
                    ) from None
                raise RunError(
                    f"no answer from the cluster within {timeout:.0f} s during {what} (--timeout sets the limit)"
                ) from None
            raise RunError(f"TensorFlow failed during {what}: {type(e).__name__}: {tf_reason(e.message)}") from None

    sess = tf.compat.v1.Session(cluster.target, graph=lowered.graph, config=config)
    finished = False
    try:
        result = _loop(tf, lowered, g, call, fatal, cluster, say, seconds, max_iterations, saver, resume)
        finished = True
        return result
    finally:
        runner.close()
        # after a failure the servers are stopped next: a close would wait on a lost one
        close_within(sess, 10.0 if finished else 0.0)


def session_config(tf, g, timeout: float):
    """The session's configuration for a placed IR ``g`` (also what ``dfc calibrate`` runs under)."""
    from tensorflow.core.protobuf import rewriter_config_pb2

    config = tf.compat.v1.ConfigProto(operation_timeout_in_ms=int(timeout * 1000), allow_soft_placement=False)
    config.experimental.collective_group_leader = group_leader(g.graph["facts"].cluster)
    # No constant folding: it made the master evaluate the (constant-input) random tiles
    # and ship them to their owners (docs/running.md, "Measurements behind the choices").
    config.graph_options.rewrite_options.constant_folding = rewriter_config_pb2.RewriterConfig.OFF
    return config


def _iterations(done: int, k: int) -> str:
    """What a chunk of the loop is called in messages: 'iteration 5' or 'iterations 5-40'."""
    return f"iteration {done + 1}" if k == 1 else f"iterations {done + 1}-{done + k}"


class Chunks:
    """How many iterations each ``session.run`` of the loop runs: one at first, then as many
    as take about :data:`CHUNK_SECONDS` at the pace measured so far (so progress is still
    reported about once a second, and a Ctrl-C or a dead task waits for no long call to
    end), never past the next checkpoint (a checkpoint falls on a chunk's end)."""

    def __init__(self, every: int):
        self.every, self.size, self.per = every, 1, 0.0

    def next(self, done: int, limit: int) -> int:
        k = min(self.size, limit - done)
        if self.every:
            k = min(k, self.every - done % self.every)
        return max(k, 1)

    def took(self, ran: int, seconds: float) -> None:
        if ran <= 0:
            return
        self.per = seconds / ran
        fit = int(CHUNK_SECONDS / max(self.per, 1e-6))
        self.size = max(1, min(fit, self.size * 8))  # grows by 8 at most: the pace may change


#: How long one ``session.run`` of the loop should take (see :class:`Chunks`).
CHUNK_SECONDS = 0.5


def _loop(tf, lowered, g, call, fatal, cluster, say, seconds: dict, max_iterations, saver, resume: bool) -> Result:
    """Initialise, run the first pass (or restore a checkpoint), the loop, and read back."""
    t = time.perf_counter()
    say("initialising variables on their owners")
    call(lowered.init, "initialisation")
    seconds["init"] = time.perf_counter() - t
    t = time.perf_counter()
    iterations = 0
    if resume and saver is None:
        from .checkpoint import CheckpointError

        raise CheckpointError("--resume: the program saves no checkpoints (its loop has no `checkpoint:`)")
    if resume:
        iterations = saver.restore(call, lowered.checkpoint, lowered.init, fatal)
        say(
            f"resuming at iteration {iterations + 1} from {saver.resumed['folder']} "
            f"(written {saver.resumed['written']}): the first pass and iterations 1-{iterations} are skipped"
        )
    elif lowered.prologue:
        say("running")
        call(lowered.prologue, "the first pass", traces=True)
    start = iterations
    limit = lowered.max_iterations if max_iterations is None else min(max_iterations, lowered.max_iterations)
    versions = {"dfc": __version__, "tensorflow": tf.__version__} if saver is not None else {}
    checkpointing = 0.0
    if lowered.loop is not None:
        chunks = Chunks(saver.every if saver is not None else 0)
        last = time.perf_counter()
        while iterations < limit:
            k = chunks.next(iterations, limit)
            t_chunk = time.perf_counter()
            feed = {lowered.chunk: k} if lowered.chunk is not None else {}  # none: one iteration a run
            if lowered.done is not None:
                feed[lowered.done] = iterations  # the loop's `rand` draws its iterations' numbers
            ran, held = call(
                lowered.loop,
                _iterations(iterations, int(k if lowered.chunk is not None else 1)),
                traces=True,
                feed=feed or None,
            )
            chunks.took(int(ran), time.perf_counter() - t_chunk)
            iterations += int(ran)
            if time.perf_counter() - last >= 1.0 or iterations == limit:
                say(f"iteration {iterations}/{limit}")
                last = time.perf_counter()
            if bool(held):
                break
            if saver is not None and saver.due(iterations) and iterations < limit:
                c = time.perf_counter()
                saver.save(call, lowered.checkpoint, iterations, versions, fatal)
                checkpointing += time.perf_counter() - c
    if saver is not None:
        seconds["checkpoint"] = checkpointing
    seconds["compute"] = time.perf_counter() - t - seconds.get("checkpoint", 0.0)
    t = time.perf_counter()
    values = read_back(tf, lowered, call, g, getattr(cluster, "local", True))
    seconds["fetch"] = time.perf_counter() - t
    storage = dict(values)
    arrays = gather(g, storage)
    scalars = {
        n.data.scalar: np.asarray(storage[name]).item()
        for name, n in ((k, g.nodes[k]["node"]) for k in lowered.reads)
        if n.data.scalar
    }
    iterations += g.graph["facts"].unrolled  # an unrolled loop ran in the first pass
    return Result(arrays, scalars, iterations, seconds, start, saver.report() if saver is not None else None)
