"""One frozen settings object: defaults < TOML file < environment < command line.

Every setting has one dotted name, used the same way everywhere::

    deadline_ms                 TOML: deadline_ms = 2000          env: FASTAGI_ROUTER_DEADLINE_MS
    agi.listen                  TOML: [agi] listen = "..."       env: FASTAGI_ROUTER_AGI_LISTEN
    prompt.attempts             TOML: [prompt] attempts = 3      env: FASTAGI_ROUTER_PROMPT_ATTEMPTS
    http.listen                 TOML: [http] listen = "..."      env: FASTAGI_ROUTER_HTTP_LISTEN

A setting that is unknown, of the wrong type or out of range stops start-up with a
`ConfigError` that names it and where it came from. Lists are TOML arrays, or
comma-separated in the environment and on the command line.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastagi_router.errors import ConfigError, ValidationError
from fastagi_router.model import check_account, check_token

ENV_PREFIX = "FASTAGI_ROUTER_"
#: Environment variables with this prefix that are not settings.
_ENV_NOT_SETTINGS = frozenset({"FASTAGI_ROUTER_CONFIG"})
#: Settings that hold a secret in clear: read from the environment only, never from a file
#: or the command line (where they would be stored or shown).
ENV_ONLY = frozenset({"api.token"})
DEFAULT_DB = "fastagi-router.db"


def parse_hostport(value: str, name: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6). Raises `ConfigError` naming ``name``."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name} must be HOST:PORT, not {value!r}")
    return host, int(port)


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, not {value}")


@dataclass(frozen=True, slots=True)
class AGISettings:
    """The FastAGI listener and its limits."""

    #: FastAGI address, HOST:PORT (``[v6]:PORT`` for IPv6).
    listen: str = "127.0.0.1:4573"
    #: Peers allowed to connect, as CIDR networks; anything else is closed at once.
    allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    #: Sessions served at once; beyond this a call gets FALLBACK (reason overload) at once.
    max_sessions: int = 1000
    #: Listen backlog: connections the kernel queues before accept().
    backlog: int = 4096
    #: Time allowed for the whole header block to arrive.
    header_timeout_ms: int = 2000
    #: Longest wait for the reply to a command that plays media or collects digits;
    #: Asterisk bounds these itself, this only catches an Asterisk that went silent.
    prompt_timeout_ms: int = 60000
    #: After a deadline or an error, how long to wait for a reply still outstanding.
    reply_grace_ms: int = 1000
    #: Largest header block a call may send.
    max_header_bytes: int = 65536

    def __post_init__(self) -> None:
        parse_hostport(self.listen, "agi.listen")
        for cidr in self.allow:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ConfigError(f"agi.allow: {cidr!r} is not an IP network") from exc
        for name in ("max_sessions", "backlog", "header_timeout_ms", "prompt_timeout_ms"):
            _positive(f"agi.{name}", getattr(self, name))
        if self.max_header_bytes < 1024:
            raise ConfigError("agi.max_header_bytes must be at least 1024")

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``allow`` parsed."""
        return tuple(ipaddress.ip_network(c, strict=False) for c in self.allow)


@dataclass(frozen=True, slots=True)
class PromptSettings:
    """How an unrecognised caller is asked for an identification code.

    The default sound files ship with Asterisk's core English sounds; record your own
    (e.g. ``custom/enter-customer-code``) for production.
    """

    #: Sound asking for the code.
    file: str = "agent-pass"
    #: Sound after a wrong or empty code.
    invalid_file: str = "auth-incorrect"
    #: Digits per attempt.
    max_digits: int = 8
    #: GET DATA timeout per attempt.
    timeout_ms: int = 5000
    #: Attempts; 0 never prompts.
    attempts: int = 3
    #: Fewer digits than this is a wrong attempt, and is not looked up: a short code space
    #: is what brute force over DTMF works through first.
    min_digits: int = 4

    def __post_init__(self) -> None:
        for name in ("file", "invalid_file"):
            value = getattr(self, name)
            if not value or any(c.isspace() or c in '"\\' for c in value):
                raise ConfigError(f"prompt.{name} must be a sound file name without spaces")
        for name in ("max_digits", "timeout_ms"):
            _positive(f"prompt.{name}", getattr(self, name))
        if not 0 <= self.attempts <= 10:
            raise ConfigError("prompt.attempts must be 0 (never prompt) to 10")
        if self.max_digits > 32:
            raise ConfigError("prompt.max_digits must be at most 32")
        if not 1 <= self.min_digits <= self.max_digits:
            raise ConfigError("prompt.min_digits must be 1 to prompt.max_digits")


@dataclass(frozen=True, slots=True)
class CodesSettings:
    """Limits on wrong identification codes (brute force over DTMF), per router process.

    Each wrong code counts against the caller's number and the call's account (a withheld
    caller: the account only). ``max_failures_*`` wrong codes in a row lock the code prompt
    for that number or account; the count leaks away over ``window_s``, so a locked key gets
    one more attempt every ``window_s / max_failures_*`` seconds. ``0`` turns a limit off.
    """

    #: Wrong codes that lock the prompt for a caller number; 0: no limit.
    max_failures_per_number: int = 10
    #: Wrong codes that lock the prompt for an account (withheld callers count here only);
    #: 0: no limit.
    max_failures_per_account: int = 100
    #: The counts drain to zero over this many seconds.
    window_s: int = 900

    def __post_init__(self) -> None:
        for name in ("max_failures_per_number", "max_failures_per_account"):
            if getattr(self, name) < 0:
                raise ConfigError(f"codes.{name} must be 0 (no limit) or more")
        _positive("codes.window_s", self.window_s)


#: How the upstream API wants caller numbers written (French example: +33 1 23 45 67 89).
NUMBER_FORMATS = ("international", "e164", "national")  # 0033123456789, +33123456789, 0123456789
_PARAM = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """The upstream customer API and its cache; on as soon as ``url`` is set.

    Ages are in seconds: an answer younger than ``fresh_ttl_s`` is used as is; up to
    ``stale_ttl_s`` it is used at once while one background request refreshes it; when the
    API fails or is too slow, an answer up to ``max_stale_s`` old is served as ``stale``.
    """

    #: Base URL of the API (``https://clients.example.com``); empty: no upstream API.
    url: str = ""
    #: Bearer token; never logged nor printed.
    token: str = field(default="", repr=False)
    #: Account for calls whose AGI URL names none and whose number dialled is not in ``accounts``.
    account: str = ""
    #: Number dialled (``agi_extension``) -> account, for calls whose AGI URL names no account.
    accounts: dict[str, str] = field(default_factory=dict)
    #: Query parameter carrying the caller number.
    number_param: str = "number"
    #: Query parameter carrying a typed code.
    code_param: str = "code"
    #: ``international`` (``0033...``), ``e164`` (``+33...``) or ``national`` (``01...``).
    number_format: str = "international"
    #: Answer field saying the caller is VIP.
    vip_field: str = "vip"
    #: Answer field saying the caller has an on-call contract.
    oncall_field: str = "astreinte"
    #: Longest wait for one request; a call waits no longer than its deadline allows.
    timeout_ms: int = 1000
    #: Time kept back from the call's deadline to answer with a stale entry or FALLBACK.
    margin_ms: int = 100
    #: Connections to the API at once (the pool); more requests queue within their timeout.
    max_connections: int = 20
    #: Age up to which a cached answer is used without asking the API.
    fresh_ttl_s: int = 300
    #: Age up to which a cached answer is used at once while one background request refreshes it.
    stale_ttl_s: int = 3600
    #: How long a "not found" answer is cached.
    negative_ttl_s: int = 60
    #: Oldest answer served (``SOURCE=stale``) when the API fails or is too slow.
    max_stale_s: int = 86400
    #: Cache size; the least recently fetched entries go first.
    cache_max_entries: int = 100000
    #: Consecutive failures that open the circuit breaker.
    breaker_failures: int = 5
    #: Time the breaker stays open before one request probes the API.
    breaker_cooldown_s: int = 30

    def __post_init__(self) -> None:
        if self.url:
            url = urllib.parse.urlsplit(self.url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ConfigError(f"upstream.url must be an http(s) URL, not {self.url!r}")
            if url.query or url.fragment:
                raise ConfigError("upstream.url must be a base URL without query or fragment")
            if url.username or url.password:
                # Error messages name the URL; the credential belongs in the token.
                raise ConfigError("upstream.url must not carry credentials; use upstream.token")
            if not self.token:
                raise ConfigError("upstream.token is required when upstream.url is set")
        elif self.token:
            raise ConfigError("upstream.token is set but upstream.url is not")
        if any(c.isspace() for c in self.token):
            raise ConfigError("upstream.token must not contain spaces or line breaks")
        try:
            if self.account:
                check_account(self.account, "upstream.account")
            for extension, account in self.accounts.items():
                check_account(account, f"upstream.accounts[{extension}]")
        except ValidationError as exc:
            raise ConfigError(f"{exc.field}: {exc}") from exc
        if any(not extension.strip() for extension in self.accounts):
            raise ConfigError("upstream.accounts: a number dialled is empty")
        for name in ("number_param", "code_param", "vip_field", "oncall_field"):
            if not _PARAM.fullmatch(getattr(self, name)):
                raise ConfigError(f"upstream.{name} must be 1-64 letters, digits, '_', '.', '-'")
        if self.number_format not in NUMBER_FORMATS:
            raise ConfigError(f"upstream.number_format must be one of {', '.join(NUMBER_FORMATS)}")
        for name in ("timeout_ms", "max_connections", "cache_max_entries", "breaker_failures"):
            _positive(f"upstream.{name}", getattr(self, name))
        for name in ("margin_ms", "fresh_ttl_s", "negative_ttl_s", "breaker_cooldown_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"upstream.{name} must be 0 or more")
        if not self.fresh_ttl_s <= self.stale_ttl_s <= self.max_stale_s:
            raise ConfigError(
                "upstream.fresh_ttl_s <= upstream.stale_ttl_s <= upstream.max_stale_s must hold"
            )

    @property
    def enabled(self) -> bool:
        """True when the upstream API is configured."""
        return bool(self.url)


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """How the router reads its SQLite store on the call path."""

    #: Run the routing reads on the event loop's thread (microseconds) rather than through
    #: aiosqlite's thread; a busy database falls back to the thread, never blocks the loop.
    fast_reads: bool = True
    #: Numbers answered from memory (0 turns the layer off). Dropped whole whenever the
    #: store may have changed (the WAL-index header of the ``-shm`` file, or PRAGMA
    #: data_version), so a change applies to the very next call.
    hot_numbers: int = 20000
    #: Longest time a number is answered from memory without reading the store again.
    hot_max_age_s: float = 30.0

    def __post_init__(self) -> None:
        if self.hot_numbers < 0:
            raise ConfigError("store.hot_numbers must be 0 (off) or more")
        if self.hot_max_age_s <= 0:
            raise ConfigError("store.hot_max_age_s must be greater than 0")
        if self.hot_numbers and not self.fast_reads:
            raise ConfigError("store.hot_numbers needs store.fast_reads (set it to 0 instead)")


@dataclass(frozen=True, slots=True)
class HTTPSettings:
    """The REST API listener and its limits (see the README's "REST API")."""

    #: Serve the REST API at all.
    enabled: bool = True
    #: REST API (and ``/metrics``, ``/readyz``) address, HOST:PORT.
    listen: str = "127.0.0.1:8080"
    #: Largest JSON request body; larger bodies get 413.
    max_body_bytes: int = 65536
    #: Largest CSV body for ``POST /v1/customers/import``; larger bodies get 413.
    max_import_bytes: int = 33554432
    #: Largest page a listing returns; a larger ``limit`` is clamped to it.
    max_limit: int = 1000
    #: PEM certificate (chain) and private key: with both, the API is served over HTTPS
    #: (TLS 1.2 or later); files are read at start-up, and again on SIGHUP.
    tls_cert: str = ""
    #: The private key for ``tls_cert`` (PEM); keep the file readable by the router only.
    tls_key: str = ""

    def __post_init__(self) -> None:
        parse_hostport(self.listen, "http.listen")
        if bool(self.tls_cert) != bool(self.tls_key):
            given, missing = ("tls_cert", "tls_key") if self.tls_cert else ("tls_key", "tls_cert")
            raise ConfigError(f"http.{given} is set but http.{missing} is not: give both")
        if self.max_body_bytes < 1024:
            raise ConfigError("http.max_body_bytes must be at least 1024")
        if self.max_import_bytes < 1024:
            raise ConfigError("http.max_import_bytes must be at least 1024")
        _positive("http.max_limit", self.max_limit)


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """The audit log of administrative writes (REST API, CLI) kept in the store."""

    #: Entries older than this many days are deleted by the periodic purge; 0 keeps them.
    retention_days: int = 365

    def __post_init__(self) -> None:
        if self.retention_days < 0:
            raise ConfigError("audit.retention_days must be 0 (keep for ever) or more")


@dataclass(frozen=True, slots=True)
class APISettings:
    """Who may use the REST API: bearer tokens, kept only as hashes.

    ``tokens`` entries read ``sha256:<64 hex> [accounts=A+B|*] [read|write] [name=LABEL]``
    (see `fastagi_router.api.tokens`). ``token`` is one token in clear with write access to
    every account, for simple deployments; it is read from the environment only
    (``FASTAGI_ROUTER_API_TOKEN``) and replaced by its hash as soon as it is loaded.
    """

    #: One token in clear, write access to every account; kept as its hash.
    token: str = ""
    #: Token entries ``sha256:<hex> [accounts=A+B|*] [read|write] [name=LABEL]``.
    tokens: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from fastagi_router.api.tokens import hash_setting, parse_entries  # noqa: PLC0415

        if self.token:
            # Frozen dataclass: the clear value must not outlive loading.
            object.__setattr__(self, "token", hash_setting(self.token, "api.token"))
        parse_entries(self.tokens, "api.tokens")


#: Device states a ``DEVICE_STATE()`` or ``EXTENSION_STATE()`` answer can name; ``EMPTY`` stands
#: for an empty answer (no hint, or func_devstate not loaded).
DEVICE_STATES = frozenset(
    {
        "NOT_INUSE",
        "INUSE",
        "BUSY",
        "RINGING",
        "RINGINUSE",
        "ONHOLD",
        "HOLDINUSE",
        "UNAVAILABLE",
        "UNKNOWN",
        "INVALID",
        "EMPTY",
    }
)
#: Matches an agent's device (``PJSIP/104``, ``Local/104@agents``, ``SIP/104``): the extension
#: is what follows the technology, up to ``@``, ``/`` or ``;``.
DEFAULT_AGENT_PATTERN = r"^[A-Za-z0-9_]+/(?P<extension>[^@/;]+)"
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}")
_NO_CONTROL = re.compile(r"[^\x00-\x1f\x7f]*")


@dataclass(frozen=True, slots=True)
class AMISettings:
    """The Asterisk Manager Interface connection that learning listens on.

    With ``host`` empty (the default) the router opens no Manager connection and learns
    nothing; routing never depends on it.
    """

    #: Asterisk Manager host; empty: no Manager connection, nothing learned.
    host: str = ""
    #: Asterisk Manager port.
    port: int = 5038
    #: manager.conf user (required with ``host``).
    username: str = ""
    #: Kept out of ``repr`` so that ``check-config`` and logs never print it.
    secret: str = field(default="", repr=False)
    #: Time to connect, and for the login to be answered.
    connect_timeout_ms: int = 5000
    #: How often the link is probed with a Ping, and how long the answer may take before the
    #: link is declared dead (a peer that vanished without a FIN answers nothing).
    ping_interval_ms: int = 10000
    #: No answer to a Ping within this: the link is dropped and reopened.
    ping_timeout_ms: int = 5000
    #: Reconnection delays double from ``backoff_initial_ms`` up to ``backoff_max_ms``, each
    #: drawn at random between half and all of its value; a refused login waits the maximum.
    backoff_initial_ms: int = 500
    #: Longest reconnection delay; a refused login waits this long.
    backoff_max_ms: int = 60000

    def __post_init__(self) -> None:
        if not 0 < self.port <= 65535:
            raise ConfigError(f"ami.port must be 1 to 65535, not {self.port}")
        for name in (
            "connect_timeout_ms",
            "ping_interval_ms",
            "ping_timeout_ms",
            "backoff_initial_ms",
            "backoff_max_ms",
        ):
            _positive(f"ami.{name}", getattr(self, name))
        if self.backoff_max_ms < self.backoff_initial_ms:
            raise ConfigError("ami.backoff_max_ms must not be less than ami.backoff_initial_ms")
        for name in ("host", "username", "secret"):
            value = getattr(self, name)
            # A CR or LF would end the header of the Login action and start another.
            if not _NO_CONTROL.fullmatch(value):
                raise ConfigError(f"ami.{name} must not contain control characters")
        if self.host and not (self.username and self.secret):
            raise ConfigError("ami.username and ami.secret are required when ami.host is set")

    @property
    def enabled(self) -> bool:
        """True when a Manager host is configured."""
        return bool(self.host)


@dataclass(frozen=True, slots=True)
class LearningSettings:
    """What the Manager events teach the sticky-agent table, and how long it stays true."""

    #: 0: learn as soon as the agent answers. More: learn when the call ends, and only if
    #: the agent talked at least this long (queue calls: AgentComplete's TalkTime; direct
    #: dials: from the answer to the hang-up).
    min_talk_seconds: int = 0
    #: A learned entry not seen for this many days no longer routes (0: never expires).
    #: Entries set by hand have no window.
    affinity_days: int = 30
    #: Whether learning may replace an entry set through the CLI or the API.
    overwrite_manual: bool = False
    #: Which calls learn: ``queue`` (Queue() answered by a member), ``dial`` (Dial() answered).
    sources: tuple[str, ...] = ("queue", "dial")
    #: Queues whose calls learn; empty: every queue.
    queues: tuple[str, ...] = ()
    #: Dialplan contexts (of the caller's channel when the agent answers) whose calls learn;
    #: empty: every context.
    contexts: tuple[str, ...] = ()
    #: The channel variable that names the account, exposed through manager.conf
    #: ``channelvars``; events without it belong to ``default``.
    account_variable: str = "SR_ACCOUNT"
    #: Regular expression with a group ``extension`` (or a first group) applied to the
    #: agent's device: the queue member's Interface, or the answering channel's name without
    #: its unique suffix.
    agent_pattern: str = DEFAULT_AGENT_PATTERN
    #: ``interface``: the extension comes from the member's Interface through
    #: ``agent_pattern``; ``member_name``: the queue member's name is the extension.
    agent_from: str = "interface"

    def __post_init__(self) -> None:
        if self.min_talk_seconds < 0:
            raise ConfigError("learning.min_talk_seconds must be 0 or more")
        if self.affinity_days < 0:
            raise ConfigError("learning.affinity_days must be 0 (no window) or more")
        unknown = set(self.sources) - {"queue", "dial"}
        if unknown:
            raise ConfigError(
                f"learning.sources takes queue and dial, not {', '.join(sorted(unknown))}"
            )
        if not _VARIABLE.fullmatch(self.account_variable):
            raise ConfigError(
                "learning.account_variable must be a channel variable name (letters, digits, '_')"
            )
        try:
            pattern = re.compile(self.agent_pattern)
        except re.error as exc:
            raise ConfigError(f"learning.agent_pattern is not a regular expression: {exc}") from exc
        if "extension" not in pattern.groupindex and pattern.groups < 1:
            raise ConfigError("learning.agent_pattern needs a group named 'extension'")
        if self.agent_from not in ("interface", "member_name"):
            raise ConfigError("learning.agent_from is interface or member_name")


@dataclass(frozen=True, slots=True)
class AvailabilitySettings:
    """The check of the sticky agent's state before a call is sent to it (one round trip)."""

    #: Check the sticky agent's state before sending the call to it.
    enabled: bool = False
    #: ``{agent}`` is replaced by the extension. A device (``PJSIP/{agent}``) is asked through
    #: ``${DEVICE_STATE(...)}``; a template holding ``${`` is sent as written, e.g.
    #: ``${EXTENSION_STATE({agent}@agents)}``.
    template: str = "PJSIP/{agent}"
    #: States in which the call goes to the agent; any other state falls through.
    route_states: tuple[str, ...] = ("NOT_INUSE", "UNKNOWN", "INVALID", "EMPTY")

    def __post_init__(self) -> None:
        if "{agent}" not in self.template:
            raise ConfigError("availability.template must contain {agent}")
        if not _NO_CONTROL.fullmatch(self.template) or len(self.template) > 200:
            raise ConfigError(
                "availability.template must be at most 200 characters, no control characters"
            )
        unknown = {s.upper() for s in self.route_states} - DEVICE_STATES
        if unknown:
            raise ConfigError(
                f"availability.route_states: unknown state(s) {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(DEVICE_STATES))})"
            )

    def expression(self, agent: str) -> str:
        """Return the expression whose value is ``agent``'s state (for GET FULL VARIABLE)."""
        text = self.template.replace("{agent}", agent)
        return text if "${" in text else "${DEVICE_STATE(" + text + ")}"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOGGER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,99}")


@dataclass(frozen=True, slots=True)
class LogSettings:
    """What the router logs, and how (see the README's "Logs")."""

    #: The level of every logger without an entry in ``levels``.
    level: str = "INFO"
    #: ``text``: one human-readable line per record; ``json``: one JSON object per line.
    format: str = "text"
    #: Logger name -> level, e.g. ``fastagi_router.calls = "WARNING"`` to drop the per-call
    #: lines, or ``aiohttp.access = "INFO"`` to log every REST API request.
    levels: dict[str, str] = field(default_factory=dict)
    #: The caller number in the per-call line: ``full``, ``last4`` (the rest masked) or
    #: ``none``; the call's uniqueid joins the line with the CDR.
    caller: str = "last4"

    def __post_init__(self) -> None:
        from fastagi_router.server.calllog import CALLER_MODES  # noqa: PLC0415

        if self.level.upper() not in LOG_LEVELS:
            raise ConfigError(f"log.level must be one of {', '.join(LOG_LEVELS)}")
        for name, level in self.levels.items():
            if not _LOGGER_NAME.fullmatch(name):
                raise ConfigError(f"log.levels: {name!r} is not a logger name")
            if level.upper() not in LOG_LEVELS:
                raise ConfigError(f"log.levels: {name} must be one of {', '.join(LOG_LEVELS)}")
        if self.format not in ("text", "json"):
            raise ConfigError("log.format must be text or json")
        if self.caller not in CALLER_MODES:
            raise ConfigError(f"log.caller must be one of {', '.join(CALLER_MODES)}")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the router reads at start-up."""

    #: The SQLite store (created, and migrated, at start-up).
    db: str = DEFAULT_DB
    #: Region (ISO 3166) for numbers written without a country code.
    default_region: str = "VN"
    #: Queues for FALLBACK and UNKNOWN calls, in order (SMARTROUTING_DEST1..4).
    default_queues: tuple[str, ...] = ("default",)
    #: Router time allowed per call, prompts excluded.
    deadline_ms: int = 2000
    #: ``auto`` uses uvloop when it is installed, else asyncio's own loop.
    event_loop: str = "auto"
    #: FastAGI worker processes sharing the listening socket (one per core); 1 runs
    #: everything in one process.
    workers: int = 1
    agi: AGISettings = field(default_factory=AGISettings)
    prompt: PromptSettings = field(default_factory=PromptSettings)
    codes: CodesSettings = field(default_factory=CodesSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    http: HTTPSettings = field(default_factory=HTTPSettings)
    api: APISettings = field(default_factory=APISettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    ami: AMISettings = field(default_factory=AMISettings)
    learning: LearningSettings = field(default_factory=LearningSettings)
    availability: AvailabilitySettings = field(default_factory=AvailabilitySettings)
    log: LogSettings = field(default_factory=LogSettings)

    def __post_init__(self) -> None:
        _positive("deadline_ms", self.deadline_ms)
        if self.upstream.margin_ms >= self.deadline_ms:
            raise ConfigError("upstream.margin_ms must be less than deadline_ms")
        if not 1 <= len(self.default_queues) <= 4:
            raise ConfigError("default_queues must list 1 to 4 queues")
        for queue in self.default_queues:
            try:
                check_token(queue, "default_queues")
            except ValidationError as exc:
                raise ConfigError(str(exc)) from exc
        if not 1 <= self.workers <= 64:
            raise ConfigError("workers must be 1 to 64")
        if self.event_loop not in ("auto", "uvloop", "asyncio"):
            raise ConfigError("event_loop must be auto, uvloop or asyncio")
        from fastagi_router.phone import NumberParser  # noqa: PLC0415 (phonenumbers is heavy)

        try:
            NumberParser(self.default_region)
        except ValidationError as exc:
            raise ConfigError(f"default_region: {exc}") from exc


# -- loading ------------------------------------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def setting_names(cls: type = Settings, prefix: str = "") -> dict[str, Any]:
    """Return every dotted setting name with its type."""
    names: dict[str, Any] = {}
    for name, tp in _hints(cls).items():
        if _is_section(tp):
            names.update(setting_names(tp, f"{prefix}{name}."))
        else:
            names[prefix + name] = tp
    return names


def env_name(dotted: str) -> str:
    """Return the environment variable for a dotted setting name."""
    return ENV_PREFIX + dotted.replace(".", "_").upper()


def _from_text(dotted: str, tp: Any, text: str, origin: str) -> Any:
    """Convert a string (environment, command line) to the type of the setting."""
    if tp is str or tp == (str | None):
        return text
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{dotted} ({origin}) must be a whole number, not {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{dotted} ({origin}) must be a number, not {text!r}") from None
    if tp is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{dotted} ({origin}) must be true or false, not {text!r}")
    if typing.get_origin(tp) is tuple:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if typing.get_origin(tp) is dict:
        pairs: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, eq, value = part.partition("=")
            if not eq:
                raise ConfigError(f"{dotted} ({origin}) takes KEY=VALUE pairs, not {part!r}")
            pairs[key.strip()] = value.strip()
        return pairs
    raise ConfigError(f"{dotted}: unsupported setting type {tp}")  # pragma: no cover


def _from_toml(dotted: str, tp: Any, value: Any, origin: str) -> Any:
    """Check a TOML value against the type of the setting."""
    wrong = ConfigError(f"{dotted} ({origin}) has the wrong type: {value!r}")
    if tp is str or tp == (str | None):
        if not isinstance(value, str):
            raise wrong
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise wrong
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        return float(value)
    if typing.get_origin(tp) is tuple:
        if isinstance(value, str):
            return _from_text(dotted, tp, value, origin)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wrong
        return tuple(value)
    if typing.get_origin(tp) is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise wrong
        return dict(value)
    raise ConfigError(f"{dotted}: unsupported setting type {tp}")  # pragma: no cover


#: Old names a configuration file may still use, and their current names.
_RENAMED = {"log_level": "log.level"}


def _flatten_toml(data: Mapping[str, Any], known: Mapping[str, Any], origin: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        key = _RENAMED.get(key, key)  # noqa: PLW2901
        if key in known:
            flat[key] = _from_toml(key, known[key], value, origin)
        elif isinstance(value, dict) and any(k.startswith(key + ".") for k in known):
            for sub, subvalue in _flatten_toml(
                {f"{key}.{k}": v for k, v in value.items()}, known, origin
            ).items():
                flat[sub] = subvalue
        else:
            raise ConfigError(f"unknown setting {key!r} in {origin}")
    return flat


def _build(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    kwargs: dict[str, Any] = {}
    for name, tp in _hints(cls).items():
        dotted = prefix + name
        if _is_section(tp):
            kwargs[name] = _build(tp, values, dotted + ".")
        elif dotted in values:
            kwargs[name] = values[dotted]
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc


def load_settings(
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Return the settings from defaults, the TOML file, the environment and ``overrides``.

    ``config_file`` falls back to ``$FASTAGI_ROUTER_CONFIG``. ``overrides`` maps dotted names
    to strings (command-line flags). Raises `ConfigError` naming the first bad setting.
    """
    env = os.environ if environ is None else environ
    known = setting_names()
    values: dict[str, Any] = {}
    path = config_file or env.get("FASTAGI_ROUTER_CONFIG")
    if path:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
        from_file = _flatten_toml(data, known, path)
        secret = next(iter(sorted(ENV_ONLY & from_file.keys())), None)
        if secret is not None:
            raise ConfigError(
                f"{secret} ({path}): a token in clear is read from the environment only "
                f"({env_name(secret)}); put its hash in api.tokens instead"
            )
        values.update(from_file)
    by_env = {env_name(dotted): dotted for dotted in known}
    for key, text in env.items():
        if not key.startswith(ENV_PREFIX) or key in _ENV_NOT_SETTINGS:
            continue
        dotted = by_env.get(key)
        if dotted is None:
            raise ConfigError(f"unknown setting in the environment: {key}")
        values[dotted] = _from_text(dotted, known[dotted], text, key)
    for dotted, text in (overrides or {}).items():
        if dotted not in known or dotted in ENV_ONLY:
            raise ConfigError(f"unknown setting {dotted!r}")
        values[dotted] = _from_text(dotted, known[dotted], text, "command line")
    settings: Settings = _build(Settings, values)
    return settings


#: Settings that SIGHUP applies to a running router; any other change needs a restart.
RELOADABLE = frozenset(
    {
        "default_region",
        "default_queues",
        "deadline_ms",
        "agi.allow",
        "agi.max_sessions",
        "agi.header_timeout_ms",
        "agi.prompt_timeout_ms",
        "agi.reply_grace_ms",
        "api.token",
        "api.tokens",
    }
)
#: Whole sections that SIGHUP applies.
RELOADABLE_SECTIONS = ("prompt.", "codes.", "log.")


def flatten(settings: Any, prefix: str = "") -> dict[str, Any]:
    """Return every setting of ``settings`` by dotted name."""
    values: dict[str, Any] = {}
    for name, tp in _hints(type(settings)).items():
        value = getattr(settings, name)
        if _is_section(tp):
            values.update(flatten(value, f"{prefix}{name}."))
        else:
            values[prefix + name] = value
    return values


def merge_reloadable(current: Settings, new: Settings) -> tuple[Settings, list[str]]:
    """Return ``current`` with the `RELOADABLE` settings taken from ``new``, and the names of
    the other settings that differ (they keep their current value until a restart).

    Raises `ConfigError` if the merged settings contradict each other.
    """
    old_values = flatten(current)
    new_values = flatten(new)
    merged = dict(old_values)
    restart: list[str] = []
    for name, value in new_values.items():
        if value == old_values[name]:
            continue
        if name in RELOADABLE or name.startswith(RELOADABLE_SECTIONS):
            merged[name] = value
        else:
            restart.append(name)
    settings: Settings = _build(Settings, merged)
    return settings, sorted(restart)


__all__ = [
    "DEFAULT_AGENT_PATTERN",
    "DEFAULT_DB",
    "DEVICE_STATES",
    "RELOADABLE",
    "AGISettings",
    "AMISettings",
    "APISettings",
    "AuditSettings",
    "AvailabilitySettings",
    "CodesSettings",
    "HTTPSettings",
    "LearningSettings",
    "LogSettings",
    "PromptSettings",
    "Settings",
    "StoreSettings",
    "UpstreamSettings",
    "env_name",
    "flatten",
    "load_settings",
    "merge_reloadable",
    "parse_hostport",
    "setting_names",
]
