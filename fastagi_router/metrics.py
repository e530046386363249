"""Counters and gauges, rendered in the Prometheus text format.

Kept deliberately small: the router counts a handful of things on the call path, and an
increment must cost no more than a dict update. One `Metrics` object is created at start-up
and passed to whatever counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """A registry of counters (monotonic) and gauges (read when rendered)."""

    def __init__(self, prefix: str = "fastagi_router_") -> None:
        self._prefix = prefix
        self._help: dict[str, tuple[str, str]] = {}
        self._counters: dict[str, defaultdict[Labels, float]] = {}
        self._gauges: dict[str, Callable[[], float]] = {}

    def describe(self, name: str, kind: str, text: str) -> None:
        """Declare a metric's type (``counter`` or ``gauge``) and help text."""
        self._help[name] = (kind, text)
        if kind == "counter":
            self._counters.setdefault(name, defaultdict(float))

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` to counter ``name`` with ``labels``.

        Callers pass a counter's labels in the same order every time; the key is not sorted
        here (it is on the call path), only when rendered.
        """
        series = self._counters.get(name)
        if series is None:
            series = self._counters[name] = defaultdict(float)
        series[tuple(labels.items())] += amount

    def counter(self, name: str, **labels: str) -> Callable[[float], None]:
        """Return a function that adds to counter ``name`` with ``labels``: an increment
        on the call path without building the label key each time."""
        series = self._counters.get(name)
        if series is None:
            series = self._counters[name] = defaultdict(float)
        key = tuple(labels.items())
        counts = series

        def add(amount: float = 1.0) -> None:
            counts[key] += amount

        return add

    def gauge(self, name: str, read: Callable[[], float], text: str = "") -> None:
        """Register a gauge whose value is ``read()`` at render time."""
        self._gauges[name] = read
        self._help.setdefault(name, ("gauge", text))

    def value(self, name: str, **labels: str) -> float:
        """Return a counter's current value (0 when never incremented), or a gauge's."""
        if name in self._gauges:
            return self._gauges[name]()
        series = self._counters.get(name)
        if series is None:
            return 0.0
        wanted = sorted(labels.items())
        return sum(v for k, v in series.items() if sorted(k) == wanted)

    def total(self, name: str) -> float:
        """Return the sum of a counter over all its label sets."""
        return sum(self._counters.get(name, {}).values())

    def render(self) -> str:
        """Return every metric in the Prometheus text exposition format."""
        lines: list[str] = []
        for name in sorted(set(self._counters) | set(self._gauges)):
            full = self._prefix + name
            kind, text = self._help.get(name, ("counter", ""))
            if text:
                lines.append(f"# HELP {full} {text}")
            lines.append(f"# TYPE {full} {kind}")
            if name in self._gauges:
                lines.append(f"{full} {self._gauges[name]():g}")
                continue
            merged: defaultdict[Labels, float] = defaultdict(float)
            for labels, value in self._counters[name].items():
                merged[tuple(sorted(labels))] += value
            for labels, value in sorted(merged.items()):
                rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{full}{{{rendered}}} {value:g}" if rendered else f"{full} {value:g}")
        return "\n".join(lines) + "\n"
