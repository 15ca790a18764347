"""Which GPUs each task's server sees, and when tasks share one.

Policy:

- A CPU task sees no GPU (``CUDA_VISIBLE_DEVICES=""``): a TensorFlow process takes memory
  on every GPU it can see, and a parameter server or a reducer has no use for it.
- A GPU task of a job with ``gpus: k`` sees k GPUs, as ``GPU:0`` .. ``GPU:k-1``. The GPU
  tasks of one machine take the GPUs it shows them in turn, in task order: the first task
  GPUs 0..k-1, the next k..2k-1, wrapping around when there are more GPU slots than GPUs.
  What a machine shows a task is what its resource manager bound to it (Slurm's per-task
  ``CUDA_VISIBLE_DEVICES``, else the step's ``SLURM_STEP_GPUS``), else every GPU there:
  a task bound to exactly k GPUs keeps them. (TensorFlow's ``SlurmClusterResolver`` gives
  every task all of its node's GPUs: tensorflow#36094.)
- A GPU that several tasks see gets memory growth in each of them
  (``TF_FORCE_GPU_ALLOW_GROWTH``): TensorFlow takes nearly all of a GPU's memory at its
  first op otherwise, and the second process on it fails (seed 000 §II-A). Tasks bound to
  GPUs of their own that the machine numbers alike (``0`` in each task's view) cannot be
  told from tasks sharing one, and get memory growth too: it costs some fragmentation,
  never a failure.
- A task that wants more GPUs than its machine shows is an error, before any server starts.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence


class GPUError(Exception):
    """A task cannot have the GPUs its job asks for; the message says why."""


def machine_gpus(env: Mapping[str, str]) -> list[str]:
    """The GPUs this machine shows its processes: ``CUDA_VISIBLE_DEVICES`` when set, else
    every GPU nvidia-smi lists."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return [g.strip() for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    from ..lang.checks import local_gpu_memory

    return [str(i) for i in range(len(local_gpu_memory()))]


def assign(gpus: Sequence[str], wants: Sequence[int]) -> list[tuple[list[str], bool]]:
    """For the GPU tasks of one machine, in task order, each wanting ``wants[i]`` GPUs of
    ``gpus``: the GPUs each sees, and whether another task sees one of them too."""
    if wants and not gpus:
        raise GPUError(
            "the spec's jobs with `device: gpu` need GPUs, but this machine shows its processes "
            "none (nvidia-smi lists none, or CUDA_VISIBLE_DEVICES is empty): run where the GPUs are, "
            "or make the jobs `device: cpu`"
        )
    if wants and max(wants) > len(gpus):
        raise GPUError(
            f"a task wants {max(wants)} GPUs but this machine shows {len(gpus)} ({', '.join(gpus)}): "
            "lower `gpus:`, or run where the GPUs are"
        )
    slots, k = [], 0
    for w in wants:
        slots.append([gpus[(k + i) % len(gpus)] for i in range(w)])
        k += w
    seen = Counter(g for s in slots for g in s)
    return [(s, any(seen[g] > 1 for g in s)) for s in slots]


def server_env(gpus: Sequence[str] | None, shared: bool) -> dict[str, str]:
    """The environment a server needs to see ``gpus`` (None: a CPU task, no GPU)."""
    env = {"CUDA_VISIBLE_DEVICES": ",".join(gpus or ())}
    if shared:
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    return env


def for_served_task(spec, layout, me, env: Mapping[str, str], bound: Sequence[str] = ()) -> dict[str, str]:
    """The GPU environment of ``dfc serve``'s task ``me`` (a TaskSlot of ``layout``): its
    turn of ``bound`` (the GPUs the resource manager bound to it), else of the machine's."""
    from .clusters import machine_of

    if spec.cluster[me.job].device != "gpu":
        return server_env(None, False)
    here = [
        t for t in layout.tasks if machine_of(t.host) == machine_of(me.host) and spec.cluster[t.job].device == "gpu"
    ]
    gpus = list(bound) or machine_gpus(env)
    assign(gpus, [spec.cluster[me.job].gpus])  # this task's own want: an error if it cannot have it
    # the others' turns only place this one (what they see is theirs to check)
    turns = assign(gpus, [min(spec.cluster[t.job].gpus, len(gpus)) for t in here])
    return server_env(*turns[here.index(me)])
