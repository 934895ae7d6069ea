"""The gateway's Prometheus metrics (promtool-clean names, base units)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS

HTTP_REQUESTS = Counter(
    "revive_gateway_http_requests_total", "HTTP requests handled, by route and status code.", ["route", "method", "code"]
)
HTTP_SECONDS = Histogram(
    "revive_gateway_http_request_duration_seconds", "HTTP request handling time.", ["route"], buckets=LATENCY_BUCKETS
)
STAGE_SECONDS = Histogram(
    "revive_gateway_stage_duration_seconds", "Time one photo spends in a pipeline stage.", ["stage"], buckets=LATENCY_BUCKETS
)
PHOTOS = Counter("revive_gateway_photos_total", "Photos processed, by outcome.", ["outcome"])
CANDIDATES = Counter("revive_gateway_candidates_total", "Candidates returned (upscaled and stored).")
GENERATED = Counter("revive_gateway_generated_candidates_total",
                    "Candidates generated, surplus included; only those ranked best are upscaled and stored.")
PHOTOS_WAITING = Gauge("revive_gateway_photos_waiting", "Photos of running jobs waiting for a processing slot.")
JOBS_QUEUED = Gauge("revive_gateway_queue_depth", "Jobs accepted and waiting for a worker.")
JOBS = Counter("revive_gateway_jobs_total", "Jobs finished, by final state.", ["state"])
JOB_SECONDS = Histogram(
    "revive_gateway_job_duration_seconds", "Time from a job starting to finishing.", ["state"], buckets=LATENCY_BUCKETS
)
PHOTOS_IN_FLIGHT = Gauge("revive_gateway_photos_in_flight", "Photos being processed now.")
UPSTREAM_IN_FLIGHT = Gauge("revive_gateway_upstream_in_flight_rpcs", "RPCs in flight per upstream.", ["service"])
UPSTREAM_ERRORS = Counter(
    "revive_gateway_upstream_errors_total", "Failed upstream RPC attempts, by service and gRPC code.", ["service", "code"]
)
BYTES_IN = Counter("revive_gateway_received_bytes_total", "Bytes of photos uploaded.")
BYTES_OUT = Counter("revive_gateway_sent_bytes_total", "Bytes of result images served or streamed.")
UPSTREAM_WAITING = Gauge(
    "revive_gateway_upstream_waiting_calls", "Calls waiting in the gateway for a replica with room, per service.", ["service"]
)
UPSTREAM_REPLICAS = Gauge("revive_gateway_upstream_serving_replicas", "Replicas answering SERVING, per service.",
                          ["service"])
BACKGROUND_FAILURES = Counter(
    "revive_gateway_background_failures_total", "Housekeeping and probe rounds that failed (and were restarted).", ["task"]
)
LISTENERS_DROPPED = Counter(
    "revive_gateway_listeners_dropped_total", "Event listeners (SSE, gRPC streams) dropped for reading too slowly."
)
RESULT_BYTES = Gauge("revive_gateway_result_bytes", "Bytes of jobs (uploads, results, state) kept on the results volume.")
MEMORY_BUDGET = Gauge("revive_gateway_memory_budget_bytes", "Bytes of photo memory the gateway admits at once.")
MEMORY_BUDGET_USED = Gauge("revive_gateway_memory_budget_used_bytes", "Estimated bytes of the photos in flight now.")
LOOP_LAG = Histogram(
    "revive_gateway_event_loop_lag_seconds", "How late the event loop ran a 10 ms timer: time it was blocked.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
LOOP_WORST_STALL = Gauge("revive_gateway_event_loop_worst_stall_seconds", "The longest event-loop stall seen so far.")
UPSTREAM_WAIT_SECONDS = Histogram(
    "revive_gateway_upstream_wait_seconds", "Time a call waited in the gateway for a replica with room, per service.",
    ["service"], buckets=(0.001,) + LATENCY_BUCKETS,
)
JOB_START_SECONDS = Histogram(
    "revive_gateway_job_start_delay_seconds", "Time from a job being accepted to a worker starting it.",
    buckets=(0.001,) + LATENCY_BUCKETS,
)
JOBS_ADOPTED = Counter(
    "revive_gateway_jobs_adopted_total", "Unfinished jobs this replica claimed after their owner's lease ran out.")
JOBS_FENCED = Counter(
    "revive_gateway_jobs_fenced_total",
    "Jobs this replica abandoned because another claimed them (it had stalled past its lease).")

# Labelled series exist from the start (at 0), so alerts and dashboards see "none yet" rather than "no data".
for _task in ("job-housekeeping", "job-save", "probe-detector", "probe-generator", "probe-upscaler"):
    BACKGROUND_FAILURES.labels(_task)
