"""The real pipeline: app traffic -> built Collector -> Prometheus, Tempo, Loki.

Tempo and Loki are OTLP stand-ins (collector_stack.TraceSink and LogSink)
because their binaries cannot be had on the build machines. The Collector
and Prometheus are the real programs.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from collector_stack import (
    DEMO_JOB,
    LogSink,
    PipelineStack,
    TraceSink,
    http_get,
    http_post,
    run_traffic,
    start_collector,
    wait_until,
)
from otlp_traffic import FLAG_CATEGORIES, NEAR_MISS_KINDS

from otel_mlmon import semconv

# Each otel_mlmon metric and its name in Prometheus through the Collector's
# prometheus exporter: "s" adds _seconds, "By" adds _bytes, a counter gets
# _total, a {prediction} unit adds nothing, and a gauge in unit 1 gets _ratio
# (a histogram in unit 1 does not).
PROMETHEUS_NAMES = {
    semconv.ML_MODEL_PREDICTION_DURATION: "ml_model_prediction_duration_seconds_bucket",
    semconv.ML_MODEL_PREDICTIONS: "ml_model_predictions_total",
    semconv.ML_MODEL_PREDICTION_CONFIDENCE: "ml_model_prediction_confidence_bucket",
    semconv.ML_MODEL_LOW_CONFIDENCE_PREDICTIONS: "ml_model_low_confidence_predictions_total",
    semconv.ML_MODEL_PREDICTION_CPU_TIME: "ml_model_prediction_cpu_time_seconds_bucket",
    semconv.ML_FEATURE_DRIFT_SCORE: "ml_feature_drift_score_ratio",
    semconv.PROCESS_MEMORY_USAGE: "process_memory_usage_bytes",
}

TRAFFIC_JOB = "ml-traffic"
"""The job label of otlp_traffic.py's series: its service.name."""


def series(stack: PipelineStack, expr: str) -> list[dict[str, Any]]:
    return stack.prometheus.query(expr)


@pytest.mark.parametrize(
    ("otel_name", "prometheus_name"), sorted(PROMETHEUS_NAMES.items())
)
def test_metric_arrives_under_translated_name(
    pipeline: PipelineStack, otel_name: str, prometheus_name: str
) -> None:
    """Each otel_mlmon metric is in Prometheus under its translated name."""
    result = series(pipeline, f'{prometheus_name}{{job="{TRAFFIC_JOB}"}}')
    assert result, f"{otel_name} not found in Prometheus as {prometheus_name}"


def test_demo_metrics_reach_prometheus(pipeline: PipelineStack) -> None:
    """The demo's model series arrive in Prometheus through the Collector."""
    if os.environ.get("OTEL_MLMON_TRAFFIC_COMMAND"):
        pytest.skip("OTEL_MLMON_TRAFFIC_COMMAND replaced the demo traffic")
    for name in PROMETHEUS_NAMES.values():
        found = series(pipeline, f'{name}{{job="{DEMO_JOB}"}}')
        assert found, f"{name} missing for the demo's job {DEMO_JOB}"
    rows = series(
        pipeline,
        f'ml_model_predictions_total{{job="{DEMO_JOB}",'
        'ml_model_name="breast_cancer_clf"}',
    )
    assert float(rows[0]["value"][1]) >= 407


def test_metric_names_match_every_job(pipeline: PipelineStack) -> None:
    """Every job that sent predictions also has every other translated metric."""
    jobs = {
        item["metric"]["job"] for item in series(pipeline, "ml_model_predictions_total")
    }
    assert TRAFFIC_JOB in jobs
    for job in sorted(jobs):
        for name in PROMETHEUS_NAMES.values():
            assert series(pipeline, f'{name}{{job="{job}"}}'), (
                f"{name} missing for job {job}"
            )


def test_duration_failures_carry_error_type(pipeline: PipelineStack) -> None:
    """Failed calls are duration points with error_type; successful ones have none."""
    failed = series(
        pipeline,
        'ml_model_prediction_duration_seconds_count{ml_model_name="fraud_clf", error_type!=""}',
    )
    succeeded = series(
        pipeline,
        'ml_model_prediction_duration_seconds_count{ml_model_name="fraud_clf", error_type=""}',
    )
    assert failed, "no duration series with error_type for fraud_clf"
    assert succeeded, "no duration series without error_type for fraud_clf"
    assert {item["metric"]["error_type"] for item in failed} == {"ValueError"}
    assert all(
        item["metric"]["ml_operation_name"] == "predict_proba" for item in failed
    )


def test_drift_gauge_has_feature_labels(pipeline: PipelineStack) -> None:
    """The drift gauge is labelled by feature, statistic, model and version."""
    result = series(pipeline, 'ml_feature_drift_score_ratio{ml_model_name="fraud_clf"}')
    scores = {
        item["metric"]["ml_feature_name"]: float(item["value"][1]) for item in result
    }
    assert scores == {"amount": 0.45, "age": 0.05}
    assert {item["metric"]["ml_drift_statistic"] for item in result} == {"psi"}
    assert {item["metric"]["ml_model_version"] for item in result} == {"2"}


def test_latency_exemplars_carry_trace_ids(pipeline: PipelineStack) -> None:
    """Duration buckets reach Prometheus with exemplars that name a trace id."""
    now = time.time()
    data = pipeline.prometheus.api(
        "/api/v1/query_exemplars",
        query="ml_model_prediction_duration_seconds_bucket",
        start=str(now - 600),
        end=str(now),
    )
    trace_ids = [
        exemplar["labels"].get("trace_id", "")
        for group in data
        for exemplar in group["exemplars"]
    ]
    assert trace_ids, "no exemplars stored for the duration histogram"
    assert all(re.fullmatch(r"[0-9a-f]{32}", trace_id) for trace_id in trace_ids)


def test_collector_telemetry_is_scraped(pipeline: PipelineStack) -> None:
    """Prometheus scrapes the Collector's own metrics, tail sampling's included."""
    result = series(
        pipeline,
        'otelcol_processor_tail_sampling_sampling_policy_execution_count{job="otel-collector-internal"}',
    )
    policies = {item["metric"].get("policy") for item in result}
    assert {
        "errors",
        "ml-flag-events",
        "slow-predictions",
        "baseline-share",
    } <= policies


@pytest.mark.parametrize("category", FLAG_CATEGORIES)
def test_flagged_traces_are_all_kept(pipeline: PipelineStack, category: str) -> None:
    """Tail sampling keeps every trace with an error, a flag event or a slow predict."""
    sent = set(pipeline.manifest["traces"][category])
    kept_ids = pipeline.tempo.trace_ids()
    assert sent, f"the traffic sent no {category} traces"
    assert sent <= kept_ids, (
        f"{len(sent - kept_ids)} of {len(sent)} {category} traces dropped"
    )


def test_kept_traces_are_whole(pipeline: PipelineStack) -> None:
    """A kept trace arrives with both its spans, the request and the prediction."""
    names_by_trace: dict[str, set[str]] = {}
    for span in pipeline.tempo.spans():
        names_by_trace.setdefault(span.trace_id.hex(), set()).add(span.name)
    for trace_id in pipeline.manifest["traces"]["error"]:
        assert names_by_trace[trace_id] == {"POST /predict", "predict fraud_clf"}
    for trace_id in pipeline.manifest["traces"]["slow_predict_proba"]:
        assert names_by_trace[trace_id] == {"POST /predict", "predict_proba fraud_clf"}


def test_unflagged_traces_sampled_at_share(pipeline: PipelineStack) -> None:
    """Unflagged traces are kept at the configured percentage, within 5 sigma."""
    sent = pipeline.manifest["traces"]["normal"]
    kept_count = len(set(sent) & pipeline.tempo.trace_ids())
    share = pipeline.sampling_percentage / 100
    # Trace ids are random, so the kept count is binomial(n, share); 5 sigma
    # makes a false failure about a one-in-a-million event.
    sigma = math.sqrt(len(sent) * share * (1 - share))
    expected = len(sent) * share
    assert abs(kept_count - expected) <= 5 * sigma, (
        f"kept {kept_count} of {len(sent)} unflagged traces; expected {expected:.0f} +- {5 * sigma:.0f}"
    )


@pytest.mark.parametrize("category", ["low_confidence", "drift"])
def test_log_records_carry_trace_ids(pipeline: PipelineStack, category: str) -> None:
    """Review-queue log records reach Loki's endpoint with their trace ids."""
    expected = set(pipeline.manifest["logs"][category])
    records = pipeline.loki.records()
    received = {record.trace_id.hex() for record in records}
    assert expected, f"the traffic logged no {category} records"
    assert expected <= received, f"{len(expected - received)} {category} records lost"
    assert set(pipeline.loki.paths) == {"/otlp/v1/logs"}


def test_log_records_keep_event_name(pipeline: PipelineStack) -> None:
    """Log records keep their event name and span id through the Collector."""
    low = set(pipeline.manifest["logs"]["low_confidence"])
    records = [r for r in pipeline.loki.records() if r.trace_id.hex() in low]
    assert records
    assert {r.event_name for r in records} == {semconv.ML_PREDICTION_LOW_CONFIDENCE}
    assert all(len(r.span_id) == 8 for r in records)


def _rejected_http_requests(stack: PipelineStack) -> float:
    """Sum the Collector's count of /v1/traces requests rejected with HTTP 400."""
    status, body = http_get(
        f"http://127.0.0.1:{stack.collector_ports.telemetry}/metrics"
    )
    assert status == 200
    total = 0.0
    pattern = re.compile(
        r"^http_server_request_duration(?:_seconds)?_count\{(.*)\} (\S+)$"
    )
    for line in body.decode().splitlines():
        match = pattern.match(line)
        if match is None:
            continue
        labels = match.group(1)
        if (
            'http_response_status_code="400"' in labels
            and 'http_route="/v1/traces"' in labels
        ):
            total += float(match.group(2))
    return total


def test_malformed_otlp_http_rejected_and_counted(pipeline: PipelineStack) -> None:
    """Malformed OTLP/HTTP gets 400, is counted, and the Collector keeps serving."""
    base = f"http://127.0.0.1:{pipeline.collector_ports.otlp_http}"
    before = _rejected_http_requests(pipeline)

    status, _ = http_post(
        f"{base}/v1/traces", b"\x0a\xff\xff not protobuf", "application/x-protobuf"
    )
    json_status, _ = http_post(
        f"{base}/v1/traces", b'{"resourceSpans": 5}', "application/json"
    )

    assert status == 400
    assert json_status == 400
    wait_until(
        lambda: _rejected_http_requests(pipeline) >= before + 2,
        10,
        "the Collector to count the two rejected requests",
    )
    assert pipeline.collector.is_running()
    health, _ = http_get(f"http://127.0.0.1:{pipeline.collector_ports.health}/")
    assert health == 200
    valid, _ = http_post(
        f"{base}/v1/traces", b'{"resourceSpans": []}', "application/json"
    )
    assert valid == 200


def test_malformed_otlp_grpc_rejected(pipeline: PipelineStack) -> None:
    """Malformed OTLP/gRPC fails with an error status and the Collector keeps running."""
    target = f"127.0.0.1:{pipeline.collector_ports.otlp_grpc}"
    with grpc.insecure_channel(target) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        with pytest.raises(grpc.RpcError) as raised:
            export(b"\x0a\xff\xff not protobuf", timeout=5)
    assert raised.value.code() != grpc.StatusCode.OK
    assert pipeline.collector.is_running()


# A second Collector that keeps no share of unflagged traces, so that exactly
# the flagged traces must come out.


@pytest.fixture(name="strict_run", scope="module")
def fixture_strict_run(
    collector_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], TraceSink]]:
    work_dir = tmp_path_factory.mktemp("strict")
    tempo = TraceSink().start()
    loki = LogSink().start()
    collector, ports = start_collector(
        collector_binary, work_dir, "otelcol-strict", tempo, loki, 0
    )
    try:
        manifest = run_traffic(
            ports,
            work_dir / "strict-manifest.json",
            work_dir,
            ("--seconds", "0", "--normal-traces", "50"),
        )
        flagged = {
            t for category in FLAG_CATEGORIES for t in manifest["traces"][category]
        }
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: flagged <= tempo.trace_ids(), 30, "the flagged traces")
        time.sleep(4)  # decisions for the rest: 2 s wait plus the 1 s batch
        yield manifest, tempo
    finally:
        collector.stop()
        tempo.stop()
        loki.stop()


def test_zero_share_keeps_only_flagged(
    strict_run: tuple[dict[str, Any], TraceSink],
) -> None:
    """With a 0% share the Collector keeps exactly the flagged traces."""
    manifest, tempo = strict_run
    flagged = {t for category in FLAG_CATEGORIES for t in manifest["traces"][category]}
    assert tempo.trace_ids() == flagged


@pytest.mark.parametrize("kind", NEAR_MISS_KINDS)
def test_near_misses_are_dropped(
    strict_run: tuple[dict[str, Any], TraceSink], kind: str
) -> None:
    """Traces that only resemble flagged ones match no keep rule."""
    manifest, tempo = strict_run
    sent = set(manifest["traces"][f"near_miss.{kind}"])
    assert sent
    assert not sent & tempo.trace_ids()
