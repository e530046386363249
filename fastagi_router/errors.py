"""The exceptions fastagi-router raises.

Every error the package raises on purpose derives from one root, so a caller can catch
everything the router means with one clause and still tell the kinds apart::

    RouterError
    ├── ConfigError              a setting is wrong; start-up stops and names it
    ├── ValidationError          a value given by a user or a peer is not acceptable (a phone
    │   │                        number, an agent extension, a CSV row); carries the field
    │   └── ConflictError        the value is fine but already belongs to another record
    ├── StoreError               the store could not answer (locked, read-only, corrupt, full)
    ├── ProtocolError            the FastAGI conversation went wrong
    │   ├── LocalProtocolError   we tried something the protocol forbids (a bug, or a value
    │   │                        that cannot be sent: CR/LF/NUL, a line of 8 KiB or more)
    │   └── RemoteProtocolError  the peer sent something we cannot accept (a header block
    │                            too large, a line too long, a reply that is not a reply)
    ├── SourceError              a customer source could not answer; carries the
    │   │                        SMARTROUTING_REASON word the call ends with
    │   └── UpstreamError        the upstream customer API failed
    ├── ManagerError             the Asterisk Manager connection failed or was lost (the
    │   │                        listener reconnects; calls never see it)
    │   └── ManagerAuthError     Asterisk refused the Manager login (username or secret)
    └── CallEnded                the caller hung up or Asterisk closed the session: the
                                 call ends quietly, nothing more is sent

Errors from libraries (sqlite3, aiohttp, phonenumbers, panoramisk) are translated where they
are caught, with ``raise X(...) from exc`` so the original stays in the traceback.
"""

from __future__ import annotations


class RouterError(Exception):
    """Root of every error fastagi-router raises on purpose."""


class ConfigError(RouterError):
    """A setting is missing, malformed or contradicts another; the message names it."""


class ValidationError(RouterError):
    """A value is not acceptable; ``field`` names what was wrong, the message says why."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class ConflictError(ValidationError):
    """A phone number or code already belongs to another record of the same account.

    ``index`` is the position of the offending record in a batch, when there was a batch.
    """

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None) -> None:
        super().__init__(message, field=field)
        self.index = index


class StoreError(RouterError):
    """The store could not carry out a read or a write."""


class ProtocolError(RouterError):
    """The FastAGI conversation cannot go on."""


class LocalProtocolError(ProtocolError):
    """We attempted something the protocol forbids (sending out of turn, an unsendable value)."""


class RemoteProtocolError(ProtocolError):
    """The peer (Asterisk, or something pretending to be it) broke the protocol."""


class SourceError(RouterError):
    """A customer source could not answer. ``reason`` is one SMARTROUTING_REASON word."""

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


class UpstreamError(SourceError):
    """The upstream customer API failed to give a usable answer."""


class ManagerError(RouterError):
    """The Asterisk Manager connection could not be opened, or was lost."""


class ManagerAuthError(ManagerError):
    """Asterisk refused the Manager login: ``ami.username`` / ``ami.secret`` or manager.conf."""


class CallEnded(RouterError):
    """The caller hung up, or Asterisk closed the session: stop, quietly."""
