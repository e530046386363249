"""The FastAGI conversation as a state table.

Theory of operation
-------------------
A FastAGI session is strictly turn-based once the header block is in:

1. Asterisk connects and sends the header block: ``agi_network: yes``, then
   ``agi_network_script: <path?query>`` when the AGI URL has a path, then every ``agi_*``
   variable that ``setup_env()`` writes, then ``agi_arg_N`` lines, then an empty line.
   Nothing else can arrive in this state.  (HEADERS)
2. It is now the server's turn. It sends one command line and waits. (IDLE -> AWAITING)
3. Asterisk answers with one reply line (``200 result=...``, ``510 ...``, ``511 ...``,
   ``503 ...``), or with a multi-line usage block (``520-...`` lines closed by
   ``520 End of proper usage.``). ``100 result=0 Trying...`` may come first and does not
   end the turn. (AWAITING/USAGE -> IDLE)
4. Independently of the turn, Asterisk writes one ``HANGUP`` line when it notices the caller
   has gone while it waits for the next command or inside a command; it may arrive before
   the reply it precedes, or while the server is thinking. It changes no turn. Asterisk may
   also never send it: an EOF or a ``result=-1`` are hang-ups as well.
5. Either side may close. An EOF is an event in every state; it never makes a loop.

Only one command may be outstanding: while a prompt (GET DATA, STREAM FILE, ...) plays,
Asterisk watches the socket and any byte it receives interrupts the prompt, whose reply is
then never sent. Refusing to send out of turn is how this layer makes that impossible.
"""

from __future__ import annotations

import enum

from fastagi_router.errors import LocalProtocolError


class State(enum.Enum):
    """Where the conversation stands, from the router's side."""

    HEADERS = "headers"  # reading the header block
    IDLE = "idle"  # our turn: one command may be sent
    AWAITING = "awaiting"  # a command is outstanding; its reply has not begun
    USAGE = "usage"  # inside a multi-line 520 usage reply
    CLOSED = "closed"  # the peer closed, or we did
    ERROR = "error"  # the peer broke the protocol; nothing more can be read or sent

    # Members are singletons: hash by identity, in C, rather than Enum's hash of the name
    # (the state table is consulted on every transition of every call).
    __hash__ = object.__hash__


# Every transition the connection may make; anything else is a bug in this package.
_TRANSITIONS: dict[State, frozenset[State]] = {
    State.HEADERS: frozenset({State.IDLE, State.CLOSED, State.ERROR}),
    State.IDLE: frozenset({State.AWAITING, State.CLOSED, State.ERROR}),
    State.AWAITING: frozenset({State.IDLE, State.USAGE, State.CLOSED, State.ERROR}),
    State.USAGE: frozenset({State.IDLE, State.CLOSED, State.ERROR}),
    State.CLOSED: frozenset({State.CLOSED}),
    State.ERROR: frozenset({State.ERROR, State.CLOSED}),
}


def check_transition(current: State, new: State) -> None:
    """Raise `LocalProtocolError` unless ``current -> new`` is in the table."""
    if new not in _TRANSITIONS[current]:
        raise LocalProtocolError(f"illegal FastAGI state transition {current.value} -> {new.value}")
