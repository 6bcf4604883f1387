"""Exporters that write OTLP JSON lines files, one export request a line.

The lines use OTLP's JSON encoding (lowerCamelCase fields, hex trace and
span ids, enums as integers), which the Collector's ``otlp_json_file``
receiver reads. They let the demo run with no external service.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import (
    encode_metrics,
)
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def to_otlp_json(message: Message) -> str:
    """Encode an OTLP protobuf message in OTLP's JSON form, on one line."""
    document = MessageToDict(message, use_integers_for_enums=True)
    return json.dumps(_hex_ids(document), separators=(",", ":"))


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: base64.b64decode(value).hex()
            if key in _ID_FIELDS and isinstance(value, str)
            else _hex_ids(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    return node


class _LinesFile:
    """An append-only file of lines, shared by one exporter's threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file: TextIO | None = self.path.open("a", encoding="utf-8")

    def write(self, line: str) -> bool:
        with self._lock:
            if self._file is None:
                return False
            self._file.write(line + "\n")
            self._file.flush()
            return True

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class OTLPJsonFileSpanExporter(SpanExporter):
    """Write spans as OTLP JSON lines to ``path``."""

    def __init__(self, path: str | Path) -> None:
        self._file = _LinesFile(path)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append one ``ExportTraceServiceRequest`` line."""
        if self._file.write(to_otlp_json(encode_spans(spans))):
            return SpanExportResult.SUCCESS
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        """Close the file."""
        self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Return True: every line is flushed as it is written."""
        return True


class OTLPJsonFileMetricExporter(MetricExporter):
    """Write metrics as OTLP JSON lines to ``path``."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self._file = _LinesFile(path)

    def export(
        self,
        metrics_data: MetricsData,
        timeout_millis: float = 10_000,
        **kwargs: Any,
    ) -> MetricExportResult:
        """Append one ``ExportMetricsServiceRequest`` line."""
        if self._file.write(to_otlp_json(encode_metrics(metrics_data))):
            return MetricExportResult.SUCCESS
        return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Return True: every line is flushed as it is written."""
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Close the file."""
        self._file.close()


class OTLPJsonFileLogExporter(LogRecordExporter):
    """Write log records as OTLP JSON lines to ``path``."""

    def __init__(self, path: str | Path) -> None:
        self._file = _LinesFile(path)

    def export(
        self, batch: Sequence[ReadableLogRecord]
    ) -> LogRecordExportResult:
        """Append one ``ExportLogsServiceRequest`` line."""
        if self._file.write(to_otlp_json(encode_logs(batch))):
            return LogRecordExportResult.SUCCESS
        return LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        """Close the file."""
        self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Return True: every line is flushed as it is written."""
        return True
