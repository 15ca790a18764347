"""What the stages after ``expand`` know of the program, besides its graph: the name, the
params, the cluster and its devices, and each queue's placement and reducer. The build
makes it (``g.graph["facts"]``) from the Spec; ``expand`` is the last stage that reads the
Spec itself (it is the stage that turns the program into tile nodes), so the passes, the
lowering and the engines see only what is here."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from ..lang.expr import Expr
from ..lang.model import Job, Spec
from .devices import allowed, devices


@dataclass(frozen=True)
class QueueFacts:
    name: str
    devices: tuple[str, ...]  # the devices of its job's tasks: shard k lives on devices[k % len]
    shards: int
    shard: Expr | None  # the shard of a push, from the pushing instance's indices
    capacity: int
    reduce: str | None  # its reducer's op (sum, max, min, prod), or None
    via: str = "auto"  # how its `via:` reductions run: "queue", "collective", or "auto" (the cost model's choice)

    def device_of_shard(self, shard: int) -> str:
        return self.devices[shard % len(self.devices)]


@dataclass(frozen=True)
class Facts:
    name: str
    params: Mapping[str, int | float]
    cluster: Mapping[str, Job]
    devices: tuple[str, ...]
    queues: Mapping[str, QueueFacts]
    unrolled: int = 0  # iterations of a loop with an `index:`, compiled into the prologue


def facts_of(spec: Spec) -> Facts:
    queues = {
        q.name: QueueFacts(
            q.name,
            allowed(spec, q.on),
            q.shards,
            q.shard,
            q.capacity,
            q.reduce.op if q.reduce else None,
            q.reduce.via if q.reduce else "queue",
        )
        for q in spec.queues.values()
    }
    return Facts(
        spec.name,
        MappingProxyType(dict(spec.params)),
        MappingProxyType(dict(spec.cluster)),
        devices(spec),
        MappingProxyType(queues),
        spec.loop.max if spec.loop is not None and spec.unrolled else 0,
    )
