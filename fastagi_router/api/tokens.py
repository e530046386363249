"""REST API bearer tokens: the setting format, hashing, and the check of a presented token.

Tokens are kept only as SHA-256 hashes. A token is a random string of at least 128 bits
(`generate_token` makes 256), so a plain hash is as strong as a slow one here and costs
nothing per request. One entry of ``api.tokens`` reads::

    sha256:<64 hex digits> [accounts=CL0000+CL0001 | accounts=*] [read | write] [name=LABEL]

Words are separated by spaces, so an entry fits in a TOML string and, several of them
separated by commas, in the environment variable ``FASTAGI_ROUTER_API_TOKENS``. Without
``accounts=`` a token may use every account; without ``write`` it may only read. ``name``
labels the token in logs (default: the first eight hex digits of the hash).

This module imports nothing from aiohttp: the settings loader uses it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fastagi_router.errors import ConfigError, ValidationError
from fastagi_router.model import check_account

_HASHED = re.compile(r"sha256:([0-9a-fA-F]{64})")
#: RFC 6750 ``b64token``: what may follow ``Bearer`` in an Authorization header.
_B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,40}")
MIN_TOKEN_LENGTH = 16
ALL_ACCOUNTS = "*"


def digest(token: str) -> str:
    """Return the hex SHA-256 of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def generate_token() -> str:
    """Return a new random token (256 bits, URL-safe base64, valid after ``Bearer``)."""
    return secrets.token_urlsafe(32)


def is_token_syntax(token: str) -> bool:
    """True when ``token`` may appear after ``Bearer`` (RFC 6750 ``b64token``)."""
    return _B64TOKEN.fullmatch(token) is not None


def hash_setting(value: str, setting: str) -> str:
    """Return ``sha256:<hex>`` for a token given in clear, or the hash itself when ``value``
    already is one. Raises `ConfigError` naming ``setting`` for a weak or malformed token
    (the message never repeats the value)."""
    value = value.strip()
    hashed = _HASHED.fullmatch(value)
    if hashed:
        return "sha256:" + hashed.group(1).lower()
    if not is_token_syntax(value):
        raise ConfigError(
            f"{setting}: a token is letters, digits and '-._~+/' (optionally ending in '=')"
        )
    if len(value) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{setting}: a token must be at least {MIN_TOKEN_LENGTH} characters")
    return "sha256:" + digest(value)


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """One token as configured: its hash, the accounts it may use (None: all) and whether
    it may write."""

    sha256: str
    accounts: frozenset[str] | None = None
    write: bool = False
    name: str = ""

    @property
    def label(self) -> str:
        """What logs call this token (never the token)."""
        return self.name or self.sha256[:8]

    def may_use(self, account: str) -> bool:
        """True when the token may act on ``account``."""
        return self.accounts is None or account in self.accounts

    def entry(self) -> str:
        """Return the ``api.tokens`` entry that configures this token."""
        accounts = ALL_ACCOUNTS if self.accounts is None else "+".join(sorted(self.accounts))
        words = [f"sha256:{self.sha256}", f"accounts={accounts}", "write" if self.write else "read"]
        if self.name:
            words.append(f"name={self.name}")
        return " ".join(words)


def parse_entry(text: str, setting: str = "api.tokens") -> TokenSpec:
    """Read one ``api.tokens`` entry. Raises `ConfigError` naming ``setting``."""
    words = text.split()
    if not words or not _HASHED.fullmatch(words[0]):
        raise ConfigError(
            f"{setting}: an entry starts with sha256:<64 hex digits> (the hash of the token, "
            "never the token), not "
            f"{(words[0][:16] + '...') if words else 'nothing'!r}"
        )
    accounts: frozenset[str] | None = None
    write: bool | None = None
    name = ""
    seen: set[str] = set()
    for word in words[1:]:
        key, eq, value = word.partition("=")
        if key in seen:
            raise ConfigError(f"{setting}: {key!r} is given twice in one entry")
        if key in ("read", "write") and not eq:
            if write is not None:
                raise ConfigError(f"{setting}: give one of read and write")
            write = key == "write"
            seen.add(key)
            continue
        seen.add(key)
        if key == "accounts" and eq:
            accounts = _parse_accounts(value, setting)
        elif key == "name" and eq:
            if not _NAME.fullmatch(value):
                raise ConfigError(f"{setting}: name is letters, digits and '_.:-' (up to 40)")
            name = value
        else:
            raise ConfigError(
                f"{setting}: unknown word {word[:20]!r} (expected accounts=..., read, write "
                "or name=...)"
            )
    return TokenSpec(
        sha256=words[0].split(":", 1)[1].lower(),
        accounts=accounts,
        write=bool(write),
        name=name,
    )


def _parse_accounts(value: str, setting: str) -> frozenset[str] | None:
    if value == ALL_ACCOUNTS:
        return None
    names = [part for part in value.split("+") if part]
    if not names:
        raise ConfigError(f"{setting}: accounts= needs account names joined by '+', or '*'")
    for account in names:
        try:
            check_account(account)
        except ValidationError as exc:
            raise ConfigError(f"{setting}: {exc}") from exc
    return frozenset(names)


def parse_entries(entries: Sequence[str], setting: str = "api.tokens") -> list[TokenSpec]:
    """Read every entry; raises `ConfigError` on a bad or repeated one."""
    specs: list[TokenSpec] = []
    seen: set[str] = set()
    for number, text in enumerate(entries, start=1):
        spec = parse_entry(text, f"{setting} (entry {number})")
        if spec.sha256 in seen:
            raise ConfigError(f"{setting} (entry {number}): the same token is listed twice")
        seen.add(spec.sha256)
        specs.append(spec)
    return specs


class TokenSet:
    """The tokens the API accepts. `find` compares hashes in constant time."""

    def __init__(self, specs: Iterable[TokenSpec]) -> None:
        self._specs = tuple(specs)

    def __len__(self) -> int:
        return len(self._specs)

    def replace(self, other: TokenSet) -> None:
        """Accept ``other``'s tokens from now on, instead of these (a reload)."""
        self._specs = other._specs

    def find(self, token: str) -> TokenSpec | None:
        """Return the spec of a presented token, or None when it is not one of ours."""
        presented = digest(token).encode("ascii")
        found: TokenSpec | None = None
        for spec in self._specs:  # every entry compared, whichever matches
            if hmac.compare_digest(presented, spec.sha256.encode("ascii")):
                found = spec
        return found


def token_set(token_hash: str, entries: Sequence[str]) -> TokenSet:
    """The tokens configured by ``api.token`` (already a ``sha256:`` hash, or empty) and
    ``api.tokens``."""
    specs = parse_entries(entries)
    if token_hash:
        env_digest = token_hash.split(":", 1)[1]
        if all(spec.sha256 != env_digest for spec in specs):
            specs.append(TokenSpec(sha256=env_digest, accounts=None, write=True, name="env"))
    return TokenSet(specs)


__all__ = [
    "ALL_ACCOUNTS",
    "TokenSet",
    "TokenSpec",
    "digest",
    "generate_token",
    "hash_setting",
    "is_token_syntax",
    "parse_entries",
    "parse_entry",
    "token_set",
]
