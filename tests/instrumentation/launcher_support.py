"""Run launcher_app.py under opentelemetry-instrument and read what it exports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

APP_DIRECTORY = Path(__file__).parent
BIN = Path(sys.executable).parent
LAUNCHER = str(BIN / "opentelemetry-instrument")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def launcher_environment(
    endpoint: str, framework: str, port: int, extra: Mapping[str, str]
) -> dict[str, str]:
    """Return the environment of a launched app exporting OTLP/HTTP quickly."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "LAUNCHER_APP_"))
    }
    environ.update(
        {
            "OTEL_SERVICE_NAME": f"launcher-{framework}",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
            "LAUNCHER_APP_FRAMEWORK": framework,
            "LAUNCHER_APP_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
            # The launcher finds ``python`` and ``gunicorn`` on PATH.
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    environ.update(extra)
    return environ


class LaunchedApp:
    """A launched app process on 127.0.0.1, with a small HTTP client."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=30) as response:
            return json.loads(response.read())

    def post(
        self,
        path: str,
        rows: Sequence[Sequence[float]],
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        body = json.dumps({"rows": [list(map(float, row)) for row in rows]})
        request = urllib.request.Request(
            self.base + path,
            data=body.encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def output(self) -> str:
        """Stop the process if needed and return what it printed."""
        self.stop()
        out, _ = self.process.communicate(timeout=30)
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextlib.contextmanager
def launch(
    command: Sequence[str],
    endpoint: str,
    framework: str,
    extra: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[LaunchedApp]:
    """Start ``opentelemetry-instrument command`` and wait until it serves."""
    port = port or free_port()
    environ = launcher_environment(endpoint, framework, port, extra or {})
    process = subprocess.Popen(
        [LAUNCHER, *[part.replace("{port}", str(port)) for part in command]],
        cwd=APP_DIRECTORY,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    app = LaunchedApp(process, port)
    try:
        _wait_until_serving(app)
        yield app
    finally:
        app.stop()


def _wait_until_serving(app: LaunchedApp) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise AssertionError(
                f"the launched app exited with {app.process.returncode}:\n"
                f"{app.output()}"
            )
        try:
            app.get("/probe")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"the launched app did not serve:\n{app.output()}")


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def attributes(item: Any) -> dict[str, Any]:
    """Return the attributes of a protobuf span, event or point as a dict."""
    return {pair.key: _value(pair.value) for pair in item.attributes}


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(element) for element in value.array_value.values]
    return getattr(value, kind) if kind else None


def resource_ids(requests: Sequence[Any], field: str) -> set[str]:
    """Return the ``service.instance.id`` values of OTLP export requests."""
    found = set()
    for request in requests:
        for resource in getattr(request, field):
            found.add(attributes(resource.resource).get("service.instance.id"))
    return found


def metric_points(requests: Sequence[Any], name: str) -> list[Any]:
    """Return every data point of metric ``name`` in OTLP export requests."""
    points = []
    for request in requests:
        for resource in request.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        data = getattr(metric, metric.WhichOneof("data"))
                        points.extend(data.data_points)
    return points
