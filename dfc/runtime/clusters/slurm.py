"""A Slurm allocation as a cluster layout.

Policy (what ``srun dfc serve`` and the client in the batch script both compute, from the
same variables, so they agree without talking):

- **Nodes**: ``SLURM_STEP_NODELIST`` inside a step, else ``SLURM_JOB_NODELIST``, expanded
  as ``scontrol show hostnames`` does: ``node[01-04,07]`` keeps the zero padding of each
  range's first number, several bracket groups in one name (``rack[1-2]n[1-3]``) expand
  to every combination with the last group varying fastest; like Slurm, no text may
  follow the last group.
- **Tasks per node**: ``SLURM_STEP_TASKS_PER_NODE`` else ``SLURM_TASKS_PER_NODE``
  (``2(x3),1``: 2 on each of the first three nodes, then 1). Ranks are numbered node by
  node (Slurm's default block distribution): rank r runs on the node whose block holds
  it, as local rank ``r - first rank of that node``.
- **Rank -> (job, task)**: the ranks are taken local rank by local rank across the nodes
  (every node's local rank 0, then every node's local rank 1, ...), and the spec's jobs
  fill them in the order the spec declares them, task 0 first. So consecutive tasks of a
  job land on different nodes: a job's tasks are spread over the allocation, never
  stacked on its first node while the others idle. Ranks beyond the spec's tasks idle.
- **Ports**: ``base + local rank``: tasks that share a node never collide, and each task's
  address follows from the layout alone. The base is ``DFC_PORT_BASE`` if set, else
  ``PORT_FLOOR + (SLURM_JOB_ID mod JOB_SLOTS) * PORTS_PER_JOB``: two jobs that share a
  node (an oversubscribed partition) take different ports unless their ids differ by a
  multiple of JOB_SLOTS, all below Linux's ephemeral range (32768 up), where outgoing
  connections take theirs. More than PORTS_PER_JOB tasks on a node need DFC_PORT_BASE.

TensorFlow's ``SlurmClusterResolver`` does the expansion too, but takes one bracket group
per name and nothing after it, and counts GPUs per node rather than per task
(tensorflow#36094); a task's GPUs here are its own step binding (``gpus_of_this_task``).
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Mapping

from . import ClusterSourceError, Layout, TaskSlot

#: the first port of the tasks on a node in a cluster file (the next tasks take the next ports)
DEFAULT_PORT_BASE = 28500
#: a Slurm job's ports: PORTS_PER_JOB of them, in one of JOB_SLOTS slots from PORT_FLOOR
PORT_FLOOR, PORTS_PER_JOB, JOB_SLOTS = 20000, 64, 192


def expand_nodelist(text: str) -> list[str]:
    """``node[01-03,07],login1`` -> ``['node01', 'node02', 'node03', 'node07', 'login1']``."""
    hosts: list[str] = []
    for name in _split_top(text):
        hosts.extend(_expand_name(text, name))
    return hosts


def _split_top(text: str) -> list[str]:
    """The names of a node list: split at commas outside brackets."""
    names, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "[":
            if depth:
                raise ClusterSourceError(f"node list '{text}': a '[' inside brackets at column {i + 1}")
            depth = 1
        elif c == "]":
            if not depth:
                raise ClusterSourceError(f"node list '{text}': a ']' without its '[' at column {i + 1}")
            depth = 0
        elif c == "," and not depth:
            names.append(text[start:i])
            start = i + 1
    if depth:
        raise ClusterSourceError(f"node list '{text}': a '[' is not closed")
    names.append(text[start:])
    for name in names:
        if not name.strip():
            raise ClusterSourceError(f"node list '{text}': an empty name")
    return [n.strip() for n in names]


def _expand_name(text: str, name: str) -> list[str]:
    parts = re.split(r"(\[[^\]]*\])", name)  # literal, [group], literal, [group], ..., literal
    if len(parts) > 1 and parts[-1]:
        raise ClusterSourceError(
            f"node list '{text}': '{name}' has text after its last [...], which Slurm does not take"
        )
    choices = [[p] if not p.startswith("[") else _expand_group(text, p[1:-1]) for p in parts]
    return ["".join(c) for c in itertools.product(*choices)]


def _expand_group(text: str, group: str) -> list[str]:
    out: list[str] = []
    for item in group.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", item)
        if not m:
            raise ClusterSourceError(
                f"node list '{text}': '[{group}]' holds '{item}', not a number or a range such as 01-04"
            )
        lo, hi = m[1], m[2] if m[2] is not None else m[1]
        if int(hi) < int(lo):
            raise ClusterSourceError(f"node list '{text}': the range {lo}-{hi} runs backwards")
        if int(hi) - int(lo) >= 1_000_000:
            raise ClusterSourceError(f"node list '{text}': the range {lo}-{hi} has over a million nodes")
        out.extend(str(i).zfill(len(lo)) for i in range(int(lo), int(hi) + 1))
    return out


def expand_tasks_per_node(text: str) -> list[int]:
    """``2(x3),1`` -> ``[2, 2, 2, 1]``."""
    out: list[int] = []
    for item in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:\(x(\d+)\))?\s*", item)
        if not m:
            raise ClusterSourceError(f"tasks per node '{text}': '{item}' is not a count such as 2 or 2(x3)")
        out.extend([int(m[1])] * int(m[2] or 1))
    return out


def _var(env: Mapping[str, str], *names: str) -> str:
    for name in names:
        if env.get(name, "").strip():
            return env[name]
    raise ClusterSourceError(
        f"{' or '.join(names)} is not set: --cluster slurm works inside a Slurm allocation (sbatch, salloc or srun)"
    )


def ranks(env: Mapping[str, str]) -> list[tuple[str, int]]:
    """Every rank's (node, local rank), in rank order (block distribution)."""
    nodes = expand_nodelist(_var(env, "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"))
    per_node = expand_tasks_per_node(_var(env, "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"))
    if len(per_node) != len(nodes):
        raise ClusterSourceError(f"{len(nodes)} node(s) in the node list but tasks per node for {len(per_node)}")
    return [(node, local) for node, count in zip(nodes, per_node) for local in range(count)]


def job_port_base(env: Mapping[str, str]) -> int:
    """The first port of this job's tasks on each node (see the module's policy)."""
    for name, slot in (("DFC_PORT_BASE", None), ("SLURM_JOB_ID", JOB_SLOTS)):
        text = env.get(name, "").strip()
        if text:
            if not text.isdigit():
                raise ClusterSourceError(f"{name}={text!r} is not a number")
            return int(text) if slot is None else PORT_FLOOR + int(text) % slot * PORTS_PER_JOB
    return PORT_FLOOR


def layout(env: Mapping[str, str], jobs: Mapping[str, int], port_base: int | None = None) -> Layout:
    """The layout of ``jobs`` (name -> tasks, in the spec's order) over the allocation."""
    where = ranks(env)
    most = 1 + max(local for _, local in where)
    if port_base is None and not env.get("DFC_PORT_BASE", "").strip() and most > PORTS_PER_JOB:
        raise ClusterSourceError(
            f"{most} tasks on one node, more than the {PORTS_PER_JOB} ports of a job's slot: "
            f"set DFC_PORT_BASE to a first port with {most} free after it"
        )
    port_base = job_port_base(env) if port_base is None else port_base
    need = sum(jobs.values())
    if need > len(where):
        raise ClusterSourceError(
            f"the spec's cluster has {need} tasks ({', '.join(f'{n} {j!r}' for j, n in jobs.items())}) but the "
            f"allocation runs {len(where)}: ask for at least {need} tasks (sbatch --ntasks={need})"
        )
    if not 1 <= port_base <= 65535 - max(local for _, local in where):
        raise ClusterSourceError(f"port base {port_base}: the ports must stay within 1-65535")
    spread = sorted(range(len(where)), key=lambda r: (where[r][1], r))  # local rank 0 everywhere first
    slots = iter(spread)
    tasks = []
    for job, count in jobs.items():
        for index in range(count):
            r = next(slots)
            node, local = where[r]
            tasks.append(TaskSlot(job, index, node, port_base + local, rank=r))
    idle = tuple(f"rank {r} on {where[r][0]}" for r in sorted(slots))
    return Layout("slurm", tuple(tasks), idle)


def this_rank(env: Mapping[str, str]) -> int:
    """The rank of this process (``SLURM_PROCID``), inside a step."""
    text = _var(env, "SLURM_PROCID")
    if not text.strip().isdigit():
        raise ClusterSourceError(f"SLURM_PROCID={text!r} is not a rank")
    return int(text)


def gpus_of_this_task(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The GPUs Slurm bound to this task: its ``CUDA_VISIBLE_DEVICES`` (set per task by
    ``--gpus-per-task`` / ``--gpu-bind``), else the step's ``SLURM_STEP_GPUS``; () if none."""
    for name in ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS"):
        value = env.get(name)
        if value is not None and value.strip() not in ("", "NoDevFiles"):
            return tuple(g.strip() for g in value.split(",") if g.strip())
    return ()
