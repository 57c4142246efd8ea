"""Prometheus metrics (default registry, so process_* and python_* metrics come along)."""

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # no *_created series: less noise for scrapers and tests

# Text format 0.0.4: accepted by every Prometheus version (and by Prometheus 3 without
# a fallback_scrape_protocol).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

ACTIVE_PIPELINE_EXECUTIONS = Gauge(
    "active_pipeline_executions",
    "Pipeline API requests (/api/v1/pipeline*) currently in flight on this replica",
)
HTTP_REQUESTS = Counter(
    "conductor_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "conductor_http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_IN_FLIGHT = Gauge("conductor_http_requests_in_flight", "HTTP requests currently in flight")
REPLICA_INFO = Gauge(
    "conductor_replica_info", "Constant 1, labelled with this replica's identity",
    ["replica", "environment", "version"],
)
READY = Gauge("conductor_ready", "1 when the last readiness evaluation passed")
DEPENDENCY_UP = Gauge(
    "conductor_dependency_up", "1 when the last live check of the dependency passed", ["dependency"]
)
DEPENDENCY_CHECK_DURATION = Histogram(
    "conductor_dependency_check_duration_seconds", "Duration of readiness checks",
    ["dependency"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0),
)
DEPENDENCY_ERRORS = Counter(
    "conductor_dependency_errors_total", "Failed operations against a dependency",
    ["dependency", "operation"],
)
BREAKER_OPEN = Gauge(
    "conductor_circuit_open", "1 while the dependency's circuit breaker is open", ["dependency"]
)
PIPELINES_CREATED = Counter("conductor_pipelines_created_total", "Pipelines committed by this replica")
IDEMPOTENT_REPLAYS = Counter(
    "conductor_idempotent_replays_total", "POSTs answered from an earlier Idempotency-Key"
)
MESSAGES_PUBLISHED = Counter(
    "conductor_messages_published_total", "Messages confirmed by RabbitMQ"
)
CACHE_REQUESTS = Counter("conductor_cache_requests_total", "Redis cache lookups", ["result"])
FAULTS_INJECTED = Counter("conductor_faults_injected_total", "Injected faults applied", ["kind"])
LOOP_LAG = Gauge("conductor_event_loop_lag_seconds", "Latest measured event-loop scheduling lag")
OVERLOAD_REJECTIONS = Counter(
    "conductor_overload_rejections_total",
    "Requests answered 503 because this replica was saturated, not its dependencies", ["reason"],
)
CPU_COST_MS = Gauge("conductor_cpu_cost_ms", "CPU work burnt per POST, in milliseconds")

__all__ = [name for name in dir() if name.isupper()] + ["generate_latest"]
