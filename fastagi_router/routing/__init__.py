"""The routing decision: identify the caller, consult the sources, decide."""

from fastagi_router.routing.decision import REASONS, Decision, Status
from fastagi_router.routing.router import Router
from fastagi_router.routing.sources import CallContext, CustomerSource, Found

__all__ = ["REASONS", "CallContext", "CustomerSource", "Decision", "Found", "Router", "Status"]
