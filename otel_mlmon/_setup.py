"""Tracer, meter and logger providers for the demo and the examples.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or a per-signal endpoint) set, the
signals go over OTLP, by ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``grpc`` or
``http/protobuf``, the default). Otherwise they are written as OTLP JSON
lines files into a folder, so nothing external is needed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_mlmon.exporters import (
    OTLPJsonFileLogExporter,
    OTLPJsonFileMetricExporter,
    OTLPJsonFileSpanExporter,
)
from otel_mlmon.processor import MLSpanProcessor

_ENDPOINT_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
)


@dataclasses.dataclass
class Telemetry:
    """The three providers, and where their signals go."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    destination: str

    def shutdown(self) -> None:
        """Flush and stop the providers: spans, then logs, then metrics."""
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


def otlp_endpoint_configured() -> bool:
    """Tell whether an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variable is set."""
    return any(os.environ.get(name) for name in _ENDPOINT_VARIABLES)


def configure_telemetry(
    service_name: str,
    folder: Path,
    metric_interval_ms: int = 5000,
    extra_span_processors: tuple[Any, ...] = (),
) -> Telemetry:
    """Build providers exporting over OTLP, or into files under ``folder``.

    ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` apply as usual;
    ``service_name`` is the default name.
    """
    # Resource.create lets explicit attributes win over the environment, so
    # the default name is passed only when the environment names none.
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in (
        os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    )
    resource = Resource.create({} if named else {"service.name": service_name})
    if otlp_endpoint_configured():
        spans, metrics, logs = _otlp_exporters()
        destination = "OTLP " + (
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "endpoints"
        )
    else:
        folder.mkdir(parents=True, exist_ok=True)
        spans = OTLPJsonFileSpanExporter(folder / "traces.jsonl")
        metrics = OTLPJsonFileMetricExporter(folder / "metrics.jsonl")
        logs = OTLPJsonFileLogExporter(folder / "logs.jsonl")
        destination = str(folder)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(logs))
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        MLSpanProcessor(logger_provider=logger_provider)
    )
    for processor in extra_span_processors:
        tracer_provider.add_span_processor(processor)
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))
    reader = PeriodicExportingMetricReader(
        metrics, export_interval_millis=metric_interval_ms
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    return Telemetry(tracer_provider, meter_provider, logger_provider, destination)


def _otlp_exporters() -> tuple[Any, Any, Any]:
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol == "grpc":
        return _grpc_exporters()
    if protocol == "http/protobuf":
        return _http_exporters()
    raise ValueError(
        f"Invalid OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: expected grpc "
        "or http/protobuf"
    )


def _grpc_exporters() -> tuple[Any, Any, Any]:
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
        OTLPLogExporter,
    )
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
        OTLPMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter,
    )

    return OTLPSpanExporter(), OTLPMetricExporter(), OTLPLogExporter()


def _http_exporters() -> tuple[Any, Any, Any]:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter,
    )

    return OTLPSpanExporter(), OTLPMetricExporter(), OTLPLogExporter()
