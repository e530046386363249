"""The routing decision: identify the caller, consult the sources, decide."""

from fastagi_router.routing.decision import REASONS, Decision, Status
from fastagi_router.routing.router import Router
from fastagi_router.routing.sources import CustomerSource, Found

__all__ = ["REASONS", "CustomerSource", "Decision", "Found", "Router", "Status"]
