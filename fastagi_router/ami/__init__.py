"""Learning the sticky-agent table from the Asterisk Manager Interface (panoramisk).

`learning` reads events (no I/O), `listener` keeps the supervised connection, `writer`
records facts in the store, `service` wires the three for the application.
"""

from fastagi_router.ami.learning import AgentPattern, CallTracker, Served, Skipped, device_of
from fastagi_router.ami.listener import Backoff, ManagerListener, ManagerState, ManagerStatus
from fastagi_router.ami.service import ManagerLearning
from fastagi_router.ami.writer import RouteWriter

__all__ = [
    "AgentPattern",
    "Backoff",
    "CallTracker",
    "ManagerLearning",
    "ManagerListener",
    "ManagerState",
    "ManagerStatus",
    "RouteWriter",
    "Served",
    "Skipped",
    "device_of",
]
