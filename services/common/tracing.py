"""Tracing: one trace per job, from the gateway through every service it calls.

OpenTelemetry with W3C trace context: the gateway opens a span per job, per
photo and per stage, and puts `traceparent` in the metadata of every call it
makes; each service continues the trace in a server span around the RPC.
Spans leave the process only when `--otlp-endpoint` names a collector (OTLP
over gRPC); otherwise they are made and dropped, at the cost of a few
microseconds, so turning export on needs no other change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

tracer = trace.get_tracer("revive")


def setup_tracing(service: str, otlp_endpoint: str) -> None:
    """This process's tracer provider, named revive-<service>; spans go to `otlp_endpoint` when set."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"revive-{service}"}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
    trace.set_tracer_provider(provider)


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as gRPC metadata (traceparent, tracestate)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


def incoming_context(metadata: Iterable[tuple[str, Any]] | None) -> context.Context:
    """The caller's trace context from gRPC metadata (a new trace when there is none)."""
    return propagate.extract({key: str(value) for key, value in (metadata or ())})
