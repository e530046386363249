"""Hostile values: what a caller, an API client, an upstream API or a CSV file may send to get
a command into the AGI stream or a separator into a dialplan application argument.

Each is pushed through every path that can reach a channel variable (test_injection.py).
"""

from __future__ import annotations

LONG = 8192  # Asterisk's AGI_BUF_LEN: a longer command line runs as two commands

HOSTILE: tuple[str, ...] = (
    # Line breaks and NUL: a new AGI command, or a truncated one.
    "\r",
    "\n",
    "\r\n",
    "104\r\nEXEC System rm",
    "104\nSET VARIABLE SMARTROUTING_STATUS AGENT",
    "\x00",
    "104\x00EXEC",
    # Quoting: end the word early, or escape what follows.
    '"',
    "'",
    "\\",
    '104" "x',
    "104\\",
    "`id`",
    "a b",
    "\t",
    # Dialplan argument separators and groupings.
    ",",
    "|",
    "&",
    "(",
    ")",
    "104,hangup",
    "104|x",
    "104&PJSIP/999",
    "Queue(x)",
    "=",
    "104=1",
    "SMARTROUTING_STATUS=AGENT",
    ";",
    # Substitution, evaluated by EXEC when AGIEXECFULL is set.
    "${",
    "}",
    "$[",
    "]",
    "${SHELL(rm -rf /)}",
    "$[1+1]",
    "${CALLERID(num)}",
    "104${EXTEN}",
    # Lines near and over Asterisk's 8 KiB command buffer.
    "1" * (LONG - 40),
    "a" * LONG,
    "9" * (LONG + 800),
    # Unicode that hides or reorders what an operator sees.
    "\u202e401",
    "104\u200b",
    "\u200d",
    "\ufeff104",
    "\U0001f600",
    "\x1b[31m104",
    "104\x7f",
    "\u0663\u0660\u0664",  # Arabic-Indic digits
    "\uff11\uff10\uff14",  # full-width digits
)

#: A lone surrogate: only where the path carries Python text that never was UTF-8 (JSON
#: escapes); a file or a socket cannot hold one.
LONE_SURROGATE = "\ud800"


def single_line(values: tuple[str, ...] = HOSTILE) -> tuple[str, ...]:
    """The values that can sit on one line (a header line, an AGI argument, a reply)."""
    return tuple(v for v in values if "\n" not in v)


def short_id(value: str) -> str:
    """A printable test id for ``value``."""
    text = value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 24 else f"{text[:16]}...({len(value)})"
