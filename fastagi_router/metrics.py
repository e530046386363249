"""Counters and gauges, rendered in the Prometheus text format.

Kept deliberately small: the router counts a handful of things on the call path, and an
increment must cost no more than a dict update. One `Metrics` object is created at start-up
and passed to whatever counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

Labels = tuple[tuple[str, str], ...]
#: What `Metrics.snapshot` returns: plain JSON-able data.
Snapshot = dict[str, Any]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """A registry of counters (monotonic) and gauges (read when rendered)."""

    def __init__(self, prefix: str = "fastagi_router_") -> None:
        self._prefix = prefix
        self._help: dict[str, tuple[str, str]] = {}
        self._counters: dict[str, defaultdict[Labels, float]] = {}
        self._gauges: dict[str, Callable[[], float]] = {}
        self._sources: list[Callable[[], Iterable[Snapshot]]] = []

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

    def snapshot(self) -> Snapshot:
        """Return every counter and gauge as JSON-able data (see `include`)."""
        return {
            "help": {name: list(kind_text) for name, kind_text in self._help.items()},
            "counters": {
                name: [[[list(pair) for pair in labels], value] for labels, value in series.items()]
                for name, series in self._counters.items()
            },
            "gauges": {name: read() for name, read in self._gauges.items()},
        }

    def include(self, source: Callable[[], Iterable[Snapshot]]) -> None:
        """Add the snapshots ``source()`` returns (other processes: the workers) to what
        `render` shows: counters and gauges are summed with these."""
        self._sources.append(source)

    def _merged(self) -> tuple[dict[str, defaultdict[Labels, float]], dict[str, float]]:
        counters: dict[str, defaultdict[Labels, float]] = {}
        for name, series in self._counters.items():
            target = counters.setdefault(name, defaultdict(float))
            for labels, value in series.items():
                target[tuple(sorted(labels))] += value
        gauges = {name: read() for name, read in self._gauges.items()}
        for source in self._sources:
            for snap in source():
                for name, (kind, text) in snap.get("help", {}).items():
                    self._help.setdefault(name, (kind, text))
                for name, rows in snap.get("counters", {}).items():
                    target = counters.setdefault(name, defaultdict(float))
                    for labels, value in rows:
                        key = tuple(sorted((str(k), str(v)) for k, v in labels))
                        target[key] += float(value)
                for name, value in snap.get("gauges", {}).items():
                    gauges[name] = gauges.get(name, 0.0) + float(value)
        return counters, gauges

    def render(self) -> str:
        """Return every metric in the Prometheus text exposition format, summed with the
        snapshots of `include`d sources."""
        counters, gauges = self._merged()
        lines: list[str] = []
        for name in sorted(set(counters) | set(gauges)):
            full = self._prefix + name
            kind, text = self._help.get(name, ("counter", ""))
            if text:
                lines.append(f"# HELP {full} {text}")
            lines.append(f"# TYPE {full} {kind}")
            if name in gauges:
                lines.append(f"{full} {gauges[name]:g}")
                continue
            for labels, value in sorted(counters[name].items()):
                rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{full}{{{rendered}}} {value:g}" if rendered else f"{full} {value:g}")
        return "\n".join(lines) + "\n"
