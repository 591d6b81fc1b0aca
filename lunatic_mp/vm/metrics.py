"""Metrics that guests report through ``lunatic::metrics``, kept in memory for the host to read."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_SERIES = 10_000
"""Names (counters, gauges and histograms together) an engine keeps by default: each is kept for
the engine's life and rendered on every scrape of ``/metrics``, so a guest inventing names
(1 M of them made ``/metrics`` 65 MiB and 21 s to render) must not have as many as it likes."""
MAX_NAME_LENGTH = 1024
"""Bytes of the longest metric name a guest may report (longer: its process traps)."""


@dataclass(slots=True)
class Histogram:
    count: int = 0
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)


class Metrics:
    """Counters, gauges and histograms by name: at most ``max_series`` names; a report of a new
    name past that is dropped and counted in ``dropped`` (names already kept go on counting)."""

    def __init__(self, max_series: int = MAX_SERIES) -> None:
        self.max_series = max_series
        self.counters: dict[str, int] = {}
        self.gauges: dict[str, float] = {}
        self.histograms: dict[str, Histogram] = {}
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.counters) + len(self.gauges) + len(self.histograms)

    def _room(self) -> bool:
        """Whether a new name may be kept (counts the report dropped if not)."""
        if len(self) < self.max_series:
            return True
        self.dropped += 1
        return False

    def count(self, name: str, value: int = 1) -> None:
        counters = self.counters
        if name in counters:
            counters[name] += value
        elif self._room():
            counters[name] = value

    def set_gauge(self, name: str, value: float) -> None:
        if name in self.gauges or self._room():
            self.gauges[name] = value

    def add_gauge(self, name: str, delta: float) -> None:
        gauges = self.gauges
        if name in gauges:
            gauges[name] += delta
        elif self._room():
            gauges[name] = 0.0 + delta

    def observe(self, name: str, value: float) -> None:
        histogram = self.histograms.get(name)
        if histogram is None:
            if not self._room():
                return
            histogram = self.histograms[name] = Histogram()
        histogram.observe(value)
