"""One trace per job across gateway -> detector -> generator -> upscaler, recorded with the SDK's
in-memory exporter: a span per stage with the photo's index and sizes, and the services' server spans
in the same trace, children of the gateway's calls."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.gateway.test_http_api import restore
from tests.photos import encode, portrait

EXPORTER = InMemorySpanExporter()


def setup_module() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)  # once per process: the servers of these tests run in this one


def test_one_trace_per_job_across_every_service(gateway):
    EXPORTER.clear()
    reply = restore(gateway.url, [("a.jpg", encode(portrait(96, 120))), ("b.jpg", encode(portrait(80, 64)))],
                    candidates=2, upscale=2)
    assert reply.status_code == 200, reply.text
    spans = EXPORTER.get_finished_spans()
    jobs = [span for span in spans if span.name == "job"]
    assert len(jobs) == 1 and jobs[0].attributes["revive.job"] == reply.json()["id"]
    trace_id = jobs[0].context.trace_id
    in_trace = [span for span in spans if span.context.trace_id == trace_id]
    names = {span.name for span in in_trace}
    assert {"photo", "decode", "detect", "generate", "upscale", "store"} <= names
    assert {"revive.v1.DamageDetector/Detect", "revive.v1.Generator/Generate", "revive.v1.Upscaler/UpscaleSet"} <= names
    photos = sorted(span.attributes["revive.photo"] for span in in_trace if span.name == "photo")
    assert photos == [0, 1]
    decodes = {(span.attributes["revive.width"], span.attributes["revive.height"]) for span in in_trace
               if span.name == "decode"}
    assert decodes == {(96, 120), (80, 64)}
    by_id = {span.context.span_id: span for span in in_trace}
    served = [span for span in in_trace if span.name == "revive.v1.Generator/Generate"]
    assert len(served) >= 4 and all(by_id[span.parent.span_id].name == "generate" for span in served)
