"""The context every pass runs in: what the pipeline decided once, before the first pass.

Frozen, and the same object for every pass of one compilation: a pass reads its settings
here, never from a global or from the graph's spec. ``spec`` is for ``expand`` alone, the
pass that turns the program into tile nodes; every later stage reads the facts the IR
carries (``g.graph["facts"]``: dfc/ir/facts.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..cost.model import CostModel
from ..cost.profile import Profile
from ..lang.model import Spec


@dataclass(frozen=True)
class PassContext:
    spec: Spec
    strategy: str  # the placement strategy (passes/place.py)
    profile: Profile  # the cost model's device rates, bandwidths and latencies
    devices: tuple[str, ...]  # every device of the cluster, as TensorFlow names them

    @property
    def cost_model(self) -> CostModel:
        return CostModel(self.profile, self.devices)
