"""A cluster file as a cluster layout: ``dfc run --cluster FILE`` (issue 11).

```yaml
dfc: 1
jobs:
  ps: [node1:2222]                                    # one host:port per task, in order
  worker: {hosts: [node2, node3], tasks_per_host: 2}  # node2:28500, node2:28501, node3:28500, ...
links:                                                # optional, for the cost model
  network: {latency: 5.0e-6, bandwidth: 1.2e10}
```

Policy: the file is read bounded (it is small; a device or a FIFO is refused), checked
against ``schemas/cluster.schema.json``, then against the spec's cluster: every job of the
spec with exactly its tasks, no job the spec lacks, no address twice (hosts compared
without case, every loopback address one machine, where a TensorFlow server listens on its
port of every address). Every mistake is reported with its ``file:line:col``, all of them at once.
In the ``hosts`` form, tasks are numbered host by host and a host's tasks take
consecutive ports from ``port`` (default 28500).
"""

from __future__ import annotations

from typing import Mapping

from ...diagnostics import Diagnostic, Pos, SpecError, did_you_mean, sorted_unique
from ...inputs import InputError, read_bounded
from ...lang.schema import check_schema
from ...lang.yamlsrc import load_yaml
from . import Layout, TaskSlot, clash, machine_of, split_address
from .slurm import DEFAULT_PORT_BASE

#: a cluster file is a few lines per host
MAX_BYTES = 1 << 20


def load_cluster_file(path: str, jobs: Mapping[str, int]) -> Layout:
    """The layout in the cluster file ``path`` for ``jobs`` (name -> tasks); SpecError with
    every mistake."""
    try:
        data = read_bounded(path, MAX_BYTES, "a cluster file")
    except InputError as e:
        raise SpecError([Diagnostic(Pos(path), "no-file", str(e))]) from None
    return cluster_from_text(data, path, jobs)


def cluster_from_text(data: bytes, file: str, jobs: Mapping[str, int]) -> Layout:
    value, smap = load_yaml(file, data)
    if not isinstance(value, dict):
        raise SpecError(
            [
                Diagnostic(
                    smap.value(()),
                    "bad-type",
                    "a cluster file is a mapping: `dfc: 1` and `jobs:`",
                    "see docs/clusters.md",
                )
            ]
        )
    diags = check_schema(value, smap, "cluster")
    if diags:
        raise SpecError(sorted_unique(diags))
    errors: list[Diagnostic] = []
    tasks: list[TaskSlot] = []
    seen: dict[tuple[str, int], tuple[str, str]] = {}
    listed = value["jobs"]
    for job, entry in listed.items():
        if job not in jobs:
            errors.append(
                Diagnostic(
                    smap.key(("jobs", job)),
                    "unknown-job",
                    f"the spec has no job '{job}'",
                    did_you_mean(job, list(jobs)) or f"its jobs: {', '.join(jobs)}",
                )
            )
            continue
        before = len(errors)
        addresses = list(_addresses(job, entry, smap, errors))
        if len(errors) == before and len(addresses) != jobs[job]:
            errors.append(
                Diagnostic(
                    smap.value(("jobs", job)),
                    "task-count",
                    f"job '{job}' has {len(addresses)} task{'s' * (len(addresses) != 1)} here but the spec's "
                    f"cluster gives it {jobs[job]}",
                    f"list exactly {jobs[job]} address(es) for '{job}'",
                )
            )
        for index, (host, port, pos) in enumerate(addresses):
            label = f"{job}:{index}"
            other, other_host = seen.setdefault((machine_of(host), port), (label, host))
            if other != label:
                errors.append(
                    Diagnostic(
                        pos,
                        "duplicate-address",
                        clash(host, label, other_host, other, port),
                        "give each task of one machine its own port",
                    )
                )
            tasks.append(TaskSlot(job, index, host, port))
    for job in jobs:
        if job not in listed:
            errors.append(
                Diagnostic(
                    smap.key(("jobs",)),
                    "missing-job",
                    f"the spec's job '{job}' ({jobs[job]} task{'s' * (jobs[job] != 1)}) is not in the cluster file",
                    f"add `{job}: [host:port, ...]` under `jobs:`",
                )
            )
    if errors:
        raise SpecError(sorted_unique(errors))
    return Layout("file", tuple(tasks), links=value.get("links", {}))


def _addresses(job: str, entry, smap, errors: list[Diagnostic]):
    """(host, port, position) of each task of ``job``, in task order."""
    if isinstance(entry, list):
        for i, text in enumerate(entry):
            pos = smap.value(("jobs", job, i))
            address = split_address(text)
            if address is None:  # the schema took its form: the port is out of range
                errors.append(Diagnostic(pos, "bad-value", f"the port of '{text}' is not in 1-65535"))
                continue
            yield *address, pos
        return
    base, per = entry.get("port", DEFAULT_PORT_BASE), entry.get("tasks_per_host", 1)
    if base + per - 1 > 65535:
        errors.append(
            Diagnostic(
                smap.value(("jobs", job, "port" if "port" in entry else "tasks_per_host")),
                "bad-value",
                f"ports {base}-{base + per - 1} go beyond 65535",
                "lower `port` or `tasks_per_host`",
            )
        )
        return
    for h, host in enumerate(entry["hosts"]):
        for k in range(per):
            yield host.strip("[]"), base + k, smap.value(("jobs", job, "hosts", h))
