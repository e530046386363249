"""Counters, gauges and histograms, exposed through the official Prometheus client.

The call path is hot (tens of microseconds a call), so the values live in plain dicts and
lists that one event loop thread updates without locks: an increment is a dict update, an
observation a bisect and two list updates. `prometheus_client` is used where it is good and
not on the call path: `MetricsCollector` turns the values into metric families when
``/metrics`` is scraped, and `Metrics.exposition` renders them (with the library's process
and platform collectors) in the text or the OpenMetrics format.

With several workers, each process writes `Metrics.snapshot` (plain JSON) and the
supervisor `include`s them: counters and histograms are summed; gauges are summed too, which
is what they mean: sessions in progress in all workers, and for a state gauge (one series
per state, 1 for the current one) the number of workers in each state.

One `Metrics` object is created at start-up and passed to whatever counts.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

Labels = tuple[tuple[str, str], ...]
#: What `Metrics.snapshot` returns: plain JSON-able data.
Snapshot = dict[str, Any]
PREFIX = "fastagi_router_"

#: Seconds, from the fast path (tens of microseconds) to a call that waited for its deadline.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
)  # fmt: skip
#: Round trips with Asterisk per call: 1 for a recognised caller, more with prompts.
ROUND_TRIP_BUCKETS = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)


class Histogram:
    """One histogram series: a count per bucket (not cumulative: cumulated when shown) and
    the sum of the observations. To observe ``v`` without a function call:
    ``h.counts[bisect_left(h.bounds, v)] += 1; h.total += v``."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


class Metrics:
    """A registry of counters (monotonic), gauges (read when shown) and histograms."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self._prefix = prefix
        self._help: dict[str, tuple[str, str]] = {}
        #: Counter series: one single-item list (a cell) per label set, so that a pre-bound
        #: increment is ``cell[0] += 1``: no hashing of the label key.
        self._counters: dict[str, dict[Labels, list[float]]] = {}
        self._counter_reads: dict[str, list[tuple[Labels, Callable[[], float]]]] = {}
        self._gauges: dict[str, list[tuple[Labels, Callable[[], float]]]] = {}
        self._histograms: dict[str, dict[Labels, Histogram]] = {}
        self._buckets: dict[str, tuple[float, ...]] = {}
        self._sources: list[Callable[[], Iterable[Snapshot]]] = []
        self._registry: CollectorRegistry | None = None

    # -- declaring and counting (the call path uses the pre-bound forms) -------------------

    def describe(self, name: str, kind: str, text: str) -> None:
        """Declare a metric's type (``counter``, ``gauge`` or ``histogram``) and help text."""
        self._help[name] = (kind, text)
        if kind == "counter":
            self._counters.setdefault(name, {})

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` to counter ``name`` with ``labels``.

        Callers pass a counter's labels in the same order every time; the key is not sorted
        here (it is on the call path), only when shown. Label values must come from a small
        fixed set: never a number, an account, a code or an id.
        """
        series = self._counters.get(name)
        key = tuple(labels.items())
        cell = series.get(key) if series is not None else None
        if cell is None:
            cell = self.cell(name, **labels)
        cell[0] += amount

    def cell(self, name: str, **labels: str) -> list[float]:
        """Return the one-item list that holds counter ``name`` with ``labels``: the call
        path adds to ``cell[0]`` with no function call at all. The series is shown (at 0)
        from now on, so that rate() sees its first increment."""
        series = self._counters.setdefault(name, {})
        return series.setdefault(tuple(labels.items()), [0.0])

    def counter(self, name: str, **labels: str) -> Callable[[float], None]:
        """Return a function that adds to counter ``name`` with ``labels``: an increment
        without building the label key each time."""
        cell = self.cell(name, **labels)

        def add(amount: float = 1.0) -> None:
            cell[0] += amount

        return add

    def counter_read(self, name: str, read: Callable[[], float], **labels: str) -> None:
        """Register a counter whose value is ``read()`` when shown: for a count another
        object keeps anyway (e.g. the hot layer's hits), at no cost on the call path."""
        self._help.setdefault(name, ("counter", ""))
        self._counter_reads.setdefault(name, []).append((tuple(labels.items()), read))

    def histogram(
        self, name: str, buckets: Sequence[float] = LATENCY_BUCKETS, **labels: str
    ) -> Callable[[float], None]:
        """Return a function that observes a value in histogram ``name`` with ``labels``.

        Every series of one histogram has the same ``buckets`` (upper bounds, ascending).
        """
        return self.histogram_series(name, buckets, **labels).observe

    def histogram_series(
        self, name: str, buckets: Sequence[float] = LATENCY_BUCKETS, **labels: str
    ) -> Histogram:
        """Return histogram ``name``'s series for ``labels``, for a caller that updates its
        ``counts`` and ``total`` itself (see `Histogram`)."""
        bounds = self._buckets.setdefault(name, tuple(buckets))
        self._help.setdefault(name, ("histogram", ""))
        series = self._histograms.setdefault(name, {})
        key = tuple(labels.items())
        histogram = series.get(key)
        if histogram is None:
            histogram = series[key] = Histogram(bounds)
        return histogram

    def gauge(self, name: str, read: Callable[[], float], text: str = "", **labels: str) -> None:
        """Register a gauge series whose value is ``read()`` when shown."""
        self._help.setdefault(name, ("gauge", text))
        series = self._gauges.setdefault(name, [])
        key = tuple(labels.items())
        series[:] = [(k, r) for k, r in series if k != key]
        series.append((key, read))

    def states(
        self, name: str, label: str, states: Iterable[str], current: Callable[[], str], text: str
    ) -> None:
        """Register a state gauge: one series per state, 1 for ``current()``, 0 otherwise.

        Summed over workers, each series says how many are in that state.
        """
        for state in states:
            self.gauge(name, _is(current, state), text, **{label: state})

    # -- reading ---------------------------------------------------------------------------

    def value(self, name: str, **labels: str) -> float:
        """Return a counter's or a gauge's current value with ``labels`` (summed over the
        series that have them; 0 when none), or a histogram's count of observations."""
        return sum(value for key, value in self._series(name) if set(labels.items()) <= set(key))

    def total(self, name: str) -> float:
        """Return the sum of a counter over all its label sets."""
        return sum(value for _, value in self._series(name))

    def histogram_sum(self, name: str, **labels: str) -> float:
        """Return the sum of the values a histogram observed with ``labels``."""
        return sum(
            h.total
            for key, h in self._histograms.get(name, {}).items()
            if set(labels.items()) <= set(key)
        )

    def _series(self, name: str) -> Iterator[tuple[Labels, float]]:
        for key, cell in self._counters.get(name, {}).items():
            yield key, cell[0]
        for key, read in self._counter_reads.get(name, ()):
            yield key, read()
        for key, read in self._gauges.get(name, ()):
            yield key, read()
        for key, histogram in self._histograms.get(name, {}).items():
            yield key, float(sum(histogram.counts))

    # -- across processes ------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Return every value as JSON-able data (see `include`)."""
        counters: dict[str, list[Any]] = defaultdict(list)
        for name, series in self._counters.items():
            counters[name] += [[[list(p) for p in key], cell[0]] for key, cell in series.items()]
        for name, reads in self._counter_reads.items():
            counters[name] += [[[list(p) for p in key], read()] for key, read in reads]
        return {
            "help": {name: list(kind_text) for name, kind_text in self._help.items()},
            "counters": counters,
            "gauges": {
                name: [[[list(pair) for pair in key], read()] for key, read in series]
                for name, series in self._gauges.items()
            },
            "histograms": {
                name: {
                    "buckets": list(self._buckets[name]),
                    "series": [
                        [[list(pair) for pair in key], list(h.counts), h.total]
                        for key, h in series.items()
                    ],
                }
                for name, series in self._histograms.items()
            },
        }

    def include(self, source: Callable[[], Iterable[Snapshot]]) -> None:
        """Add the snapshots ``source()`` returns (other processes: the workers) to what is
        shown: counters, gauges and histograms are summed with these."""
        self._sources.append(source)

    def merged(self) -> Snapshot:
        """Return this process's snapshot summed with every `include`d one, label keys
        sorted: {"help", "counters", "gauges", "histograms"}."""
        help_ = dict(self._help)
        counters: dict[str, defaultdict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        gauges: dict[str, defaultdict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        histograms: dict[str, tuple[tuple[float, ...], dict[Labels, list[float]]]] = {}
        for snap in [self.snapshot(), *(s for source in self._sources for s in source())]:
            for name, (kind, text) in snap.get("help", {}).items():
                help_.setdefault(name, (kind, text))
            for into, kind in ((counters, "counters"), (gauges, "gauges")):
                for name, rows in snap.get(kind, {}).items():
                    target = into[name]
                    for key, value in rows:
                        target[_key(key)] += float(value)
            for name, data in snap.get("histograms", {}).items():
                bounds = tuple(float(b) for b in data["buckets"])
                known, series = histograms.setdefault(name, (bounds, {}))
                if known != bounds:
                    continue  # a worker of another version: its buckets cannot be added
                for key, counts, total in data["series"]:
                    # The count in each bucket (the last: +Inf), then the sum.
                    cells = series.setdefault(_key(key), [0.0] * (len(bounds) + 2))
                    for i, count in enumerate([*counts, total]):
                        cells[i] += float(count)
        return {"help": help_, "counters": counters, "gauges": gauges, "histograms": histograms}

    # -- exposition ------------------------------------------------------------------------

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """Return every metric (summed over `include`d sources), plus the process and
        platform metrics of this process, encoded for ``accept`` (an HTTP Accept header:
        OpenMetrics when asked for, else the Prometheus text format), and the content type.
        """
        if self._registry is None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(MetricsCollector(self))
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
            self._registry = registry
        encode, content_type = choose_encoder(accept)
        return encode(self._registry), content_type

    def render(self) -> str:
        """Return this registry's metrics (no process metrics) in the Prometheus text format."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(MetricsCollector(self))
        encode, _ = choose_encoder("")
        return encode(registry).decode()


class MetricsCollector:
    """A `prometheus_client` collector over a `Metrics` registry and its included sources."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """Yield one metric family per metric, series sorted by labels."""
        merged = self._metrics.merged()
        prefix = self._metrics._prefix
        help_: dict[str, tuple[str, str]] = merged["help"]
        shown = set(merged["counters"]) | set(merged["gauges"]) | set(merged["histograms"])
        for name in sorted(set(help_) - shown):
            # Declared, nothing observed yet: the family says it exists.
            kind, text = help_[name]
            if kind in ("counter", "gauge", "histogram"):
                yield Metric(prefix + name, text, kind)
        families: tuple[tuple[str, type[CounterMetricFamily | GaugeMetricFamily]], ...] = (
            ("counters", CounterMetricFamily),
            ("gauges", GaugeMetricFamily),
        )
        for kind, family_type in families:
            for name in sorted(merged[kind]):
                rows = merged[kind][name]
                names = _label_names(rows)
                family = family_type(prefix + name, help_.get(name, ("", ""))[1], labels=names)
                for key, value in sorted(rows.items()):
                    family.add_metric(_values(key, names), value)
                yield family
        for name in sorted(merged["histograms"]):
            bounds, series = merged["histograms"][name]
            names = _label_names(series)
            histogram = HistogramMetricFamily(
                prefix + name, help_.get(name, ("", ""))[1], labels=names
            )
            for key, counts in sorted(series.items()):
                cumulative = 0.0
                buckets: list[tuple[str, float]] = []
                for bound, count in zip([*bounds, float("inf")], counts, strict=False):
                    cumulative += count
                    buckets.append((_bound(bound), cumulative))
                histogram.add_metric(_values(key, names), buckets, sum_value=counts[-1])
            yield histogram


def _is(current: Callable[[], str], state: str) -> Callable[[], float]:
    return lambda: float(current() == state)


def _key(pairs: Iterable[Iterable[str]]) -> Labels:
    return tuple(sorted((str(k), str(v)) for k, v in pairs))


def _label_names(rows: Iterable[Labels]) -> list[str]:
    return sorted({k for key in rows for k, _ in key})


def _values(key: Labels, names: list[str]) -> list[str]:
    labels = dict(key)
    return [labels.get(name, "") for name in names]


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))
