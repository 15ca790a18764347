"""Per-iteration cost of the two ways to run a loop body on a TF cluster: one
``session.run`` per iteration (what dfc does) against one run of a ``tf.while_loop``.

    python benchmarks/loop_overhead.py [--iterations 300] [--sizes 1024,1048576]

The body is ``v += 1`` on a worker and a read of a scalar by the client each iteration
(as dfc fetches ``until``); the cluster is dfc's local cluster (a real server process).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from dfc.lang import load_spec_text  # noqa: E402
from dfc.runtime.cluster import LocalCluster  # noqa: E402

SPEC = b"dfc: 1\nname: loop\ncluster: {worker: {tasks: 1}}\n"


def measure(tf, target: str, n: int, iterations: int, repeats: int = 3) -> tuple[float, float]:
    g = tf.Graph()
    with g.as_default(), tf.device("/job:worker/task:0/device:CPU:0"):
        v = tf.compat.v1.Variable(tf.zeros([n], tf.float32), use_resource=True)
        step = v.assign_add(tf.ones([n], tf.float32), read_value=False)
        with tf.control_dependencies([step]):
            probe = tf.reduce_sum(v[:1])

        def body(i):
            with tf.control_dependencies([v.assign_add(tf.ones([n], tf.float32), read_value=False)]):
                return i + 1

        loop = tf.compat.v1.while_loop(lambda i: i < iterations, body, [tf.constant(0)], parallel_iterations=1)
        init = tf.compat.v1.global_variables_initializer()
    per_run, per_loop = [], []
    with tf.compat.v1.Session(target, graph=g) as sess:
        sess.run(init)
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(iterations):
                sess.run([step.op if hasattr(step, "op") else step, probe])
            per_run.append((time.perf_counter() - t) / iterations)
            t = time.perf_counter()
            sess.run(loop)
            per_loop.append((time.perf_counter() - t) / iterations)
    return statistics.median(per_run), statistics.median(per_loop)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--sizes", default="1024,1048576")
    a = p.parse_args()
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    with LocalCluster(load_spec_text(SPEC, "loop.yaml")) as cluster:
        print(f"{'floats':>10}  {'session.run/iter':>17}  {'while_loop/iter':>16}  ratio")
        for n in (int(s) for s in a.sizes.split(",")):
            run, loop = measure(tf, cluster.target, n, a.iterations)
            print(f"{n:>10}  {run * 1e6:>14.1f} us  {loop * 1e6:>13.1f} us  {run / loop:5.2f}")


if __name__ == "__main__":
    main()
