"""Devices of a spec's cluster, as TensorFlow names them."""

from __future__ import annotations

import functools

from ..spec.model import Location, Spec


def device_name(job: str, task: int, kind: str = "cpu") -> str:
    return f"/job:{job}/task:{task}/device:{'GPU' if kind == 'gpu' else 'CPU'}:0"


def devices(spec: Spec) -> tuple[str, ...]:
    """Every device of the cluster: one per task (its GPU when the job has GPUs)."""
    return tuple(device_name(j.name, t, j.device) for j in spec.cluster.values() for t in range(j.tasks))


def allowed(spec: Spec, loc: Location | None) -> tuple[str, ...]:
    """The devices a location allows (empty: any device)."""
    if loc is None or loc.job not in spec.cluster:
        return ()
    job = spec.cluster[loc.job]
    tasks = range(job.tasks) if loc.task is None else [loc.task]
    return tuple(device_name(job.name, t, job.device) for t in tasks)


def job_of(device: str) -> str:
    return device.split("/")[1].removeprefix("job:")


@functools.lru_cache(maxsize=4096)
def task_of(device: str) -> tuple[str, int]:
    parts = device.split("/")
    return parts[1].removeprefix("job:"), int(parts[2].removeprefix("task:"))


@functools.lru_cache(maxsize=4096)
def short(device: str) -> str:
    """'/job:worker/task:1/device:CPU:0' -> 'worker:1' (with ':gpu' for GPUs)."""
    job, task = task_of(device)
    return f"{job}:{task}" + (":gpu" if "GPU" in device else "")
