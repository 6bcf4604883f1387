"""Real OTLP export, over HTTP and gRPC, of a model served by real Flask."""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from werkzeug.serving import make_server

from otel_mlmon import MLSpanProcessor, MonitorConfig, semconv, wrap_model
from otel_mlmon.demo import build_app


def _exporters(protocol: str, endpoint: str) -> tuple[Any, Any, Any]:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
            OTLPLogExporter,
        )
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )

        target = endpoint.removeprefix("http://")
        return (
            OTLPSpanExporter(endpoint=target, insecure=True),
            OTLPMetricExporter(endpoint=target, insecure=True),
            OTLPLogExporter(endpoint=target, insecure=True),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter as HttpLogExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return (
        HttpSpanExporter(endpoint=f"{endpoint}/v1/traces"),
        HttpMetricExporter(endpoint=f"{endpoint}/v1/metrics"),
        HttpLogExporter(endpoint=f"{endpoint}/v1/logs"),
    )


@dataclasses.dataclass
class Served:
    """A served model: where to send requests and where telemetry lands."""

    receiver: Any
    url: str
    unsure_row: list[float]
    providers: tuple[Any, ...]

    def flush(self) -> None:
        for provider in self.providers:
            provider.force_flush()


@pytest.fixture(name="served", params=["http", "grpc"])
def fixture_served(request: Any) -> Iterator[Served]:
    """A wrapped model behind Flask on 127.0.0.1, exporting over OTLP."""
    receiver = request.getfixturevalue(f"otlp_{request.param}_receiver")
    spans, metrics, logs = _exporters(request.param, receiver.endpoint)
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(
        MLSpanProcessor(logger_provider=logger_provider)
    )
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(
        metric_readers=[
            PeriodicExportingMetricReader(
                metrics, export_interval_millis=600_000
            )
        ]
    )
    data = load_breast_cancer()
    names = [str(name) for name in data.feature_names]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(data.data, data.target)
    confidence = model.predict_proba(data.data).max(axis=1)
    unsure = data.data[int(confidence.argmin())]
    wrapped = wrap_model(
        model,
        name="cancer",
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        config=MonitorConfig(low_confidence_threshold=0.9),
    )
    app = build_app(wrapped, names)
    FlaskInstrumentor().instrument_app(app, tracer_provider=tracer_provider)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(
            receiver=receiver,
            url=f"http://127.0.0.1:{server.server_port}/predict",
            unsure_row=unsure.tolist(),
            providers=(tracer_provider, logger_provider, meter_provider),
        )
    finally:
        server.shutdown()
        thread.join()
        FlaskInstrumentor().uninstrument_app(app)
        tracer_provider.shutdown()
        logger_provider.shutdown()
        meter_provider.shutdown()


def _post(url: str, features: list[float]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps({"features": features}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def _attributes(item: Any) -> dict[str, Any]:
    values = {}
    for pair in item.attributes:
        kind = pair.value.WhichOneof("value")
        value = getattr(pair.value, kind)
        if kind == "array_value":
            value = [getattr(v, v.WhichOneof("value")) for v in value.values]
        values[pair.key] = value
    return values


def test_prediction_span_under_flask_span(served: Served) -> None:
    """Over OTLP, the prediction span is the child of Flask's server span."""
    answer = _post(served.url, served.unsure_row)
    served.flush()
    assert answer["confidence"] < 0.9
    spans = served.receiver.received.spans()
    (server,) = [s for s in spans if s.kind == trace_pb2.Span.SPAN_KIND_SERVER]
    (predict,) = [s for s in spans if s.name == "predict_proba cancer"]
    assert predict.parent_span_id == server.span_id
    assert predict.trace_id == server.trace_id
    assert predict.kind == trace_pb2.Span.SPAN_KIND_INTERNAL
    attributes = _attributes(predict)
    assert attributes[semconv.ML_PREDICTION_ID] == answer["prediction_id"]
    assert attributes[semconv.ML_BATCH_SIZE] == 1
    assert attributes[semconv.ML_INPUT_FEATURE_MEAN] == pytest.approx(
        served.unsure_row
    )
    assert attributes[semconv.ML_PREDICTION_CONFIDENCE_MIN] == pytest.approx(
        answer["confidence"]
    )
    events = [event.name for event in predict.events]
    assert events == [semconv.ML_PREDICTION_LOW_CONFIDENCE]


def test_metrics_and_logs_exported(served: Served) -> None:
    """Metrics arrive by name, and log records carry the span's ids."""
    _post(served.url, served.unsure_row)
    _post(served.url, served.unsure_row)
    served.flush()
    names = served.receiver.received.metric_names()
    assert {
        semconv.ML_MODEL_PREDICTION_DURATION,
        semconv.ML_MODEL_PREDICTIONS,
        semconv.ML_MODEL_PREDICTION_CONFIDENCE,
        semconv.ML_MODEL_LOW_CONFIDENCE_PREDICTIONS,
        semconv.ML_MODEL_PREDICTION_CPU_TIME,
        semconv.PROCESS_MEMORY_USAGE,
    } <= names
    predict_spans = {
        (span.trace_id, span.span_id)
        for span in served.receiver.received.spans()
        if span.name == "predict_proba cancer"
    }
    records = served.receiver.received.log_records()
    assert len(records) == 2
    assert {(r.trace_id, r.span_id) for r in records} == predict_spans
    for record in records:
        assert _attributes(record)[semconv.ML_MODEL_NAME] == "cancer"
