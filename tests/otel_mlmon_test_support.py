"""OTLP receivers on 127.0.0.1 that decode real protobuf requests."""

from __future__ import annotations

import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import (
    logs_service_pb2,
    logs_service_pb2_grpc,
)
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)

_REQUESTS = {
    "/v1/traces": trace_service_pb2.ExportTraceServiceRequest,
    "/v1/metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "/v1/logs": logs_service_pb2.ExportLogsServiceRequest,
}
_RESPONSES = {
    "/v1/traces": trace_service_pb2.ExportTraceServiceResponse,
    "/v1/metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "/v1/logs": logs_service_pb2.ExportLogsServiceResponse,
}


class Received:
    """Decoded export requests, by signal, shared between threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, list[Any]] = {
            "traces": [],
            "metrics": [],
            "logs": [],
        }
        # Request bodies as sent, by URL path (the HTTP receiver fills it).
        self.bodies: list[tuple[str, bytes]] = []

    def add(self, signal: str, message: Any) -> None:
        with self.lock:
            self.requests[signal].append(message)

    def add_body(self, path: str, body: bytes) -> None:
        with self.lock:
            self.bodies.append((path, body))

    def spans(self) -> list[Any]:
        """Return every span received, flattened."""
        with self.lock:
            return [
                span
                for request in self.requests["traces"]
                for resource in request.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]

    def metric_names(self) -> set[str]:
        """Return the names of every metric received."""
        with self.lock:
            return {
                metric.name
                for request in self.requests["metrics"]
                for resource in request.resource_metrics
                for scope in resource.scope_metrics
                for metric in scope.metrics
            }

    def log_records(self) -> list[Any]:
        """Return every log record received, flattened."""
        with self.lock:
            return [
                record
                for request in self.requests["logs"]
                for resource in request.resource_logs
                for scope in resource.scope_logs
                for record in scope.log_records
            ]


class HttpReceiver:
    """An OTLP/HTTP protobuf receiver on 127.0.0.1, on a free port by default."""

    def __init__(self, port: int = 0) -> None:
        self.received = Received()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                received.add_body(self.path, body)
                request_type = _REQUESTS.get(self.path)
                if request_type is None:
                    self.send_error(404)
                    return
                message = request_type()
                message.ParseFromString(body)
                received.add(self.path.rsplit("/", 1)[1], message)
                payload = _RESPONSES[self.path]().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class GrpcReceiver:
    """An OTLP/gRPC receiver for traces, metrics and logs on 127.0.0.1."""

    def __init__(self) -> None:
        self.received = Received()
        received = self.received

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802
                received.add("traces", request)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802
                received.add("metrics", request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802
                received.add("logs", request)
                return logs_service_pb2.ExportLogsServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            Traces(), self._server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            Metrics(), self._server
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
            Logs(), self._server
        )
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{port}"
        self._server.start()

    def close(self) -> None:
        self._server.stop(grace=None)
