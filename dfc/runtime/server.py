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


#: the environment variable that gives a server its cluster (job -> addresses)
CLUSTER_ENV = "DFC_CLUSTER"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dfc-server", description="one task of a dfc TensorFlow cluster")
    p.add_argument(
        "--cluster",
        default=os.environ.get(CLUSTER_ENV),
        help=f"cluster spec as JSON: job -> list of host:port (default: ${CLUSTER_ENV})",
    )
    p.add_argument("--job")
    p.add_argument("--task", type=int)
    p.add_argument("--intra", type=int, default=1, help="intra-op threads")
    p.add_argument("--inter", type=int, default=2, help="inter-op threads")
    p.add_argument("--watch-parent", action="store_true", help="exit when the parent process dies")
    p.add_argument("--zygote", action="store_true", help="import TensorFlow once, fork servers (dfc/runtime/zygote.py)")
    a = p.parse_args(argv)
    if a.watch_parent:
        threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    # SIGTERM keeps its default action (terminate now): a Python handler could not run
    # while server.join() blocks in C++.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if a.zygote:
        from .zygote import main as zygote

        zygote()
    if not a.cluster or a.job is None or a.task is None:
        p.error(f"give --job, --task and --cluster JSON (or set ${CLUSTER_ENV})")
    name_process(a.job, a.task)
    import_tensorflow()
    return serve(json.loads(a.cluster), a.job, a.task, a.intra, a.inter)


def name_process(job: str, task: int) -> None:
    """Name this process 'dfc-JOB:TASK' (ps, top, /proc/PID/comm; 15 bytes at most)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(15, f"dfc-{job}:{task}".encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def import_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()


def group_leader(jobs) -> str:
    """The task that forms TensorFlow's collective groups (all-reduces, ``reduce: {via:
    collective}``): the first task of the first job by name. Every server and the client's
    session must name the same one."""
    return f"/job:{sorted(jobs)[0]}/replica:0/task:0"


def serve(cluster: dict, job: str, task: int, intra: int, inter: int, ready: str | None = None) -> int:
    """Start the server of ``job:task``, say ``ready`` (on standard output, or into the
    FIFO ``ready``), and serve until killed."""
    import tensorflow as tf

    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra, inter_op_parallelism_threads=inter)
    config.experimental.collective_group_leader = group_leader(cluster)
    server = tf.distribute.Server(
        tf.train.ClusterSpec(cluster), job_name=job, task_index=task, config=config, start=True
    )
    if ready is None:
        print("ready", flush=True)
    else:
        with open(ready, "w") as f:
            f.write("ready\n")
    try:
        server.join()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
