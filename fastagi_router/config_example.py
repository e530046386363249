"""The example configuration file, written from the settings definitions themselves.

The meaning of a setting is the ``#:`` comment above its field in `fastagi_router.config`,
and a section's is its class docstring: one source for the code, ``check-config --example``
and ``deploy/config.example.toml``, which a test keeps equal to what this module writes.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import textwrap
import typing
from typing import Any

from fastagi_router.config import ENV_ONLY, Settings, env_name

_FIELD = re.compile(r"^\s+(\w+):")
_DOC = re.compile(r"^\s+#:\s?(.*)$")
_WIDTH = 92

HEADER = """\
# fastagi-router configuration (TOML). Written by `fastagi-router check-config --example`.
#
# Every setting is shown commented out at its default, under its meaning and its
# environment variable. Uncomment what you change. Settings come from, in rising order:
# defaults, this file (--config FILE or $FASTAGI_ROUTER_CONFIG), FASTAGI_ROUTER_*
# environment variables, command-line flags. `fastagi-router check-config FILE` checks a
# file without starting anything.
"""


def field_docs(cls: type) -> dict[str, str]:
    """Return the ``#:`` comment of every field of the dataclass ``cls``, joined into one
    paragraph per field (fields without one are absent)."""
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        doc = _DOC.match(line)
        if doc:
            pending.append(doc.group(1).strip())
            continue
        match = _FIELD.match(line)
        if match and pending:
            docs[match.group(1)] = " ".join(pending)
        pending = []
    return docs


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON strings are TOML basic strings for the characters a default can hold.
        return json.dumps(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {value!r}")  # pragma: no cover


def _comment(text: str) -> list[str]:
    # reStructuredText literals read as Markdown ones in a plain comment.
    text = text.replace("``", "`")
    return textwrap.wrap(text, _WIDTH - 2, initial_indent="# ", subsequent_indent="# ")


def _section(cls: type, instance: Any, prefix: str) -> list[str]:
    lines: list[str] = []
    docs = field_docs(cls)
    for item in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[item.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            continue
        dotted = prefix + item.name
        lines.append("")
        lines += _comment(docs.get(item.name, ""))
        if dotted in ENV_ONLY:
            lines.append(f"# Environment only: {env_name(dotted)}. Never in this file.")
            continue
        lines.append(f"# env: {env_name(dotted)}")
        lines.append(f"#{item.name} = {_toml(getattr(instance, item.name))}")
    return lines


def example_config() -> str:
    """Return the example configuration: every setting, commented out at its default."""
    settings = Settings()
    lines = HEADER.splitlines()
    lines += _section(Settings, settings, "")
    for item in dataclasses.fields(Settings):
        tp = typing.get_type_hints(Settings)[item.name]
        if not (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
            continue
        doc = inspect.cleandoc(tp.__doc__ or "")
        lines += ["", "", f"[{item.name}]"]
        for index, paragraph in enumerate(doc.split("\n\n")):
            lines += ["#"] * bool(index) + _comment(" ".join(paragraph.split()))
        lines += _section(tp, getattr(settings, item.name), item.name + ".")
    return "\n".join(lines) + "\n"


def undocumented() -> list[str]:
    """Return the dotted names of settings that have no ``#:`` comment."""
    missing: list[str] = []
    for item in dataclasses.fields(Settings):
        tp = typing.get_type_hints(Settings)[item.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            docs = field_docs(tp)
            missing += [
                f"{item.name}.{f.name}" for f in dataclasses.fields(tp) if f.name not in docs
            ]
        elif item.name not in field_docs(Settings):
            missing.append(item.name)
    return missing
