"""Fixtures shared by the tests: SDK providers with in-memory exporters.

Providers are function-scoped and passed explicitly to the code under test,
because OpenTelemetry's global providers can be set only once per process.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from otel_mlmon import MLSpanProcessor

sys.path.insert(0, str(Path(__file__).parent))

from otel_mlmon_test_support import GrpcReceiver, HttpReceiver  # noqa: E402


@pytest.fixture(name="span_exporter")
def fixture_span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(name="log_exporter")
def fixture_log_exporter() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()


@pytest.fixture(name="logger_provider")
def fixture_logger_provider(
    log_exporter: InMemoryLogRecordExporter,
) -> Iterator[LoggerProvider]:
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture(name="tracer_provider")
def fixture_tracer_provider(
    span_exporter: InMemorySpanExporter, logger_provider: LoggerProvider
) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(MLSpanProcessor(logger_provider=logger_provider))
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture(name="metric_reader")
def fixture_metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture(name="meter_provider")
def fixture_meter_provider(
    metric_reader: InMemoryMetricReader,
) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[metric_reader])
    yield provider
    provider.shutdown()


@pytest.fixture(name="metric_points")
def fixture_metric_points(metric_reader: InMemoryMetricReader) -> Any:
    """Return a function listing the data points of one metric by name."""

    def points(name: str) -> list[Any]:
        return _metric_points(metric_reader, name)

    return points


def _metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


@pytest.fixture(name="iris_model", scope="session")
def fixture_iris_model() -> tuple[Any, np.ndarray, np.ndarray]:
    """A random forest trained on the iris data set, and the data."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=25, random_state=0)
    model.fit(x, y)
    return model, x, y


@pytest.fixture(name="otlp_http_receiver")
def fixture_otlp_http_receiver() -> Iterator[HttpReceiver]:
    """An OTLP/HTTP receiver on 127.0.0.1 that decodes what it gets."""
    receiver = HttpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(name="otlp_grpc_receiver")
def fixture_otlp_grpc_receiver() -> Iterator[GrpcReceiver]:
    """An OTLP/gRPC receiver on 127.0.0.1 that decodes what it gets."""
    receiver = GrpcReceiver()
    yield receiver
    receiver.close()
