"""The asyncio adapter around the FastAGI protocol: accept, limits, deadlines, dispatch."""

from fastagi_router.server.calllog import Answer, CallLog
from fastagi_router.server.engine import AGIServer, Fallback, FastHandler, Handler
from fastagi_router.server.session import Deadline, Session

__all__ = [
    "AGIServer",
    "Answer",
    "CallLog",
    "Deadline",
    "Fallback",
    "FastHandler",
    "Handler",
    "Session",
]
