"""The cost model: device profiles, op costs, and the schedule simulator."""

from .model import CostModel
from .profile import Profile, load_profile

__all__ = ["Profile", "load_profile", "CostModel"]
