"""Measured kernels: what one registry op costs at the tile sizes specs use.

The roofline of the cost model (``max(flops / rate, bytes / bandwidth)``) prices every op
as if it ran at the host's matmul rate or its streaming bandwidth; TensorFlow's FFT, its
random numbers, a mask or a small slice do not. ``dfc calibrate`` therefore times each
distinct compute node of the programs it is given, through dfc's own lowering (the ops
that will run), and the profile keeps one entry per (op, dtype, bytes, flops): a history
model, as StarPU keeps per codelet and size. A node with an entry of its own costs what
was measured; one of a size not measured scales the nearest measured entry of its op and
dtype by the ratio of their rooflines (the work grows as the roofline says, the op's
efficiency is the measured one); an op never measured keeps the roofline.

Entries were timed with ``kernel_tasks`` tasks sharing the host (each running its copies
at once, as a program's tasks do) and, ``alone``, with one task on it: between the two, a
device's share of its host interpolates (an op that threads well nearly halves alone, one
that does not gains little); with less share than the measurement's, the part above the
per-op overhead scales with the share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir.node import Node


@dataclass(frozen=True)
class Kernel:
    """One measured size of an op: seconds per execution with ``kernel_tasks`` tasks at
    once on the host, and (where measured) with one task alone on it."""

    op: str
    dtype: str
    bytes: int
    flops: int
    seconds: float
    alone: float = 0.0  # 0: not measured

    def to_yaml(self) -> dict:
        out = {"dtype": self.dtype, "bytes": self.bytes, "flops": self.flops, "seconds": float(f"{self.seconds:.4g}")}
        if self.alone:
            out["alone"] = float(f"{self.alone:.4g}")
        return out


#: the fields of one entry of a profile's ``kernels`` (op -> list of entries), and the optional one
KERNEL_KEYS = ("dtype", "bytes", "flops", "seconds")
KERNEL_OPTIONAL = ("alone",)


def signature(n: Node) -> tuple[str, str, int, int]:
    """What a node's measured cost is looked up by."""
    return (n.op, n.dtype, n.mem_bytes, n.flops)


class KernelTable:
    """A profile's measured kernels, for lookups by node."""

    def __init__(self, kernels: dict[str, tuple[Kernel, ...]]):
        self.exact = {(k.op, k.dtype, k.bytes, k.flops): k for ks in kernels.values() for k in ks}
        self.by_op: dict[tuple[str, str], list[Kernel]] = {}
        for ks in kernels.values():
            for k in ks:
                self.by_op.setdefault((k.op, k.dtype), []).append(k)

    def nearest(self, n: Node) -> Kernel | None:
        """The entry measured for ``n``'s size, else the nearest size of its op and dtype."""
        hit = self.exact.get(signature(n))
        if hit is not None:
            return hit
        same = self.by_op.get((n.op, n.dtype))
        if not same:
            return None

        def distance(k: Kernel) -> float:
            return abs(math.log((k.bytes + 1) / (n.mem_bytes + 1))) + abs(math.log((k.flops + 1) / (n.flops + 1)))

        return min(same, key=distance)
