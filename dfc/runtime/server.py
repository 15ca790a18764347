"""One TensorFlow server of a dfc cluster: ``python -m dfc.runtime.server``.

Started by ``dfc run`` for the local cluster (one per task) or by hand on each node of a
static cluster (``dfc serve``). Prints ``ready`` once listening. It exits when its parent
dies (so a killed ``dfc`` never leaves servers behind), on SIGTERM, or on SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dfc-server", description="one task of a dfc TensorFlow cluster")
    p.add_argument(
        "--cluster",
        default=os.environ.get("DFC_CLUSTER"),
        help="cluster spec as JSON: job -> list of host:port (default: $DFC_CLUSTER)",
    )
    p.add_argument("--job", required=True)
    p.add_argument("--task", type=int, required=True)
    p.add_argument("--intra", type=int, default=1, help="intra-op threads")
    p.add_argument("--inter", type=int, default=2, help="inter-op threads")
    p.add_argument("--watch-parent", action="store_true", help="exit when the parent process dies")
    a = p.parse_args(argv)
    if not a.cluster:
        p.error("give --cluster JSON or set DFC_CLUSTER")
    if a.watch_parent:
        threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    # SIGTERM keeps its default action (terminate now): a Python handler could not run
    # while server.join() blocks in C++.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=a.intra, inter_op_parallelism_threads=a.inter)
    server = tf.distribute.Server(
        tf.train.ClusterSpec(json.loads(a.cluster)), job_name=a.job, task_index=a.task, config=config, start=True
    )
    print("ready", flush=True)
    try:
        server.join()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
