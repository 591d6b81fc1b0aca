"""``/metrics`` of ``lunatic-mp serve``: the runtime's figures in the Prometheus text format.

A scrape takes a :class:`Snapshot` (each worker's statistics, asked for at scrape time, and the
server's own counters) and renders it; nothing is kept between scrapes except what the server
counts anyway. Per-worker series carry a ``worker`` label (sum them for the whole runtime).

Guests' ``lunatic::metrics`` figures keep their own names in a ``name`` label, since a guest may
name a metric anything (``counter.requests``), which Prometheus metric names cannot be:

- ``lunatic_guest_counter_total{worker, name}``: counters;
- ``lunatic_guest_gauge{worker, name}``: gauges;
- ``lunatic_guest_histogram{worker, name}``: histograms, as a summary (``_count``, ``_sum``),
  with ``lunatic_guest_histogram_min`` and ``_max`` beside it (guests report no buckets);
- ``lunatic_guest_metrics_dropped_total{worker}``: reports of a new name dropped because the
  worker keeps as many names as it may (``Runtime(max_metric_series=...)``).

HTTP routes (served by each worker, :mod:`lunatic_mp.serve.http`):

- ``lunatic_http_requests_total{worker, route, status}``: requests answered, by route (its path
  pattern; ``none`` for requests no route matched) and status;
- ``lunatic_http_request_duration_seconds{worker, route}``: a histogram of the time from a
  request's arrival to its answer;
- ``lunatic_http_in_flight{worker}``: requests being handled.

Counters of a worker restart from zero when the worker is replaced, as Prometheus expects of a
restarted target.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Content-Type of :func:`render`'s output."""


@dataclass
class Snapshot:
    """What one scrape shows."""

    workers: list[dict[str, Any]]
    """``Runtime.stats()``: each live worker's figures."""
    configured_workers: int
    workers_lost: int
    modules: int
    start_time: float
    requests: dict[str, int] = field(default_factory=dict)
    """Control-socket requests and notifications handled, by method."""
    errors: dict[str, int] = field(default_factory=dict)
    """Control-socket error answers, by code."""
    closed: dict[str, int] = field(default_factory=dict)
    """Control-socket connections the server closed, by why (a wrong token, a stalled client...)."""
    connections: int = 0
    in_flight: int = 0
    reloads: dict[str, int] = field(default_factory=dict)
    """Module reloads by result: ``ok`` or ``failed``."""


class _SnapshotCollector:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        yield _gauge("lunatic_workers", "Live worker processes.", len(s.workers))
        yield _gauge(
            "lunatic_workers_configured", "Worker processes the runtime keeps.", s.configured_workers
        )
        lost = CounterMetricFamily("lunatic_workers_lost", "Worker processes that died and were replaced.")
        lost.add_metric([], s.workers_lost)
        yield lost
        yield _gauge("lunatic_modules", "Modules the server serves.", s.modules)
        yield _gauge("lunatic_start_time_seconds", "When the server started (Unix time).", s.start_time)

        processes = GaugeMetricFamily("lunatic_processes", "Live processes.", labels=["worker"])
        capacity = GaugeMetricFamily(
            "lunatic_process_capacity", "Processes a worker may hold.", labels=["worker"]
        )
        hibernated = GaugeMetricFamily(
            "lunatic_hibernated_processes",
            "Processes idle in receive whose pages went back to the kernel until they run again.",
            labels=["worker"],
        )
        malformed = CounterMetricFamily(
            "lunatic_malformed_frames", "Frames a worker received and dropped as invalid.", labels=["worker"]
        )
        dropped = CounterMetricFamily(
            "lunatic_guest_metrics_dropped",
            "Guest metric reports dropped: a new name past the worker's bound on names.",
            labels=["worker"],
        )
        counters = CounterMetricFamily(
            "lunatic_guest_counter", "Guests' lunatic::metrics counters.", labels=["worker", "name"]
        )
        gauges = GaugeMetricFamily(
            "lunatic_guest_gauge", "Guests' lunatic::metrics gauges.", labels=["worker", "name"]
        )
        histograms = SummaryMetricFamily(
            "lunatic_guest_histogram", "Guests' lunatic::metrics histograms.", labels=["worker", "name"]
        )
        minima = GaugeMetricFamily(
            "lunatic_guest_histogram_min", "Smallest value a guest histogram saw.", labels=["worker", "name"]
        )
        maxima = GaugeMetricFamily(
            "lunatic_guest_histogram_max", "Largest value a guest histogram saw.", labels=["worker", "name"]
        )
        for stats in s.workers:
            worker = str(stats.get("worker", ""))
            processes.add_metric([worker], stats.get("processes", 0))
            capacity.add_metric([worker], stats.get("capacity", 0))
            hibernated.add_metric([worker], stats.get("hibernated", 0))
            malformed.add_metric([worker], stats.get("malformed_frames", 0))
            dropped.add_metric([worker], stats.get("metrics_dropped", 0))
            for name, value in sorted(stats.get("counters", {}).items()):
                counters.add_metric([worker, name], value)
            for name, value in sorted(stats.get("gauges", {}).items()):
                gauges.add_metric([worker, name], value)
            for name, (count, total, minimum, maximum) in sorted(stats.get("histograms", {}).items()):
                histograms.add_metric([worker, name], count_value=count, sum_value=total)
                minima.add_metric([worker, name], minimum)
                maxima.add_metric([worker, name], maximum)
        yield from (processes, capacity, hibernated, malformed, dropped)
        yield from (counters, gauges, histograms, minima, maxima)
        yield from _http_metrics(s.workers)

        requests = CounterMetricFamily(
            "lunatic_control_requests", "Control-socket calls handled, by method.", labels=["method"]
        )
        for method, count in sorted(s.requests.items()):
            requests.add_metric([method], count)
        errors = CounterMetricFamily(
            "lunatic_control_errors", "Control-socket error answers, by code.", labels=["code"]
        )
        for code, count in sorted(s.errors.items()):
            errors.add_metric([code], count)
        closed = CounterMetricFamily(
            "lunatic_control_connections_closed",
            "Control-socket connections the server closed, by why (busy, no_token, wrong_token, "
            "auth_timeout, stalled, not_msgpack, too_large).",
            labels=["reason"],
        )
        for reason, count in sorted(s.closed.items()):
            closed.add_metric([reason], count)
        reloads = CounterMetricFamily("lunatic_reloads", "Module reloads, by result.", labels=["result"])
        for result in ("ok", "failed"):
            reloads.add_metric([result], s.reloads.get(result, 0))
        yield from (requests, errors, closed, reloads)
        yield _gauge("lunatic_control_connections", "Open control-socket connections.", s.connections)
        yield _gauge("lunatic_control_in_flight", "Control-socket requests being handled.", s.in_flight)


def _http_metrics(workers: list[dict[str, Any]]) -> Iterator[Metric]:
    from lunatic_mp.serve.http import LATENCY_BUCKETS  # kept out of the import of this module

    requests = CounterMetricFamily(
        "lunatic_http_requests",
        "HTTP requests answered, by route and status.",
        labels=["worker", "route", "status"],
    )
    latency = HistogramMetricFamily(
        "lunatic_http_request_duration_seconds",
        "Time from an HTTP request's arrival to its answer.",
        labels=["worker", "route"],
    )
    in_flight = GaugeMetricFamily("lunatic_http_in_flight", "HTTP requests being handled.", labels=["worker"])
    bounds = [*(f"{bound:g}" for bound in LATENCY_BUCKETS), "+Inf"]
    for stats in workers:
        http = stats.get("http") or {}
        if not http:
            continue
        worker = str(stats.get("worker", ""))
        in_flight.add_metric([worker], http.get("in_flight", 0))
        for route, status, count in sorted(http.get("requests", [])):
            requests.add_metric([worker, route, str(status)], count)
        for route, (buckets, total, _count) in sorted(http.get("latency", {}).items()):
            cumulative = list(itertools.accumulate(buckets))
            latency.add_metric([worker, route], list(zip(bounds, cumulative, strict=True)), total)
    yield from (requests, latency, in_flight)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def render(snapshot: Snapshot) -> bytes:
    """The Prometheus text exposition of ``snapshot``, plus this process's own figures
    (``process_cpu_seconds_total``, memory, open files: the serving process, not its workers)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))  # type: ignore[arg-type]
    ProcessCollector(registry=registry)
    data: bytes = generate_latest(registry)
    return data


__all__ = ["CONTENT_TYPE", "Snapshot", "render"]
