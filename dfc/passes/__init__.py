"""The compiler's passes, in order. Each is a named function ``run(g, ctx) -> g`` over a
frozen :class:`PassContext`; the pass manager (:func:`compile_spec`) verifies the IR after
every one (``verify_ir``) on graphs up to :data:`VERIFY_EACH_LIMIT` nodes (larger ones: after
the last pass, unless ``DFC_VERIFY_EACH=1``), and ``dfc plan --passes`` prints this list."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import networkx as nx

from ..cost.profile import Profile
from ..ir.build import build
from ..ir.devices import devices
from ..ir.node import gc_paused, verify_ir
from ..lang.model import Spec
from .collective import collective
from .combine import combine
from .comm import comm
from .context import PassContext
from .cse import cse
from .expand import expand
from .fuse import fuse
from .place import STRATEGIES, place
from .queues import queues

__all__ = ["PIPELINE", "PASS_NAMES", "Pass", "PassContext", "compile_spec", "STRATEGIES"]


@dataclass(frozen=True)
class Pass:
    name: str
    doc: str
    run: Callable[[nx.DiGraph, PassContext], nx.DiGraph]


PIPELINE: tuple[Pass, ...] = (
    Pass("expand", "one node per op of every tile-task instance; tiles become variables; the loop body once", expand),
    Pass("queues", "shard queues; pin enqueue, dequeue, reduce and broadcast nodes to their queue's tasks", queues),
    Pass("cse", "compute identical pure nodes once", cse),
    Pass(
        "fuse",
        "an op reads the tiles of an array built from them, and computes each block tile of its result alone, "
        "where its registry entry says how (fft_merge of cyclic tiles)",
        fuse,
    ),
    Pass("place", "map every node to a device (heft, round-robin, greedy-bytes, owner-computes or manual)", place),
    Pass(
        "collective",
        "a queue's via: reductions become all-reduces among the devices holding the partials "
        "(reduce: {via: collective}, or auto: when the simulator predicts it faster)",
        collective,
    ),
    Pass(
        "combine",
        "a device sums (the queue's op) the items its pushes send to one key of a reducing queue: one push",
        combine,
    ),
    Pass("comm", "one send/recv pair per (tensor, destination device) on cross-device edges", comm),
)
PASS_NAMES = ("build",) + tuple(p.name for p in PIPELINE)

#: Past this many nodes the IR is verified once, after the last pass run, instead of after
#: each (0.1 s per pass at 150k nodes: 15 % of planning 32 tiles/side); ``DFC_VERIFY_EACH=1``
#: verifies after every pass at any size (what the tests set).
VERIFY_EACH_LIMIT = 50_000


def verify_each(g: nx.DiGraph) -> bool:
    return g.number_of_nodes() <= VERIFY_EACH_LIMIT or os.environ.get("DFC_VERIFY_EACH") == "1"


@gc_paused()
def compile_spec(
    spec: Spec,
    strategy: str | None = None,
    profile: Profile | None = None,
    stop_after: str | None = None,
    observe: Callable[[str, nx.DiGraph], None] | None = None,
) -> nx.DiGraph:
    """Run the pipeline; ``observe(name, graph)`` sees the IR after each pass."""
    strategy = strategy or spec.placement.strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    ctx = PassContext(spec, strategy, profile or Profile(), devices(spec))
    g = build(spec)
    verify_ir(g, "build")
    if observe:
        observe("build", g)
    if stop_after == "build":
        return g
    for p in PIPELINE:
        g = p.run(g, ctx)
        last, each = stop_after == p.name or p is PIPELINE[-1], verify_each(g)
        if last or each:
            verify_ir(g, p.name if each else f"the passes (up to {p.name})")
        if observe:
            observe(p.name, g)
        if last:
            break
    return g
