"""STREAM's ceiling on TensorFlow: a bare two-server ``assign_add`` (issue 14, item 4).

    python benchmarks/bare_stream.py MB REPS   # prints {"seconds": [...], "gbps": ...}

Two TensorFlow servers (ps:0 and worker:0, one process each, plain ``tf.distribute.Server``
through ``python -m dfc.runtime.server``), a float32 vector of MB MiB on the worker, an
accumulator on the ps, and ``acc.assign_add(v)`` placed on the ps, so that v crosses from
the worker to the ps on every run: what ``specs/stream.yaml`` does, without dfc's graph.
REPS session runs are timed after one warm-up run; the answer is checked. Servers are
stopped on the way out, also on failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from dfc.runtime.cluster import free_ports


def main(mb: int, reps: int) -> dict:
    ps, worker = free_ports(2)
    cluster = {"ps": [f"127.0.0.1:{ps}"], "worker": [f"127.0.0.1:{worker}"]}
    env = {**os.environ, "DFC_CLUSTER": json.dumps(cluster), "TF_CPP_MIN_LOG_LEVEL": "2"}
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "dfc.runtime.server", "--job", job, "--task", "0", "--intra", "1", "--watch-parent"],
            stdout=subprocess.PIPE,
            env=env,
        )
        for job in ("ps", "worker")
    ]
    try:
        for s in servers:
            assert s.stdout is not None and s.stdout.readline().strip() == b"ready"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import tensorflow as tf

        tf.compat.v1.disable_eager_execution()
        n = mb * 2**20 // 4
        with tf.device("/job:worker/task:0"):
            v = tf.compat.v1.get_variable("v", initializer=tf.ones([n], tf.float32), use_resource=True)
        with tf.device("/job:ps/task:0"):
            acc = tf.compat.v1.get_variable("acc", initializer=tf.zeros([n], tf.float32), use_resource=True)
            add = acc.assign_add(v).op
            first = acc[0]
        options = tf.compat.v1.RunOptions(timeout_in_ms=300_000)
        with tf.compat.v1.Session(f"grpc://127.0.0.1:{worker}") as sess:
            sess.run(tf.compat.v1.global_variables_initializer(), options=options)
            sess.run(add, options=options)  # warm-up: channels, allocations
            seconds = []
            for _ in range(reps):
                t = time.perf_counter()
                sess.run(add, options=options)
                seconds.append(time.perf_counter() - t)
            got = sess.run(first, options=options)
        if got != reps + 1:
            raise SystemExit(f"bare assign_add: acc[0] = {got}, expected {reps + 1}")
        return {"seconds": seconds, "gbps": mb * 2**20 * reps / sum(seconds) / 1e9}
    finally:
        for s in servers:
            s.kill()
            s.wait(timeout=10)


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))))
