"""A faithful stand-in for Asterisk's side of FastAGI, for the ``call`` command, the tests
and the benchmark (see `channel` for the rules it follows and `driver` for the timing)."""

from fastagi_router.simulator.channel import (
    CallSpec,
    Keypress,
    Outcome,
    SimulatedChannel,
    header_block,
    parse_args,
    separate_app_args,
)
from fastagi_router.simulator.driver import Asterisk, CallResult, Faults, place_call

__all__ = [
    "Asterisk",
    "CallResult",
    "CallSpec",
    "Faults",
    "Keypress",
    "Outcome",
    "SimulatedChannel",
    "header_block",
    "parse_args",
    "place_call",
    "separate_app_args",
]
