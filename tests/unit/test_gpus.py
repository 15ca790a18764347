"""Which GPUs each task sees (dfc/runtime/gpus.py): `gpus: k` gives a task k GPUs, tasks of
one machine take them in turn, a GPU seen by several tasks gets memory growth, CPU tasks
see none, and a machine without enough GPUs is an error before anything starts."""

from __future__ import annotations

import pytest

from dfc.ir.devices import devices, short
from dfc.lang import load_spec_text
from dfc.runtime.clusters import Layout, TaskSlot
from dfc.runtime.gpus import GPUError, assign, for_served_task, server_env


def spec(cluster: str):
    return load_spec_text(
        f"dfc: 1\nname: g\ncluster: {cluster}\narrays:\n  x: {{shape: [8], dtype: float32}}\n".encode(),
        "g.yaml",
        local=False,
    )


def test_tasks_take_the_gpus_in_turn_and_shared_ones_grow():
    assert assign(["0", "1", "2", "3"], [2, 2]) == [(["0", "1"], False), (["2", "3"], False)]
    assert assign(["0", "1"], [1, 1, 1]) == [(["0"], True), (["1"], False), (["0"], True)]
    assert server_env(["0"], True) == {"CUDA_VISIBLE_DEVICES": "0", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    assert server_env(None, False) == {"CUDA_VISIBLE_DEVICES": ""}  # a CPU task sees no GPU
    with pytest.raises(GPUError, match="a task wants 3 GPUs but this machine shows 2"):
        assign(["0", "1"], [3])
    with pytest.raises(GPUError, match="shows its processes none"):
        assign([], [1])


def test_gpus_k_gives_each_task_k_devices():
    s = spec("{ps: {tasks: 1}, worker: {tasks: 2, device: gpu, gpus: 2}}")
    assert [short(d) for d in devices(s)] == ["ps:0", "worker:0:gpu", "worker:0:gpu1", "worker:1:gpu", "worker:1:gpu1"]
    assert devices(s)[2] == "/job:worker/task:0/device:GPU:1"


def test_a_served_task_takes_its_turn_of_its_machines_gpus():
    s = spec("{ps: {tasks: 1}, worker: {tasks: 3, device: gpu}}")
    tasks = (
        TaskSlot("ps", 0, "n1", 1),
        TaskSlot("worker", 0, "n1", 2),
        TaskSlot("worker", 1, "n2", 1),
        TaskSlot("worker", 2, "n1", 3),
    )
    lay = Layout("file", tasks)
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert for_served_task(s, lay, tasks[0], env) == {"CUDA_VISIBLE_DEVICES": ""}
    assert for_served_task(s, lay, tasks[1], env) == {"CUDA_VISIBLE_DEVICES": "0"}
    assert for_served_task(s, lay, tasks[3], env) == {"CUDA_VISIBLE_DEVICES": "1"}  # n1's second GPU task
    assert for_served_task(s, lay, tasks[2], env) == {"CUDA_VISIBLE_DEVICES": "0"}  # alone on n2
    # Slurm bound one GPU to the task (--gpus-per-task=1): it keeps it, grown in case another sees it too
    assert for_served_task(s, lay, tasks[3], {}, bound=("3",)) == {
        "CUDA_VISIBLE_DEVICES": "3",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    }


def test_validate_counts_gpu_memory_of_this_machines_gpus_shared_by_tasks(monkeypatch):
    from dfc.diagnostics import SpecError
    from dfc.lang import checks

    monkeypatch.setattr(checks, "local_gpu_memory", lambda: (2**30, 2**30))  # two GPUs of 1 GiB here
    text = (
        "dfc: 1\nname: g\ncluster: {worker: {tasks: 4, device: gpu}}\narrays:\n"
        "  A: {shape: [16384, 16384], dtype: float32, tile: [4096, 16384], on: worker}\n"
    )
    big = text.replace("16384, 16384", "65536, 16384").replace("4096,", "16384,").encode()  # 1 GiB per task
    with pytest.raises(SpecError) as info:
        load_spec_text(big, "g.yaml")
    assert "need 1.0 GiB per task but each task has 1 GPU of 1.0 GiB, each GPU shared by 2 tasks" in str(
        info.value.diagnostics
    )
    load_spec_text(text.encode(), "g.yaml")  # 256 MiB per task: fits half a GPU
    load_spec_text(big, "g.yaml", local=False)  # a plan: this machine's GPUs are not where it runs


def test_a_task_bound_to_its_gpus_is_not_refused_for_what_another_task_wants():
    s = spec("{a: {tasks: 1, device: gpu, gpus: 1}, b: {tasks: 1, device: gpu, gpus: 4}}")
    tasks = (TaskSlot("a", 0, "n1", 1), TaskSlot("b", 0, "n1", 2))
    assert for_served_task(s, Layout("slurm", tasks), tasks[0], {}, bound=("5",))["CUDA_VISIBLE_DEVICES"] == "5"
    with pytest.raises(GPUError, match="a task wants 4 GPUs but this machine shows 1"):
        for_served_task(s, Layout("slurm", tasks), tasks[1], {}, bound=("6",))


def test_a_local_cluster_without_the_gpus_asked_for_starts_nothing(monkeypatch):
    from dfc.runtime.cluster import ClusterError, LocalCluster

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    cluster = LocalCluster(spec("{worker: {tasks: 1, device: gpu, gpus: 2}}"))
    with pytest.raises(ClusterError, match="a task wants 2 GPUs but this machine shows 1 \\(0\\)"):
        cluster.spawn()
    assert cluster.tasks == [] and not cluster.logdir  # no server, no log folder
