"""Prometheus metrics of the service (``flipkd_`` prefix, base units, no per-text labels).

Every series of a model's work carries the ``domain`` it served (the bundle's name), so each domain has
its own batching, cache, fallback and shadow figures; refusals before a domain is known do not.

One :class:`ServiceMetrics` per app, on its own registry, so several apps (tests) never collide. The
registry also carries prometheus-client's standard ``process_*`` metrics (resident memory, CPU seconds,
open files) of the serving process. Hot paths reach a labelled series through :meth:`ServiceMetrics.series`,
which looks each one up once.

Several front-end processes (``frontends`` > 1) share one exposition through prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor before it starts them): every
process writes its series to files there and each scrape, whichever process answers it, sums counters
and histograms over all of them, live and dead; the queue depth is summed and readiness is the minimum
over live processes. The ``process_*`` metrics are left out in that mode (they would describe only the
process that answered).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The shared metrics folder of a multi-process server, None in a single process."""
    return os.environ.get(MULTIPROCESS_DIR_VARIABLE)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384)
GAP_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("flipkd_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.request_duration = Histogram("flipkd_request_duration_seconds", "HTTP request duration",
                                          ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("flipkd_queue_wait_seconds", "time a text waited for its batch",
                                    ["domain", "engine"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("flipkd_batch_size", "texts per batch", ["domain", "engine"],
                                    buckets=SIZE_BUCKETS, registry=r)
        self.batch_tokens = Histogram("flipkd_batch_tokens", "tokens per batch", ["domain", "engine"],
                                      buckets=TOKEN_BUCKETS, registry=r)
        self.inference = Histogram("flipkd_inference_seconds", "model time per batch", ["domain", "engine"],
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("flipkd_queue_depth", "texts waiting to be batched", ["domain", "engine"],
                                 registry=r, multiprocess_mode="livesum")
        self.texts = Counter("flipkd_texts_embedded", "texts embedded by a model", ["domain", "engine"],
                             registry=r)
        self.cache = Counter("flipkd_cache_lookups", "embedding cache lookups",
                             ["domain", "engine", "result"], registry=r)
        self.served = Counter("flipkd_served", "requests answered, by model", ["domain", "model"], registry=r)
        self.ab_arm = Counter("flipkd_ab_assignments", "A/B arm of each match request", ["domain", "arm"],
                              registry=r)
        self.fallbacks = Counter("flipkd_fallbacks", "teacher answered for the student", ["domain", "reason"],
                                 registry=r)
        self.rejected = Counter("flipkd_rejected", "requests refused before inference", ["reason"],
                                registry=r)
        self.shadow_pairs = Counter("flipkd_shadow_pairs", "pairs scored by the teacher in shadow",
                                    ["domain", "agreement"], registry=r)
        self.shadow_gap = Histogram("flipkd_shadow_score_gap", "|student - teacher| similarity in shadow",
                                    ["domain"], buckets=GAP_BUCKETS, registry=r)
        self.ready = Gauge("flipkd_ready", "1 when the model is loaded and warmed up", ["domain", "engine"],
                           registry=r, multiprocess_mode="livemin")
        self.heap_trim = Histogram("flipkd_heap_trim_seconds", "time to return the C heap's free pages",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.model_info = Gauge("flipkd_model_info", "1 for each domain's bundle and models",
                                ["domain", "bundle", "base_model", "encoder", "threshold", "teacher"],
                                registry=r, multiprocess_mode="livemax")
        self.multiprocess = multiprocess_dir() is not None
        if not self.multiprocess:
            ProcessCollector(registry=r)
        self._series: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}

    def series(self, metric: MetricWrapperBase, *values: str) -> MetricWrapperBase:
        """``metric.labels(*values)`` (values in the order of its label names), looked up once: ``labels``
        takes a lock and checks every value on each call. Label values must come from a bounded set."""
        key = (metric, values)
        child = self._series.get(key)
        if child is None:
            child = self._series[key] = metric.labels(*values)
        return child

    def exposition(self) -> bytes:
        """The text exposition: this registry's, or in multiprocess mode every front end's series."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
