"""Processes and protocol stand-ins for the Collector tests.

Every server here binds 127.0.0.1 on a port the kernel picks free, and every
process is stopped by the fixture that started it.
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)

REPO = Path(__file__).resolve().parents[2]
COLLECTOR_DIR = REPO / "collector"
OTELCOL_CONFIG = COLLECTOR_DIR / "otelcol.yaml"
BUILDER_MANIFEST = COLLECTOR_DIR / "builder-config.yaml"
PROMETHEUS_DIR = COLLECTOR_DIR / "prometheus"
COMPONENT_LIST = REPO.parent / "shared" / "data" / "otelcol-contrib-components.txt"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.2
) -> None:
    """Call ``check`` until it returns True; raise TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """GET ``url``; return the status code and body, also for error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_ok(url: str) -> bool:
    try:
        status, _ = http_get(url, timeout_s=2.0)
    except (urllib.error.URLError, OSError):
        return False
    return status == 200


def http_post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    """POST ``body`` to ``url``; return the status code and response body."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=5.0) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass
class ManagedProcess:
    """A started server process whose output goes to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=timeout_s)


def start_process(
    name: str,
    command: Sequence[str],
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start ``command`` with stdout and stderr in ``log_dir/name.log``."""
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
        )
    return ManagedProcess(name, popen, log_path)


def wait_ready(process: ManagedProcess, url: str, timeout_s: float = 30.0) -> None:
    """Wait until ``url`` returns 200; fail early with the log if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.is_running():
            raise RuntimeError(
                f"{process.name} exited with status {process.popen.returncode} "
                f"before {url} was ready; log:\n{process.log_tail()}"
            )
        if http_ok(url):
            return
        time.sleep(0.2)
    raise TimeoutError(
        f"{process.name} did not answer {url} within {timeout_s} s; log:\n"
        f"{process.log_tail()}"
    )


# Stand-ins for Tempo and Loki: the same OTLP protocols the Collector's
# exporters speak to them, recording what arrives.


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: TraceSink) -> None:
        self._sink = sink

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._sink.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@dataclass
class TraceSink:
    """OTLP/gRPC trace receiver standing in for Tempo."""

    port: int = 0
    _requests: list[trace_service_pb2.ExportTraceServiceRequest] = field(
        default_factory=list
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: Any = None

    def start(self) -> TraceSink:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _TraceService(self), self._server
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=1).wait()

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def spans(self) -> list[Any]:
        """Return every span received so far."""
        with self._lock:
            requests = list(self._requests)
        return [
            span
            for request in requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def trace_ids(self) -> set[str]:
        return {span.trace_id.hex() for span in self.spans()}


class _LogsHandler(BaseHTTPRequestHandler):
    server: _LogsHTTPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        sink = self.server.sink
        sink.paths.append(self.path)
        if self.path != sink.path:
            self.send_response(404)
            self.end_headers()
            return
        request = logs_service_pb2.ExportLogsServiceRequest()
        request.ParseFromString(body)
        with sink.lock:
            sink.requests.append(request)
        payload = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _LogsHTTPServer(ThreadingHTTPServer):
    sink: LogSink


@dataclass
class LogSink:
    """OTLP/HTTP logs receiver standing in for Loki's /otlp endpoint."""

    path: str = "/otlp/v1/logs"
    requests: list[logs_service_pb2.ExportLogsServiceRequest] = field(
        default_factory=list
    )
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    _server: _LogsHTTPServer | None = None

    def start(self) -> LogSink:
        self._server = _LogsHTTPServer(("127.0.0.1", 0), _LogsHandler)
        self._server.sink = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def endpoint(self) -> str:
        """Base URL as the Collector's otlp_http exporter is configured for Loki."""
        return f"http://127.0.0.1:{self.port}/otlp"

    def records(self) -> list[Any]:
        """Return every log record received so far."""
        with self.lock:
            requests = list(self.requests)
        return [
            record
            for request in requests
            for resource_logs in request.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]


# Prometheus and Alertmanager from Debian's packages.


def tool_path(name: str) -> str | None:
    return shutil.which(name)


@dataclass
class PrometheusServer:
    """A Prometheus process with its HTTP API."""

    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        """GET an API path; return its ``data`` or raise with Prometheus' error."""
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.url}{path}?{query}")
        payload = json.loads(body)
        if status != 200 or payload.get("status") != "success":
            raise PromQLError(
                f"{path} {params} failed with HTTP {status}: {payload.get('error')}"
            )
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate an instant query; return its result list."""
        data = self.api("/api/v1/query", query=expr)
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return list(result)

    def metric_names(self) -> set[str]:
        return set(self.api("/api/v1/label/__name__/values"))


class PromQLError(RuntimeError):
    """Prometheus rejected a query."""


def start_prometheus(
    config: Mapping[str, Any],
    work_dir: Path,
    log_dir: Path,
    extra_args: Sequence[str] = (),
) -> PrometheusServer:
    """Start Debian's prometheus with ``config`` on a free 127.0.0.1 port."""
    import yaml

    binary = tool_path("prometheus")
    if binary is None:
        raise FileNotFoundError("prometheus not found on PATH")
    port = free_port()
    config_path = work_dir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(dict(config)), encoding="utf-8")
    storage = work_dir / "prometheus-data"
    storage.mkdir(exist_ok=True)
    process = start_process(
        "prometheus",
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
            *extra_args,
        ],
        log_dir,
    )
    server = PrometheusServer(process, port)
    wait_ready(process, f"{server.url}/-/ready")
    return server


# The Collector and its traffic.

TRAFFIC_SCRIPT = Path(__file__).parent / "otlp_traffic.py"

PIPELINE_SAMPLING_PERCENTAGE = 25
"""Share of unflagged traces the stack's Collector keeps, in percent."""


@dataclass
class CollectorPorts:
    """The Collector's listeners, all on 127.0.0.1."""

    otlp_grpc: int
    otlp_http: int
    prometheus: int
    telemetry: int
    health: int

    @classmethod
    def pick(cls) -> CollectorPorts:
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())

    def environment(self) -> dict[str, str]:
        return {
            "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.otlp_grpc}",
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.otlp_http}",
            "OTELCOL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{self.prometheus}",
            "OTELCOL_TELEMETRY_HOST": "127.0.0.1",
            "OTELCOL_TELEMETRY_PORT": str(self.telemetry),
            "OTELCOL_HEALTH_CHECK_ENDPOINT": f"127.0.0.1:{self.health}",
        }


def start_collector(
    binary: Path,
    log_dir: Path,
    name: str,
    tempo: TraceSink,
    loki: LogSink,
    sampling_percentage: int,
) -> tuple[ManagedProcess, CollectorPorts]:
    """Start the Collector with collector/otelcol.yaml, exporting to the stand-ins."""
    ports = CollectorPorts.pick()
    env = {
        **ports.environment(),
        "OTELCOL_TEMPO_ENDPOINT": f"127.0.0.1:{tempo.port}",
        "OTELCOL_LOKI_ENDPOINT": loki.endpoint,
        "OTELCOL_TRACE_SAMPLING_PERCENTAGE": str(sampling_percentage),
        # Short, so the tests need not wait 10 s for each decision; the
        # traffic script flushes each trace in one export.
        "OTELCOL_TAIL_DECISION_WAIT": "2s",
    }
    process = start_process(
        name, [str(binary), "--config", str(OTELCOL_CONFIG)], log_dir, env
    )
    wait_ready(process, f"http://127.0.0.1:{ports.health}/")
    return process, ports


def run_traffic(
    collector_ports: CollectorPorts,
    manifest: Path,
    log_dir: Path,
    extra_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run otlp_traffic.py against the Collector; return its manifest."""
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_ports.otlp_grpc}",
    }
    log_path = log_dir / f"{manifest.stem}.log"
    with log_path.open("wb") as log:
        subprocess.run(
            [
                sys.executable,
                str(TRAFFIC_SCRIPT),
                "--manifest",
                str(manifest),
                *extra_args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=True,
        )
    return dict(json.loads(manifest.read_text(encoding="utf-8")))


DEMO_JOB = "otel-mlmon-demo"
"""The Prometheus job of the demo's series: its service.name."""


def run_extra_traffic(collector_ports: CollectorPorts, log_dir: Path) -> None:
    """Run the package's demo against the Collector's OTLP/HTTP receiver.

    OTEL_MLMON_TRAFFIC_COMMAND replaces the demo with another command, and
    ``none`` turns the extra traffic off.
    """
    command = os.environ.get("OTEL_MLMON_TRAFFIC_COMMAND")
    if command == "none":
        return
    arguments = (
        shlex.split(command)
        if command
        else [
            sys.executable, "-m", "otel_mlmon.cli", "demo", "--loops", "1",
            "--out", str(log_dir / "demo"),
        ]
    )  # fmt: skip
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_ports.otlp_http}",
    }
    env.pop("OTEL_SERVICE_NAME", None)
    with (log_dir / "extra-traffic.log").open("wb") as log:
        subprocess.run(
            arguments, env=env, stdout=log, stderr=subprocess.STDOUT,
            timeout=600, check=True,
        )  # fmt: skip


def prometheus_test_config(
    collector_ports: CollectorPorts, rule_files: list[Path]
) -> dict[str, Any]:
    """Rewrite collector/prometheus/prometheus.yml for 127.0.0.1 and 1 s intervals.

    The Collector's scrape jobs keep their names and settings (honor_labels
    in particular); only their targets change. Jobs for other services,
    Prometheus itself included, are dropped.
    """
    import yaml

    config = yaml.safe_load(
        (PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8")
    )
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(path) for path in rule_files]
    config.pop("alerting", None)
    targets = {
        "otel-collector": f"127.0.0.1:{collector_ports.prometheus}",
        "otel-collector-internal": f"127.0.0.1:{collector_ports.telemetry}",
    }
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    return dict(config)


@dataclass
class PipelineStack:
    """The running stack after its traffic arrived."""

    collector: ManagedProcess
    collector_ports: CollectorPorts
    prometheus: PrometheusServer
    tempo: TraceSink
    loki: LogSink
    manifest: dict[str, Any]
    sampling_percentage: int
