"""``TF_CONFIG`` as a cluster layout: TensorFlow's own convention,
``{"cluster": {"worker": ["host:port", ...], ...}, "task": {"type": "worker", "index": 0}}``.

Policy: the same checks as a cluster file (every job of the spec with exactly its tasks,
no job the spec lacks, no address twice), with the mistakes named by their place in the
JSON (``cluster.worker[1]``), since an environment variable has no lines. ``task`` is
this process's own (job, task) — what ``dfc serve`` serves — and must name a task of the
cluster; the client ignores it. The value is bounded like every input (64 KiB).
"""

from __future__ import annotations

import json
from typing import Mapping

from . import ClusterSourceError, Layout, TaskSlot, clash, machine_of, split_address

ENV = "TF_CONFIG"
MAX_CHARS = 64 * 1024


def parse(text: str) -> dict:
    if len(text) > MAX_CHARS:
        raise ClusterSourceError(f"{ENV} is {len(text)} characters; it may be at most {MAX_CHARS}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ClusterSourceError(f"{ENV} is not JSON: {e.msg} at character {e.pos + 1}") from None
    if not isinstance(value, dict) or not isinstance(value.get("cluster"), dict):
        raise ClusterSourceError(
            f'{ENV} must be {{"cluster": {{job: [host:port, ...]}}, "task": {{"type": job, "index": i}}}}'
        )
    return value


def layout(env: Mapping[str, str], jobs: Mapping[str, int]) -> Layout:
    """The layout in ``TF_CONFIG`` for ``jobs`` (name -> tasks)."""
    if not env.get(ENV, "").strip():
        raise ClusterSourceError(f"{ENV} is not set: --cluster tf_config reads the cluster from it")
    cluster = parse(env[ENV])["cluster"]
    errors: list = []
    tasks: list = []
    seen: dict = {}
    for job, addresses in cluster.items():
        if job not in jobs:
            errors.append(f"cluster.{job}: the spec has no job '{job}' (its jobs: {', '.join(jobs)})")
            continue
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            errors.append(f'cluster.{job}: give a list of "host:port" strings')
            continue
        if len(addresses) != jobs[job]:
            errors.append(f"cluster.{job}: {len(addresses)} task(s), but the spec's cluster gives '{job}' {jobs[job]}")
        for index, text in enumerate(addresses):
            address = split_address(text)
            if address is None:
                errors.append(f"cluster.{job}[{index}]: '{text}' is not host:port")
                continue
            host, port = address
            other, other_host = seen.setdefault((machine_of(host), port), (f"{job}:{index}", host))
            if other != f"{job}:{index}":
                errors.append(f"cluster.{job}[{index}]: {clash(host, f'{job}:{index}', other_host, other, port)}")
            tasks.append(TaskSlot(job, index, host, port))
    errors += [
        f"cluster: the spec's job '{job}' ({n} tasks) is missing" for job, n in jobs.items() if job not in cluster
    ]
    if errors:
        raise ClusterSourceError(f"{ENV}: " + "; ".join(errors))
    return Layout("tf_config", tuple(tasks))


def this_task(env: Mapping[str, str], lay: Layout) -> TaskSlot:
    """The task ``TF_CONFIG`` says this process is."""
    task = parse(env.get(ENV, "") or "{}").get("task")
    if not isinstance(task, dict) or not isinstance(task.get("type"), str) or type(task.get("index")) is not int:
        raise ClusterSourceError(f'{ENV} has no "task": {{"type": job, "index": i}} for this process')
    slot = next((t for t in lay.tasks if (t.job, t.index) == (task["type"], task["index"])), None)
    if slot is None:
        raise ClusterSourceError(f"{ENV}: task {task['type']}:{task['index']} is not in its cluster")
    return slot
