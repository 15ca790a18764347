"""The cost model: device profiles, op costs, and the schedule simulator."""

from .profile import Profile, load_profile
from .model import CostModel

__all__ = ["Profile", "load_profile", "CostModel"]
