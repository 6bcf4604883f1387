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
    servers = {
        s["spanId"]: s
        for s in spans
        if s["kind"] == 2 and s["name"] == "POST /predict"
    }
    feedback = [s for s in spans if s["kind"] == 2 and s["name"] == "POST /feedback"]
    assert len(predictions) == 407
    assert len(servers) == 407
    assert feedback
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


def _log_records(folder: Path) -> list[dict[str, Any]]:
    return [
        record
        for request in _lines(folder / "logs.jsonl")
        for resource in request["resourceLogs"]
        for scope in resource["scopeLogs"]
        for record in scope["logRecords"]
    ]


def _attribute(record: dict[str, Any], key: str) -> Any:
    for pair in record["attributes"]:
        if pair["key"] == key:
            return next(iter(pair["value"].values()))
    return None


def test_summary_reports_feedback(demo_run: tuple[str, Path]) -> None:
    """The summary shows labels by outcome, accuracy per phase and the queue."""
    output, folder = demo_run
    sent = re.search(r"labels sent: +(\d+) through POST /feedback \((.*)\)", output)
    assert sent is not None
    outcomes = dict(
        (name, int(count))
        for name, count in (part.split() for part in sent.group(2).split(", "))
    )
    assert outcomes["unknown"] == 1
    assert outcomes["matched"] == int(sent.group(1)) - 1
    accuracy = {
        phase: float(value)
        for phase, value in re.findall(
            r"^ +(held-out|shifted|blended) +([\d.]+) \(30 labels\)", output, re.M
        )
    }
    assert set(accuracy) == {"held-out", "shifted", "blended"}
    assert accuracy["blended"] < accuracy["held-out"]
    queue = re.search(r"review queue: +(\d+) open items in (\S+)", output)
    low = re.search(r"low-confidence rows: +(\d+)", output)
    assert queue is not None
    assert low is not None
    assert int(queue.group(1)) == int(low.group(1))
    assert queue.group(2) == str(folder / "feedback.sqlite3")
    assert len(re.findall(r"#\d+ +low_confidence predicted", output)) == 3


def test_review_queue_shares_log_ids(demo_run: tuple[str, Path]) -> None:
    """Each queued prediction has a log record with its id and trace id."""
    import sqlite3

    _, folder = demo_run
    logged = {
        _attribute(record, semconv.ML_PREDICTION_ID): record["traceId"]
        for record in _log_records(folder)
        if record.get("eventName") == semconv.ML_PREDICTION_LOW_CONFIDENCE
    }
    with sqlite3.connect(folder / "feedback.sqlite3") as conn:
        queued = conn.execute(
            "SELECT r.prediction_id, p.trace_id, p.input_row FROM review_queue"
            " AS r JOIN predictions AS p USING (prediction_id)"
        ).fetchall()
        labels = conn.execute("SELECT count(*) FROM labels").fetchone()[0]
    assert queued
    assert {row[0] for row in queued} == set(logged)
    for prediction_id, trace_id, input_row in queued:
        assert logged[prediction_id] == trace_id
        assert len(json.loads(input_row)) == 30
    assert labels > 100


def test_metrics_file_has_feedback(demo_run: tuple[str, Path]) -> None:
    """metrics.jsonl has the quality gauges and the label instruments."""
    _, folder = demo_run
    names = {
        metric["name"]
        for request in _lines(folder / "metrics.jsonl")
        for resource in request["resourceMetrics"]
        for scope in resource["scopeMetrics"]
        for metric in scope["metrics"]
    }
    assert {
        semconv.ML_MODEL_ACCURACY,
        semconv.ML_MODEL_PRECISION,
        semconv.ML_MODEL_RECALL,
        semconv.ML_FEEDBACK_LABELS,
        semconv.ML_FEEDBACK_LABEL_DELAY,
    } <= names
