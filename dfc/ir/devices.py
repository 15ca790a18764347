"""Devices of a spec's cluster, as TensorFlow names them."""

from __future__ import annotations

import functools

from ..lang.model import Location, Spec


def device_name(job: str, task: int, kind: str = "cpu", index: int = 0) -> str:
    return f"/job:{job}/task:{task}/device:{'GPU' if kind == 'gpu' else 'CPU'}:{index}"


def task_devices(job, task: int) -> tuple[str, ...]:
    """The devices a task computes on: its CPU, or its ``gpus`` GPUs (GPU:0, GPU:1, ...)."""
    if job.device == "gpu":
        return tuple(device_name(job.name, task, "gpu", i) for i in range(job.gpus))
    return (device_name(job.name, task),)


def devices(spec: Spec) -> tuple[str, ...]:
    """Every device of the cluster: one per task, or its ``gpus`` GPUs when the job has GPUs."""
    return tuple(d for j in spec.cluster.values() for t in range(j.tasks) for d in task_devices(j, t))


def allowed(spec: Spec, loc: Location | None) -> tuple[str, ...]:
    """The devices a location allows (empty: any device)."""
    if loc is None or loc.job not in spec.cluster:
        return ()
    job = spec.cluster[loc.job]
    tasks = range(job.tasks) if loc.task is None else [loc.task]
    return tuple(d for t in tasks for d in task_devices(job, t))


def job_of(device: str) -> str:
    return device.split("/")[1].removeprefix("job:")


@functools.lru_cache(maxsize=4096)
def task_of(device: str) -> tuple[str, int]:
    parts = device.split("/")
    return parts[1].removeprefix("job:"), int(parts[2].removeprefix("task:"))


@functools.lru_cache(maxsize=4096)
def short(device: str) -> str:
    """'/job:worker/task:1/device:CPU:0' -> 'worker:1' (with ':gpu' for GPU:0, ':gpu1' for GPU:1, ...)."""
    job, task = task_of(device)
    if "GPU" not in device:
        return f"{job}:{task}"
    index = device.rsplit(":", 1)[1]
    return f"{job}:{task}:gpu" + (index if index != "0" else "")
