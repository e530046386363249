"""The FastAGI protocol with no I/O: header parsing, reply parsing, command building.

Nothing in this package opens a socket, reads a clock or starts a task; it is tested with
bytes alone. `AGIConnection` is the entry point; `commands` builds what it sends.
"""

from fastagi_router.agi import commands
from fastagi_router.agi._state import State
from fastagi_router.agi.commands import Command
from fastagi_router.agi.connection import AGIConnection, decode
from fastagi_router.agi.events import (
    NEED_DATA,
    AGIRequest,
    ConnectionClosed,
    Event,
    HangupNotice,
    NeedData,
    Reply,
)
from fastagi_router.agi.replies import parse_reply

__all__ = [
    "NEED_DATA",
    "AGIConnection",
    "AGIRequest",
    "Command",
    "ConnectionClosed",
    "Event",
    "HangupNotice",
    "NeedData",
    "Reply",
    "State",
    "commands",
    "decode",
    "parse_reply",
]
