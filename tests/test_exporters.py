"""OTLP JSON lines exporters: OTLP's JSON encoding, one request a line."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_mlmon.exporters import OTLPJsonFileSpanExporter


def test_span_lines_use_hex_ids(tmp_path: Path) -> None:
    """Trace and span ids are lowercase hex, as OTLP JSON requires."""
    path = tmp_path / "traces.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPJsonFileSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent:
        with tracer.start_as_current_span("child", attributes={"n": 3}):
            pass
    provider.shutdown()
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    child = json.loads(lines[0])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    context = parent.get_span_context()
    assert child["traceId"] == f"{context.trace_id:032x}"
    assert child["parentSpanId"] == f"{context.span_id:016x}"
    assert child["kind"] == 1
    assert child["attributes"] == [{"key": "n", "value": {"intValue": "3"}}]
