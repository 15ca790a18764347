"""``dfc calibrate``: measure this machine's costs for the cost model and write a profile.

Measured on a local cluster of two real TensorFlow servers, as specs run (docs/compiler.md,
"Profiles"):

- ``cpu_flops`` (float32, float64, complex64, complex128): a matmul of 1024 x 1024 tiles on
  each server at once: the host's rate, shared by its tasks as the model shares it;
- ``cpu_mem_bandwidth``: an elementwise add of 32 MiB float64 vectors on each server at
  once (three vectors' bytes each);
- ``op_overhead``: a chain of 200 scalar sines against one, per op;
- ``same_host``: a tensor sent from one server to the other, 8 bytes (the latency), and
  16 and 64 MiB (the bandwidth: the slope between them), and the CPU both servers spend
  per byte (from /proc);

each the median of repeated runs, after a first run to warm up, with outliers refused: a
run slower than the median by more than five median absolute deviations (a timing spike:
StarPU's history model was corrupted by them, starpu#50) is left out, and the number left
out is written. What is not measured here keeps the built-in default, and says so: the
integer rates, the GPU's, the link within a task and the network between hosts (one
machine has none)."""

from __future__ import annotations

import datetime
import os
import platform
import socket
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

#: Where ``dfc calibrate`` writes a machine's profile and ``dfc plan``/``run`` look for it.
PROFILES_ENV = "DFC_PROFILES"

#: The measurements `calibrate` reports to its progress callback, one call each.
STEPS = 10

SPEC = """dfc: 1
name: calibrate
cluster: {worker: {tasks: 2}}
arrays:
  x: {shape: [2], init: zeros}
"""


def profiles_dir() -> Path:
    """``$DFC_PROFILES``, else ``$XDG_CONFIG_HOME/dfc/profiles`` (``~/.config/dfc/profiles``)."""
    if os.environ.get(PROFILES_ENV):
        return Path(os.environ[PROFILES_ENV])
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "dfc" / "profiles"


def machine_profile() -> Path:
    """The calibrated profile of this machine (by host name), whether it exists or not."""
    return profiles_dir() / f"{socket.gethostname()}.yaml"


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


def calibrate(repeats: int = 7, progress: Callable[[str], None] | None = None) -> dict:
    """Measure; returns the profile's content (a mapping for YAML) with a ``taken`` section
    (the machine, the versions, the date) and a ``notes`` list (what each figure is)."""
    import numpy as np
    import tensorflow as tf

    from .. import __version__
    from ..lang import load_spec_text
    from ..runtime.cluster import LocalCluster

    say = progress or (lambda _: None)
    tf.compat.v1.disable_eager_execution()
    spec = load_spec_text(SPEC.encode(), "calibrate.yaml", local=True)
    cluster = LocalCluster(spec).start()
    notes: list[str] = []
    out: dict = {}
    try:
        graph = tf.Graph()
        devs = [f"/job:worker/task:{i}/device:CPU:0" for i in range(2)]
        with graph.as_default():
            runs: dict[str, object] = {}
            n = 1024
            for dtype in ("float32", "float64", "complex64", "complex128"):
                parts = []
                for d in devs:
                    with tf.device(d):
                        re = tf.random.stateless_uniform([n, n], seed=[1, 2], dtype=tf.float64)
                        a = tf.Variable(tf.cast(re, dtype) if "complex" not in dtype else tf.complex(re, re))
                        a = tf.cast(a, dtype)
                        parts.append(tf.reduce_sum(tf.abs(tf.linalg.matmul(a, a))))
                runs[f"matmul-{dtype}"] = parts  # fetched: a group of them may be pruned
            m = 4 * 2**20  # float64 elements: 32 MiB
            adds = []
            for d in devs:
                with tf.device(d):
                    x, y = tf.Variable(tf.ones([m], tf.float64)), tf.Variable(tf.ones([m], tf.float64))
                    adds.append(tf.reduce_sum(x + y))
            runs["add"] = adds
            with tf.device(devs[0]):
                s = tf.Variable(1.0, dtype=tf.float64)
                v = s.read_value()
                one = tf.math.sin(v)
                chain = v
                for _ in range(200):  # sines of a variable: nothing for Grappler to fold or merge
                    chain = tf.math.sin(chain)
            runs["ops-1"], runs["ops-200"] = one, chain
            sizes = {"small": 1, "mid": 2 * 2**20, "large": 8 * 2**20}  # float64 elements: 8 B, 16 and 64 MiB
            for key, size in sizes.items():
                with tf.device(devs[0]):
                    src = tf.Variable(tf.zeros([size], tf.float64))
                    sent = src.read_value() + 0.0
                with tf.device(devs[1]):
                    runs[f"send-{key}"] = tf.reduce_sum(sent[:1])
            init = tf.compat.v1.global_variables_initializer()
        config = tf.compat.v1.ConfigProto()
        config.operation_timeout_in_ms = 120_000
        with tf.compat.v1.Session(cluster.target, graph=graph, config=config) as sess:
            sess.run(init)

            def measure(name: str, what: str, count: int = repeats) -> Measure:
                say(what)
                return timed(lambda: sess.run(runs[name]), count)

            flops = {}
            for dtype in ("float32", "float64", "complex64", "complex128"):
                mm = measure(f"matmul-{dtype}", f"matmul {dtype}")
                flops[dtype] = 2 * (2 * n**3) / mm.median  # the model counts a matmul's 2n^3 in any dtype
                notes.append(_note(f"cpu_flops.{dtype}", f"two {n}x{n} matmuls at once, one per server", mm))
            out["cpu_flops"] = {k: float(f"{v:.4g}") for k, v in flops.items()}
            add = measure("add", "memory bandwidth")
            out["cpu_mem_bandwidth"] = float(f"{2 * 3 * m * 8 / add.median:.4g}")
            notes.append(_note("cpu_mem_bandwidth", "x + y of 32 MiB float64 vectors on each server at once", add))
            one, many = (
                measure("ops-1", "per-op overhead", 3 * repeats),
                measure("ops-200", "per-op overhead", 3 * repeats),
            )
            out["op_overhead"] = float(f"{max(many.median - one.median, 0.0) / 199:.4g}")
            notes.append(_note("op_overhead", "a chain of 200 scalar sines against one, per op", many))
            notes.append(_note("(per session.run)", "one scalar sine: not in the model yet", one))
            small = measure("send-small", "latency between servers", 3 * repeats)
            mid = measure("send-mid", "bandwidth between servers")
            pids = [t.process.pid for t in cluster.tasks if t.process is not None]
            cpu0 = sum(_cpu_seconds(p) for p in pids)
            large = measure("send-large", "bandwidth between servers")
            cpu = sum(_cpu_seconds(p) for p in pids) - cpu0
            nbytes = sizes["large"] * 8
            sends = len(large.samples) + 1
            latency = max(small.median - one.median, 0.0)  # the run's own overhead is not the link's
            # the slope between 16 and 64 MiB: what each byte more costs, fixed costs apart
            slope = (large.median - mid.median) / ((sizes["large"] - sizes["mid"]) * 8)
            out["same_host"] = {
                "latency": float(f"{latency:.4g}"),
                "bandwidth": float(f"{1 / max(slope, 1e-12):.4g}"),
                "cpu": float(f"{cpu / (2 * nbytes * sends):.4g}"),
            }
            notes.append(
                _note(
                    "same_host.latency", "an 8-byte tensor from one server to the other, less a run's overhead", small
                )
            )
            notes.append(_note("same_host.bandwidth", "a 16 MiB tensor from one server to the other", mid))
            notes.append(_note("same_host.bandwidth", "a 64 MiB one (the bandwidth: the slope between the two)", large))
            notes.append("same_host.cpu: CPU seconds of both servers during the 64 MiB sends, per byte and end")
    finally:
        cluster.stop()
    notes.append("not measured here (built-in defaults): integer and bool rates, GPUs, same_task, network")
    out["taken"] = {
        "host": socket.gethostname(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 1,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dfc": __version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    out["notes"] = notes
    return out


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
