"""Metrics that guests report through ``lunatic::metrics``, kept in memory for the host to read."""

from __future__ import annotations

import math
from dataclasses import dataclass


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
    """Counters, gauges and histograms by name."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.gauges: dict[str, float] = {}
        self.histograms: dict[str, Histogram] = {}

    def count(self, name: str, value: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + value

    def set_gauge(self, name: str, value: float) -> None:
        self.gauges[name] = value

    def add_gauge(self, name: str, delta: float) -> None:
        self.gauges[name] = self.gauges.get(name, 0.0) + delta

    def observe(self, name: str, value: float) -> None:
        histogram = self.histograms.get(name)
        if histogram is None:
            histogram = self.histograms[name] = Histogram()
        histogram.observe(value)
