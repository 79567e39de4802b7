"""Prometheus metrics of one server, in a CollectorRegistry of its own.

Not the process-global registry: two apps in one process (tests, an embedding program)
must not share or double-register counters, and the global one would add the process's
Python collectors to a scrape that is about forecasting.

Requests and their latency are counted as they are answered (``ServeMetrics.observe``,
called by the request-log middleware). What the service and the model manager already
count (executed batch sizes, loads, unloads, resident models and their bytes) is read at
scrape time by :class:`ServiceCollector`, so there is one source of truth for each number.

    kronos_http_requests_total{endpoint, model, status}
    kronos_http_request_duration_seconds{endpoint}      (histogram)
    kronos_batch_size                                    (histogram of executed batches)
    kronos_model_loads_total{model}, kronos_model_unloads_total{model}
    kronos_loaded_model_bytes{model, device}, kronos_loaded_models
"""

from __future__ import annotations

from typing import Iterable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
# Label values for requests that name no model, or a name the registry does not know (a
# label per arbitrary client-chosen string would grow the series without bound).
NO_MODEL = ""
OTHER_MODEL = "(unknown)"


class ServeMetrics:
    """The metrics of one app; ``render()`` is the body of GET /metrics."""

    def __init__(self, service, known_models: Iterable[str]):
        self.registry = CollectorRegistry()
        self.known_models = frozenset(known_models)
        self.requests = Counter("kronos_http_requests", "HTTP requests answered, by endpoint, model and status.",
                                ["endpoint", "model", "status"], registry=self.registry)
        self.latency = Histogram("kronos_http_request_duration_seconds",
                                 "Seconds from a request's arrival to its answer, by endpoint.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(ServiceCollector(service))

    def observe(self, *, endpoint: str, model: str | None, status: int, seconds: float) -> None:
        label = NO_MODEL if not model else model if model in self.known_models else OTHER_MODEL
        self.requests.labels(endpoint, label, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class ServiceCollector(Collector):
    """Reads the service's and the manager's own counts at each scrape."""

    def __init__(self, service):
        self.service = service

    def collect(self):
        yield self._batch_sizes()
        manager = self.service.manager
        yield _per_model_counter("kronos_model_loads", "Models loaded into memory, by entry.", manager.loads)
        yield _per_model_counter("kronos_model_unloads", "Models unloaded (LRU, keep-alive or by request), by entry.",
                                 manager.unloads)
        resident = GaugeMetricFamily("kronos_loaded_model_bytes", "Bytes of each resident model (weights).",
                                     labels=["model", "device"])
        loaded = list(manager.loaded())
        for model in loaded:
            resident.add_metric([model.name, str(model.device)], float(model.bytes or 0))
        yield resident
        yield GaugeMetricFamily("kronos_loaded_models", "Models resident now.", value=len(loaded))
        yield GaugeMetricFamily("kronos_forecasts_waiting", "Forecasts queued or running now (--max-queue bounds it).",
                                value=self.service.waiting())

    def _batch_sizes(self) -> HistogramMetricFamily:
        counts = dict(self.service.batch_sizes)  # a copy: batch threads add to it
        buckets = []
        for bound in BATCH_BUCKETS:
            running = sum(n for size, n in counts.items() if size <= bound)
            buckets.append((str(bound), running))
        total = sum(counts.values())
        buckets.append(("+Inf", total))
        return HistogramMetricFamily("kronos_batch_size", "Forecast requests per executed batch.",
                                     buckets=buckets, sum_value=sum(size * n for size, n in counts.items()))


def _per_model_counter(name: str, documentation: str, counts: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["model"])
    for model, count in sorted(dict(counts).items()):
        family.add_metric([model], count)
    return family
