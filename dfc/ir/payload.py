"""What a node of each kind carries besides the fields every node has: one small frozen
dataclass per kind, in ``Node.data``.

=========  ==============  ==================================================================
kind       payload         carries
=========  ==============  ==================================================================
const      :class:`Const`     the number
variable   :class:`Variable`  how it starts (:class:`Random` numbers, a constant, a file, a copy),
                              where its tile sits in its array (:class:`Tile`), or the scalar
                              it holds
compute    :class:`Compute`   the op's keyword arguments; the dynamic-schedule instance it is part of
reduce     :class:`Compute`   (the reducer's ``op`` among the keywords)
broadcast  :class:`Broadcast` the queue and the job it copies the reduced value to
allreduce  :class:`Collective` the reduction, the devices taking part (input k is member k's
                              partial), the TF group and instance keys
assign     :class:`Assign`    the variable it writes
enqueue    :class:`Enqueue`   the queue, the key, the pushing instance's indices, its shard
dequeue    :class:`Dequeue`   the queue, the key (``*``: every item, for a ``pop:`` task), the count
send/recv  :class:`Transfer`  the device at the other end
loop       :class:`Loop`      the iteration limit, the ``until`` node, the checkpoint interval
task       ``None``
=========  ==============  ==================================================================

Payloads are hashable (CSE keys on them) and serialise flat, one key per field, into a
node's ``attrs`` in ``dfc plan --format json`` (:meth:`Payload.fields`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterator

from ..lang.expr import Expr


class Payload:
    def fields(self) -> Iterator[tuple[str, Any]]:
        """(name, value) of every field that is set, nested payloads flattened."""
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Payload):
                yield from value.fields()
            elif isinstance(value, Expr):  # an init expression: its text
                yield f.name, value.text
            elif value is not None:
                yield f.name.rstrip("_"), value


@dataclass(frozen=True)
class Const(Payload):
    value: bool | int | float


@dataclass(frozen=True)
class Tile(Payload):
    """Where a tile sits in its array."""

    array: str
    index: tuple[int, ...]
    tiling: str  # "block" or "cyclic"
    tile: tuple[int, ...]
    grid: tuple[int, ...]
    array_shape: tuple[int, ...]
    resident: bool = False
    output: bool = False


@dataclass(frozen=True)
class Random(Payload):
    dist: str  # uniform, normal, spd
    seed: int = 0
    low: float = 0.0
    high: float = 1.0
    mean: float = 0.0
    std: float = 1.0
    diagonal: float | None = None  # spd only (None: n)


@dataclass(frozen=True)
class Variable(Payload):
    init: str  # "constant", "random", "expr", "file" or "copy"
    value: Any = None  # constant
    random: Random | None = None
    file: str | None = None
    source: str | None = None  # copy: the array whose tile of the same index it copies
    expr: Any = None  # expr: the Expr, over the element indices ``names``
    names: tuple[str, ...] | None = None
    tile: Tile | None = None  # None: a scalar
    scalar: str | None = None

    def source_tile(self) -> str:
        """The name of the tile a copy starts from."""
        assert self.tile is not None, "a copy is a tile of an array"
        return f"{self.source}[{','.join(map(str, self.tile.index))}]"


@dataclass(frozen=True)
class Compute(Payload):
    kwargs: tuple[tuple[str, Any], ...] = ()  # the op's keyword arguments, sorted
    instance: str | None = None  # of a `schedule: dynamic` task

    def fields(self) -> Iterator[tuple[str, Any]]:
        yield from self.kwargs
        if self.instance is not None:
            yield "instance", self.instance


@dataclass(frozen=True)
class Broadcast(Compute):
    queue: str = ""
    to: str = ""  # the job that receives a copy

    def fields(self) -> Iterator[tuple[str, Any]]:
        yield from super().fields()
        yield from (("queue", self.queue), ("to", self.to))


@dataclass(frozen=True)
class Collective(Compute):
    """An all-reduce (``reduce: {via: collective}``): every member device gets the reduction
    of the members' partials. ``kwargs`` is ``accumulate``'s (the op)."""

    queue: str = ""
    members: tuple[str, ...] = ()  # devices, in order: input k is members[k]'s partial
    group_key: int = 0  # TF's: one per set of members
    instance_key: int = 0  # TF's: one per all-reduce (shared by its members' nodes)

    def fields(self) -> Iterator[tuple[str, Any]]:
        yield from super().fields()
        yield from (("queue", self.queue), ("members", ",".join(self.members)))
        yield from (("group_key", self.group_key), ("instance_key", self.instance_key))


@dataclass(frozen=True)
class Assign(Payload):
    target: str  # the variable node written


@dataclass(frozen=True)
class Enqueue(Payload):
    queue: str
    key: tuple
    env: tuple[tuple[str, int], ...] = ()  # the pushing instance's indices
    instance: str | None = None  # of a `schedule: dynamic` task
    shard: int | None = None  # set by the queues pass


@dataclass(frozen=True)
class Dequeue(Payload):
    queue: str
    key: str  # "*": every item of the queue (a `pop:` task), in key order
    count: int


@dataclass(frozen=True)
class Transfer(Payload):
    to: str | None = None  # a send's destination device
    from_: str | None = None  # a recv's source device


@dataclass(frozen=True)
class Loop(Payload):
    max: int
    until: str = ""  # the node whose value stops the loop ("" for none)
    checkpoint_every: int = 0
