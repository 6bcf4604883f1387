"""The demo command, run as a user runs it, and the files it writes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_mlmon import semconv

HEX_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
HEX_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")


@pytest.fixture(name="demo_run", scope="module")
def fixture_demo_run(tmp_path_factory: Any) -> tuple[str, Path]:
    """Run ``otel-mlmon demo`` once with no OTLP endpoint configured."""
    folder = tmp_path_factory.mktemp("demo") / "telemetry"
    script = Path(sys.executable).with_name("otel-mlmon")
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "OTEL_MLMON_"))
    }
    completed = subprocess.run(
        [str(script), "demo", "--out", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout, folder


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _spans(folder: Path) -> list[dict[str, Any]]:
    return [
        span
        for request in _lines(folder / "traces.jsonl")
        for resource in request["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]


def test_summary_reports_flags(demo_run: tuple[str, Path]) -> None:
    """The summary shows requests, latency, low confidence and drift."""
    output, folder = demo_run
    assert "requests sent:            407 (0 failed)" in output
    assert re.search(r"predict span p50 / p95: +[\d.]+ ms / [\d.]+ ms", output)
    low = re.search(r"low-confidence rows: +(\d+)", output)
    assert low is not None
    assert int(low.group(1)) > 0
    drift = re.search(r"mean radius +request (\d+)", output)
    assert drift is not None
    assert 172 <= int(drift.group(1)) <= 342
    assert str(folder) in output


def test_traces_file_is_otlp_json(demo_run: tuple[str, Path]) -> None:
    """traces.jsonl holds OTLP JSON spans with hex ids and flag events."""
    _, folder = demo_run
    spans = _spans(folder)
    predictions = [s for s in spans if s["name"].startswith("predict_proba ")]
    servers = {s["spanId"]: s for s in spans if s["kind"] == 2}
    assert len(predictions) == 407
    assert len(servers) == 407
    for span in predictions:
        assert HEX_TRACE_ID.match(span["traceId"])
        assert HEX_SPAN_ID.match(span["spanId"])
        assert span["parentSpanId"] in servers
    events = {e["name"] for s in predictions for e in s.get("events", [])}
    assert semconv.ML_DRIFT_DETECTED in events
    assert semconv.ML_PREDICTION_LOW_CONFIDENCE in events


def test_logs_file_links_traces(demo_run: tuple[str, Path]) -> None:
    """logs.jsonl records carry the trace ids of their prediction spans."""
    _, folder = demo_run
    span_ids = {(s["traceId"], s["spanId"]) for s in _spans(folder)}
    records = [
        record
        for request in _lines(folder / "logs.jsonl")
        for resource in request["resourceLogs"]
        for scope in resource["scopeLogs"]
        for record in scope["logRecords"]
    ]
    low = [
        r for r in records
        if r.get("eventName") == semconv.ML_PREDICTION_LOW_CONFIDENCE
    ]
    assert low
    for record in records:
        assert (record["traceId"], record["spanId"]) in span_ids


def test_metrics_file_has_instruments(demo_run: tuple[str, Path]) -> None:
    """metrics.jsonl has every instrument of the package."""
    _, folder = demo_run
    names = {
        metric["name"]
        for request in _lines(folder / "metrics.jsonl")
        for resource in request["resourceMetrics"]
        for scope in resource["scopeMetrics"]
        for metric in scope["metrics"]
    }
    assert {
        semconv.ML_MODEL_PREDICTION_DURATION,
        semconv.ML_MODEL_PREDICTIONS,
        semconv.ML_MODEL_PREDICTION_CONFIDENCE,
        semconv.ML_MODEL_LOW_CONFIDENCE_PREDICTIONS,
        semconv.ML_MODEL_PREDICTION_CPU_TIME,
        semconv.ML_FEATURE_DRIFT_SCORE,
        semconv.PROCESS_MEMORY_USAGE,
    } <= names
    assert any(name.startswith("http.server.") for name in names)
