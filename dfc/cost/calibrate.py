"""``dfc calibrate``: measure a machine's costs for the cost model and write a profile.

Measured on real TensorFlow servers, as specs run (docs/compiler.md, "Profiles"): a local
cluster of three on this machine by default, or the ``dfc serve`` servers of a cluster
(``--cluster``). :func:`bench_of` picks which servers each figure is taken on:

- ``cpu_flops`` (float32, float64, complex64, complex128): a matmul of 1024 x 1024 tiles on
  each of two servers at once (of one host where the cluster has a host with two tasks:
  the host's rate, shared by its tasks as the model shares it);
- ``cpu_mem_bandwidth``: an elementwise add of 32 MiB float64 vectors on the same two;
- ``op_overhead``, ``run_overhead``: a chain of 101 scalar products against one;
- ``same_host`` (two tasks of one host) and ``network`` (two hosts), where the cluster has
  such a pair: latency, gap, tensors of 1 to 128 MiB sent whole, and the CPU both servers
  spend per byte (from /proc, where both run on this machine);
- loops across two servers and three, a graph's first runs, and every kernel of the specs;

each the median of repeated runs, after a first run to warm up, with outliers refused: a
run slower than the median by more than five median absolute deviations (a timing spike:
StarPU's history model was corrupted by them, starpu#50) is left out, and the number left
out is written. What is not measured keeps the built-in default, and the profile says so:
the integer rates, the GPU's, the link within a task, and a link the cluster has no pair
for (one machine has no network)."""

from __future__ import annotations

import datetime
import os
import platform
import re
import socket
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

#: Where ``dfc calibrate`` writes a machine's profile and ``dfc plan``/``run`` look for it.
PROFILES_ENV = "DFC_PROFILES"

#: The measurements `calibrate` reports to its progress callback, one call each.
STEPS = 24

SPEC = """dfc: 1
name: calibrate
cluster: {worker: {tasks: 3}}
arrays:
  x: {shape: [2], init: zeros}
"""


def profiles_dir() -> Path:
    """``$DFC_PROFILES``, else ``$XDG_CONFIG_HOME/dfc/profiles`` (``~/.config/dfc/profiles``)."""
    if os.environ.get(PROFILES_ENV):
        return Path(os.environ[PROFILES_ENV])
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "dfc" / "profiles"


def shipped_specs() -> list[Path]:
    """The specs shipped beside the package (a source checkout's specs/), if any."""
    folder = Path(__file__).resolve().parents[2] / "specs"
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def machine_profile(host: str = "") -> Path:
    """The calibrated profile of this machine (by host name; or of ``host``, the name a
    server reported: characters a file name should not have become ``_``), whether it
    exists or not."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", host or socket.gethostname()).lstrip(".") or "host"
    return profiles_dir() / f"{name}.yaml"


def hosts_profile(hosts: Iterable[str]) -> Path | None:
    """The calibrated profile of a cluster's machines: that of the first of ``hosts`` (a
    cluster's host names; this machine's are skipped) with one in the profiles folder,
    by its name or its name up to the first dot (the name its servers report)."""
    from ..runtime.clusters import machine_of

    for host in hosts:
        if machine_of(host) == "this machine":
            continue
        for name in dict.fromkeys((host, host.split(".")[0])):
            path = machine_profile(name)
            if path.is_file():
                return path
    return None


@dataclass
class Measure:
    """Repeated timings of one thing: the median, after spikes are refused."""

    samples: list[float] = field(default_factory=list)

    @property
    def kept(self) -> list[float]:
        med = statistics.median(self.samples)
        mad = statistics.median(abs(s - med) for s in self.samples) or med * 0.01
        return [s for s in self.samples if s <= med + 5 * mad]

    @property
    def refused(self) -> int:
        return len(self.samples) - len(self.kept)

    @property
    def median(self) -> float:
        return statistics.median(self.kept)


def timed(run: Callable[[], object], repeats: int) -> Measure:
    run()  # warm up: the first run builds kernels and allocates
    out = Measure()
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        out.samples.append(time.perf_counter() - t)
    return out


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc/PID/stat, in clock ticks)."""
    fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Server:
    """A server measured on: its device, the machine it runs on (the host name it reports),
    and its process id where that machine is this one (its CPU time is read from /proc)."""

    device: str
    machine: str
    pid: int | None = None


@dataclass(frozen=True)
class Bench:
    """Which servers each figure is taken on. ``host``: two servers, on one machine where
    the cluster has a machine with two (``share`` 2: the host's figures are taken as its
    tasks share it), else on two machines (``share`` 1); ``links``: two servers for each
    kind of link the cluster has (``same_host``, ``network``); ``third``: another server,
    for a loop across three."""

    host: tuple[Server, Server]
    share: int
    links: dict[str, tuple[Server, Server]]
    third: Server | None


class CalibrateError(Exception):
    """A cluster calibrate cannot measure on."""


def bench_of(servers: list[Server]) -> Bench:
    """The servers each figure is taken on, of a cluster's ``servers`` (in task order)."""
    by: dict[str, list[Server]] = {}
    for s in servers:
        by.setdefault(s.machine, []).append(s)
    links: dict[str, tuple[Server, Server]] = {}
    shared = next((two for two in by.values() if len(two) >= 2), None)
    if shared:
        links["same_host"] = (shared[0], shared[1])
    if len(by) >= 2:
        first, second = list(by.values())[:2]
        links["network"] = (first[0], second[0])
    if not links:
        raise CalibrateError(
            "the cluster has one task: calibrate measures between two (give a spec whose cluster has two or more)"
        )
    host = links.get("same_host") or links["network"]
    third = next((s for s in servers if s not in host), None)
    return Bench(host, 2 if shared else 1, links, third)


def _servers(cluster) -> list[Server]:
    """The servers of a started cluster: a local one (its processes are this machine's) or
    a remote one (each says its host and process in its identity)."""
    me = socket.gethostname()
    ids = getattr(cluster, "identities", None)
    out = []
    for k, t in enumerate(cluster.tasks):
        device = f"/job:{t.job}/task:{t.index}/device:CPU:0"
        if ids:
            host = str(ids[k]["host"])
            out.append(Server(device, host, int(ids[k]["pid"]) if host == me else None))
        else:
            out.append(Server(device, me, t.process.pid if t.process is not None else None))
    return out


def calibrate(
    repeats: int = 7,
    progress: Callable[[str], None] | None = None,
    programs: Iterable = (),
    base: bool = True,
    cluster: Any = None,
) -> dict:
    """Measure; returns the profile's content (a mapping for YAML) with a ``taken`` section
    (the machine, the versions, the date) and a ``notes`` list (what each figure is).
    ``programs``: compiled IR graphs whose compute nodes' kernels are timed too (their
    number of distinct kernels is :func:`kernel_count`'s); ``base=False``: those alone
    (for :func:`merge_kernels` into a profile that has the rest). ``cluster``: the servers
    to measure on, a started ``RemoteCluster`` (``dfc serve`` on each host), stopped here;
    by default a local cluster of three."""
    import numpy as np
    import tensorflow as tf

    from .. import __version__
    from ..lang import load_spec_text
    from ..runtime.cluster import LocalCluster

    say = progress or (lambda _: None)
    tf.compat.v1.disable_eager_execution()
    first_run_cluster = "{worker: {tasks: 2}}"
    if cluster is None:
        spec = load_spec_text(SPEC.encode(), "calibrate.yaml", local=True)
        cluster = LocalCluster(spec).start()
    else:  # the first-run program runs on the cluster's own jobs
        jobs = cluster.layout.cluster_dict()
        first_run_cluster = "{" + ", ".join(f"{j}: {{tasks: {len(a)}}}" for j, a in jobs.items()) + "}"
    notes: list[str] = []
    out: dict = {}
    try:
        bench = bench_of(_servers(cluster))
        if base:
            out.update(_Base(tf, cluster.target, bench, repeats, say, notes).measure())
            out.update(_first_runs(tf, cluster.target, first_run_cluster, say, notes))
        kernels = _kernels(tf, cluster.target, [s.device for s in bench.host], repeats, say, programs)
        if kernels:
            out["kernels"] = kernels
            out["kernel_tasks"] = bench.share
            where = "two servers of one host at once" if bench.share == 2 else "two servers, one a host, at once"
            notes.append(
                f"kernels: {sum(map(len, kernels.values()))} sizes of {len(kernels)} ops, timed through dfc's "
                f"lowering, copies on {where} (kernel_tasks: {bench.share}) and on one alone, less a run of nothing"
            )
    except tf.errors.OpError as e:  # a server died, or did not answer within a call's deadline
        lines = [ln for ln in (e.message or "").splitlines() if ln.strip() and "Graph execution error" not in ln]
        first = lines[0] if lines else ""
        raise CalibrateError(f"a server failed while calibrate measured ({type(e).__name__}: {first})") from None
    finally:
        cluster.stop()
    unmeasured = ["integer and bool rates", "GPUs", "same_task"]
    unmeasured += [name for name in ("same_host", "network") if name not in bench.links]
    if bench.third is None:
        unmeasured.append("loop_overhead_task")
    notes.append(f"not measured here (built-in defaults): {', '.join(unmeasured)}")
    here = bench.host[0].machine == socket.gethostname()
    out["taken"] = {
        "host": bench.host[0].machine,
        "cpu": _cpu_model() if here else "(not read: another machine than the client's)",
        "cores": (os.cpu_count() or 1) if here else "(not read: another machine than the client's)",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dfc": __version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    out["notes"] = notes
    return out


def _fig(x: float) -> float:
    return float(f"{x:.4g}")


class _Base:
    """The figures of the host and its links, from one graph on the calibration cluster."""

    N = 1024  # matmul tiles: n x n
    M = 4 * 2**20  # float64 elements of the vectors added: 32 MiB
    # float64 elements sent whole from one server to the other: 1 to 128 MiB (the CPU per
    # byte is read during the 64 MiB ones, the bandwidth from the slope from 16 MiB up)
    SIZES = (2**17, 2**19, 2**21, 2**23, 2**24)
    OPS = (1, 101)  # a chain of scalar products on one server: two ops a link
    HOPS = (1, 33)  # a scalar passed back and forth between two servers
    FAN = (1, 65)  # scalars sent from one server to the other at once
    LOOPS = (10, 210)  # iterations of a while loop across two and three servers

    def __init__(self, tf, target: str, bench: Bench, repeats: int, say, notes: list[str]):
        self.tf, self.target, self.bench, self.repeats, self.say, self.notes = tf, target, bench, repeats, say, notes
        self.run_overhead = 0.0
        # the loops: across the host's two servers, and the third where there is one
        self.loops = [*bench.host] + ([bench.third] if bench.third else [])

    def build(self) -> tuple:
        tf, n = self.tf, self.N
        host = [s.device for s in self.bench.host]
        graph = tf.Graph()
        runs: dict[str, object] = {}
        with graph.as_default():
            for dtype in ("float32", "float64", "complex64", "complex128"):
                parts = []
                for d in host:
                    with tf.device(d):
                        re = tf.random.stateless_uniform([n, n], seed=[1, 2], dtype=tf.float64)
                        a = tf.Variable(tf.cast(re, dtype) if "complex" not in dtype else tf.complex(re, re))
                        a = tf.cast(a, dtype)
                        parts.append(tf.reduce_sum(tf.abs(tf.linalg.matmul(a, a))))
                runs[f"matmul-{dtype}"] = parts  # fetched: a group of them may be pruned
            adds = []
            for d in host:
                with tf.device(d):
                    x, y = tf.Variable(tf.ones([self.M], tf.float64)), tf.Variable(tf.ones([self.M], tf.float64))
                    adds.append(tf.reduce_sum(x + y))
            runs["add"] = adds
            scalars = {}
            for s in {*self.loops, *(s for pair in self.bench.links.values() for s in pair)}:
                with tf.device(s.device):
                    scalars[s] = tf.Variable(1.0, dtype=tf.float64)
            # chains of products by variables' values, each a variable of its own: a chain of
            # sines, or of products by one variable, Grappler's optimizers shorten
            with tf.device(host[0]):
                factors = [tf.Variable(1.0 + j / 1e6, dtype=tf.float64) for j in range(max(self.OPS))]
                for k in self.OPS:
                    x = scalars[self.bench.host[0]].read_value()
                    for f in factors[:k]:
                        x = x * f.read_value()
                    runs[f"ops-{k}"] = x
            for name, pair in self.bench.links.items():
                for k in self.HOPS:
                    x = scalars[pair[0]].read_value()
                    for j in range(k):
                        with tf.device(pair[(j + 1) % 2].device):
                            x = x * scalars[pair[(j + 1) % 2]].read_value()
                    runs[f"{name}:hops-{k}"] = x
                for k in self.FAN:
                    with tf.device(pair[0].device):
                        sent = [scalars[pair[0]].read_value() * (j + 1.0) for j in range(k)]
                    with tf.device(pair[1].device):
                        runs[f"{name}:fan-{k}"] = tf.add_n(sent) if k > 1 else sent[0] + 0.0
                for size in self.SIZES:
                    with tf.device(pair[0].device):
                        sent = tf.Variable(tf.zeros([size], tf.float64)).read_value()
                    with tf.device(pair[1].device):
                        runs[f"{name}:send-{size}"] = sent[0]
            limit = tf.compat.v1.placeholder(tf.int32, [])
            for tasks in range(2, len(self.loops) + 1):

                def body(i, tasks=tasks):
                    ups = []
                    for s in self.loops[:tasks]:
                        with tf.device(s.device):
                            ups.append(scalars[s].assign_add(1.0))
                    with tf.control_dependencies(ups):
                        return i + 1

                with tf.device(host[0]):
                    runs[f"loop-{tasks}"] = tf.compat.v1.while_loop(lambda i: i < limit, body, [tf.constant(0)])
            init = tf.compat.v1.global_variables_initializer()
        return graph, runs, init, limit

    def measure(self) -> dict:
        from .profile import Profile

        tf, repeats, notes, share = self.tf, self.repeats, self.notes, self.bench.share
        graph, runs, init, limit = self.build()
        out: dict = {}
        config = tf.compat.v1.ConfigProto()
        config.operation_timeout_in_ms = 120_000
        v2 = tf.compat.v1.control_flow_v2_enabled()
        at_once = "two at once, one per server" + (" of one host" if share == 2 else ", each server a host")
        with tf.compat.v1.Session(self.target, graph=graph, config=config) as sess:
            sess.run(init)
            self.sess, self.runs = sess, runs
            measure = self.time
            flops = {}
            n = self.N
            for dtype in ("float32", "float64", "complex64", "complex128"):
                mm = measure(f"matmul-{dtype}", f"matmul {dtype}")
                flops[dtype] = share * (2 * n**3) / mm.median  # the model counts a matmul's 2n^3 in any dtype
                notes.append(_note(f"cpu_flops.{dtype}", f"{n}x{n} matmuls, {at_once}", mm))
            out["cpu_flops"] = {k: _fig(v) for k, v in flops.items()}
            add = measure("add", "memory bandwidth")
            out["cpu_mem_bandwidth"] = _fig(share * 3 * self.M * 8 / add.median)
            notes.append(_note("cpu_mem_bandwidth", f"x + y of 32 MiB float64 vectors, {at_once}", add))
            one, many = (measure(f"ops-{k}", "per-op overhead", 3 * repeats) for k in self.OPS)
            out["op_overhead"] = _fig(max(many.median - one.median, 0.0) / (2 * (self.OPS[1] - self.OPS[0])))
            notes.append(
                _note("op_overhead", f"a chain of {self.OPS[1]} scalar products (and reads) against one, per op", many)
            )
            self.run_overhead = one.median
            out["run_overhead"] = _fig(one.median)
            notes.append(_note("run_overhead", "a session.run of one scalar product", one))
            cpu: dict[str, float] = {}
            for name, pair in self.bench.links.items():
                out[name], per_byte = self.link(name, pair)
                if per_byte is not None:
                    cpu[name] = per_byte
            for name in self.bench.links:  # each end's CPU per byte: read where both ends are this machine's
                if name in cpu:
                    continue
                other = next(iter(cpu), None)
                guess = cpu[other] if other else getattr(Profile(), name).cpu
                out[name]["cpu"] = _fig(min(guess, 0.45 * out[name]["slope"]))
                notes.append(
                    f"{name}.cpu: not read (an end runs on another machine than the client's): "
                    + (f"{other}'s" if other else "the built-in default")
                )
            for name in self.bench.links:
                link = out[name]
                wire = max(link.pop("slope") - 2 * link["cpu"], 1e-13)
                out[name] = {"latency": link.pop("latency"), "bandwidth": _fig(1 / wire), **link}
            tf.compat.v1.disable_control_flow_v2()
            try:
                per: dict[int, float] = {}
                for tasks in range(2, len(self.loops) + 1):
                    a, b = (
                        measure(f"loop-{tasks}", f"loops across {tasks} servers", feed={limit: k}) for k in self.LOOPS
                    )
                    per[tasks] = max(b.median - a.median, 0.0) / (self.LOOPS[1] - self.LOOPS[0])
                    notes.append(_note(f"(loop across {tasks} servers)", f"{self.LOOPS[1]} iterations", b))
            finally:
                if v2:
                    tf.compat.v1.enable_control_flow_v2()
            out["loop_overhead"] = _fig(per[2])
            if 3 in per:
                out["loop_overhead_task"] = _fig(max(per[3] - per[2], 0.0))
            notes.append(
                "loop_overhead, loop_overhead_task: per iteration of a while loop across two servers, and a third"
            )
        return out

    def time(self, name: str, what: str, count: int = 0, feed: dict | None = None) -> Measure:
        """``count`` (else ``--repeats``) timed runs of ``runs[name]``, saying ``what``."""
        self.say(what)
        return timed(lambda: self.sess.run(self.runs[name], feed), count or self.repeats)

    def link(self, name: str, pair: tuple[Server, Server]) -> tuple[dict, float | None]:
        """The figures of the link between ``pair`` (its ``slope``: seconds per byte, ends
        included, for the bandwidth once the ends' CPU is known), and the CPU per byte
        each end spends, where both run on this machine (else None)."""
        measure, notes, one = self.time, self.notes, self.run_overhead
        where = "one host" if name == "same_host" else "two hosts"
        hop = [measure(f"{name}:hops-{k}", f"latency between servers of {where}", 3 * self.repeats) for k in self.HOPS]
        fan = [measure(f"{name}:fan-{k}", f"messages between servers of {where}", 3 * self.repeats) for k in self.FAN]
        pids = [s.pid for s in pair if s.pid is not None]
        sent: dict[int, Measure] = {}
        per_byte = None
        for size in self.SIZES:
            cpu0 = sum(_cpu_seconds(p) for p in pids)
            sent[size] = measure(f"{name}:send-{size}", f"sending {size * 8 >> 20} MiB between servers of {where}")
            if size == 2**23 and len(pids) == 2:
                per_byte = (sum(_cpu_seconds(p) for p in pids) - cpu0) / (2 * size * 8 * (len(sent[size].samples) + 1))
        whole: list[tuple[int, float]] = []  # each less a run's own overhead; a larger message never takes less
        for size, m in sent.items():
            whole.append((size * 8, max(m.median - one, whole[-1][1] if whole else 1e-7)))
        # the slope: a least-squares line through the sizes from 16 MiB (past the cache)
        big = [(b, t) for b, t in whole if b >= 16 * 2**20]
        mb, mt = statistics.fmean(b for b, _ in big), statistics.fmean(t for _, t in big)
        slope = sum((b - mb) * (t - mt) for b, t in big) / sum((b - mb) ** 2 for b, _ in big)
        slope = max(slope, whole[-1][1] / whole[-1][0] / 2)
        # the model runs the two ends one after the other; they overlap (gRPC sends in
        # chunks), so neither end's share may pass half the whole
        if per_byte is not None:
            per_byte = min(per_byte, 0.45 * slope)
        gap = max(fan[1].median - fan[0].median, 0.0) / (self.FAN[1] - self.FAN[0])
        latency = max((hop[1].median - hop[0].median) / (self.HOPS[1] - self.HOPS[0]) - gap, 0.0)
        out = {
            "latency": _fig(latency),
            "slope": slope,
            "cpu": _fig(per_byte) if per_byte is not None else 0.0,
            "gap": _fig(gap),
            "sizes": [[b, _fig(t)] for b, t in whole],
        }
        notes.append(
            _note(
                f"{name}.latency",
                f"a scalar passed between servers of {where} {self.HOPS[1]} times, per hop, less the gap",
                hop[1],
            )
        )
        notes.append(_note(f"{name}.gap", f"{self.FAN[1]} scalars sent at once, per message", fan[1]))
        for size, m in sent.items():
            notes.append(_note(f"{name}.sizes", f"{size * 8 >> 20} MiB from one server to the other", m))
        notes.append(
            f"{name}.sizes: each less a run's overhead (never less than a smaller one's); bandwidth: the "
            "least-squares slope from 16 to 128 MiB less both "
            "ends' CPU (the wire's own); cpu: the servers' CPU seconds during the 64 MiB sends, per byte and "
            "end (at most 45 % of the slope: the two ends overlap)"
        )
        return out, per_byte


#: A program of ``M`` tasks of a few small ops each, once and in a loop: dfc's own lowering
#: of it, run twice, gives the time a graph's first run takes per IR node (TF partitions and
#: registers it; a loop's nodes cost more: its control flow is built in every partition).
FIRST_RUN = """dfc: 1
name: first-run
params: {M: 32}
cluster: CLUSTER
arrays:
  x: {shape: [M * 8], tile: [8], init: ones}
  y: {like: x, init: zeros, output: true}
"""
FIRST_RUN_ONCE = """tasks:
  f: {for: {i: M}, compute: "sin(x[i]) * 2 + x[(i + 1) % M]", out: "y[i]"}
"""
FIRST_RUN_LOOP = """loop:
  max: 1000
  steps:
    - {name: f, for: {i: M}, compute: "sin(x[i]) * 2 + x[(i + 1) % M]", out: "y[i]"}
"""


def _first_runs(tf, target: str, cluster: str, say, notes: list[str]) -> dict:
    """``first_run``, ``first_run_node`` and ``first_run_loop``, ``first_run_loop_node``:
    the seconds a graph's first ``session.run`` takes over its later runs (the median of
    three sessions), fixed and per IR node it builds: the line through two sizes of
    :data:`FIRST_RUN`, its tasks once and in a loop (one iteration a run), on ``cluster``
    (its jobs: a YAML flow mapping)."""
    from ..ir.node import each_node
    from ..lang import load_spec_text
    from ..lower import lower
    from ..passes import compile_spec
    from ..runtime.tf_engine import session_config
    from .simulate import UNBUILT

    out = {}
    for key, body, scope in (("first_run_node", FIRST_RUN_ONCE, ""), ("first_run_loop_node", FIRST_RUN_LOOP, "loop")):
        cost = []
        for m in (32, 128):
            say(f"first runs of a graph of {m} tasks" + (" in a loop" if scope else ""))
            text = FIRST_RUN.replace("M: 32", f"M: {m}").replace("CLUSTER", cluster) + body
            g = compile_spec(load_spec_text(text.encode(), "first-run.yaml", local=True))
            nodes = sum(1 for n in each_node(g) if n.kind not in UNBUILT and n.scope == scope)
            low = lower(g)
            fetch = low.loop if scope else low.prologue
            feed = {low.chunk: 1} if scope and low.chunk is not None else None
            if scope and low.done is not None:
                feed = {**(feed or {}), low.done: 0}
            extra = []
            for _ in range(3):  # each session partitions and registers the graph anew
                with tf.compat.v1.Session(target, graph=low.graph, config=session_config(tf, g, 120)) as sess:
                    sess.run(low.init)
                    t = time.perf_counter()
                    sess.run(fetch, feed)
                    first = time.perf_counter() - t
                    extra.append(first - timed(lambda: sess.run(fetch, feed), 3).median)
            cost.append((nodes, statistics.median(extra)))
        (n0, t0), (n1, t1) = cost
        out[key] = per = _fig(max(t1 - t0, 0.0) / (n1 - n0))
        out[key.replace("_node", "")] = _fig(max(t0 - per * n0, 0.0))  # and a graph's, whatever its size
        notes.append(
            f"{key}: a graph's first run over its later ones{' (a loop, one iteration a run)' if scope else ''}, "
            f"per IR node: {t0 * 1e3:.1f} ms for {n0} nodes, {t1 * 1e3:.1f} ms for {n1}"
        )
    return out


def merge_kernels(profile: dict, measured: dict) -> dict:
    """``profile`` (a profile file's mapping) with the kernels and notes of ``measured`` (a
    :func:`calibrate` of kernels alone) added: an entry of the same op, dtype and size is
    replaced, the others kept."""
    kernels = {op: list(entries) for op, entries in (profile.get("kernels") or {}).items()}
    for op, entries in measured.get("kernels", {}).items():
        mine = kernels.setdefault(op, [])
        for e in entries:
            same = [k for k in mine if (k["dtype"], k["bytes"], k["flops"]) == (e["dtype"], e["bytes"], e["flops"])]
            for k in same:
                mine.remove(k)
            mine.append(e)
    date = measured.get("taken", {}).get("date", "")
    notes = [
        *profile.get("notes", []),
        *(f"(added {date}) {n}" for n in measured.get("notes", []) if n.startswith("kernels")),
    ]
    return {**profile, "kernels": kernels, "kernel_tasks": measured.get("kernel_tasks", KERNEL_TASKS), "notes": notes}


def kernel_count(programs: Iterable) -> int:
    """The distinct kernels (op, dtype, bytes, flops) of the programs' compute nodes that
    :func:`calibrate` times."""
    return len(_signatures(programs))


def _signatures(programs: Iterable) -> dict:
    """signature -> (graph, node) of its first node, for each distinct compute kernel."""
    from ..ir.node import each_node
    from .kernels import signature

    out: dict = {}
    for g in programs:
        for n in each_node(g):
            if n.kind in ("compute", "reduce") and n.op and _inputs_made(g, n):
                out.setdefault(signature(n), (g, n))
    return out


def _inputs_made(g, n) -> bool:
    """Whether every input of ``n`` is a tensor or a number (a queue's items are not)."""
    return all(g.nodes[i]["node"].kind != "dequeue" for i in n.inputs)


#: The servers of one host a kernel's copies run on at once on the local cluster (a
#: profile's ``kernel_tasks``).
KERNEL_TASKS = 2
#: A kernel's copies on each server take about this long a run (fewer for large tiles).
KERNEL_RUN_SECONDS = 0.01
#: ... and their inputs hold at most this many bytes on each server.
KERNEL_BYTES = 2**28


def _kernels(tf, target: str, devs: list[str], repeats: int, say, programs: Iterable) -> dict:
    """op -> [{dtype, bytes, flops, seconds, alone}]: each distinct kernel of the programs,
    timed as ``copies`` copies on each of the two servers ``devs`` at once (``seconds``) and
    on the first while the other idles (``alone``: what the op gains from the whole host), with
    distinct inputs (nothing to merge), through dfc's lowering (``Lowering.apply``), less
    a run of nothing."""
    from ..lower.state import Lowering
    from ..runtime.tf_engine import session_config
    from .model import CostModel
    from .profile import Profile

    sigs = _signatures(programs)
    if not sigs:
        return {}
    rough = CostModel(Profile(), tuple(devs))
    out: dict[str, list] = {}
    for sig, (g, n) in sigs.items():
        say(f"kernel {n.op} {n.dtype} ({n.mem_bytes / 2**20:.2f} MiB)")
        ins = [g.nodes[i]["node"] for i in n.inputs]
        inbytes = sum(i.out_bytes for i in ins if i.kind != "const") or 1
        est = max(rough.compute(n, devs[0]), 1e-6)
        copies = int(max(1, min(64, KERNEL_RUN_SECONDS / est, KERNEL_BYTES / inbytes)))
        graph = tf.Graph()
        fetch: dict[str, list] = {d: [] for d in devs}
        # each kernel's variables in a container of their own (no name of another graph's)
        container = f"dfc-calibrate-{len(out)}-{sum(map(len, out.values()))}"
        with graph.as_default(), tf.compat.v1.container(container):
            L = Lowering(g, tf)
            for d in devs:
                for _ in range(copies):
                    with tf.device(d):
                        # an iteration number of each copy's own, read when run: a constant
                        # one, TF's graph optimizer folds with all that depends on it (rand)
                        L.iteration = tf.Variable(len(fetch[d]), name="iteration").read_value()
                        made = {
                            i.name: tf.Variable(_example(tf, i, len(fetch[d]) * 31 + k), name="in")
                            for k, i in enumerate(ins)
                            if i.kind != "const"
                        }

                        def value_of(name, want, made=made):
                            src = L.node(name)
                            if src.kind == "const":
                                return L.constant(src.data.value, want)
                            return L.cast(made[name].read_value(), want)

                        y: Any = L.apply(n, value_of)
                        fetch[d].append(_first_element(tf, y))
            # one number back from each server, that depends on every copy's result (ops
            # merely run, as a group's control inputs, Grappler prunes: stateless, unused)
            run, nothing = [], []
            for d in devs:
                with tf.device(d):
                    run.append(tf.add_n(fetch[d]))
                    nothing.append(tf.identity(tf.constant(0.0, tf.float64)))
            init = tf.compat.v1.global_variables_initializer()
            # the servers keep variables across sessions: each kernel's are freed once
            # timed (Session.reset would also close every session on the server: a
            # `dfc serve`'s own, and the client's keepalive)
            free = []
            for v in tf.compat.v1.global_variables():
                with tf.device(v.device):
                    free.append(tf.raw_ops.DestroyResourceOp(resource=v.handle, ignore_lookup_error=True))
        with tf.compat.v1.Session(target, graph=graph, config=session_config(tf, g, 120)) as sess:
            try:
                sess.run(init)
                both = timed(lambda: sess.run(run), repeats)
                alone = timed(lambda: sess.run(run[0]), repeats)
                base = timed(lambda: sess.run(nothing), repeats)
            finally:
                sess.run(free)
        out.setdefault(n.op, []).append(
            {
                "dtype": n.dtype,
                "bytes": n.mem_bytes,
                "flops": n.flops,
                "seconds": _fig(max(both.median - base.median, 1e-7) / copies),
                "alone": _fig(max(alone.median - base.median, 1e-7) / copies),
            }
        )
    return out


def _first_element(tf, y):
    """The first element of ``y`` as a float64 scalar (a cheap use of the whole result)."""
    first = tf.reshape(y, [-1])[0]
    if first.dtype.is_complex:
        first = tf.math.real(first)
    return tf.cast(first, tf.float64)


def _example(tf, n, seed: int):
    """An input like node ``n`` (shape, dtype), made on its server: uniform numbers, a
    square matrix symmetric and diagonally dominant (Cholesky, a solve take it), a mask
    half set."""
    shape = list(n.shape)
    x = tf.random.stateless_uniform(shape, seed=[seed, 7], dtype=tf.float64) + 0.5
    if n.dtype == "bool":
        return x < 1.0
    if len(shape) == 2 and shape[0] == shape[1]:
        x = (x + tf.transpose(x)) / 2 + shape[0] * tf.eye(shape[0], dtype=tf.float64)
    if n.dtype.startswith("complex"):
        return tf.cast(tf.complex(x, x / 3), n.dtype)
    return tf.cast(x, n.dtype or "float64")


def _note(key: str, how: str, m: Measure) -> str:
    refused = f", {m.refused} refused as spikes" if m.refused else ""
    return f"{key}: {how}; median of {len(m.kept)} runs{refused}, {m.median * 1e3:.3f} ms"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
