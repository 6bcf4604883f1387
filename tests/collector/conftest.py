"""Fixtures for the Collector tests: the built Collector and a running stack.

The stack is one Collector built from collector/builder-config.yaml, Debian's
Prometheus scraping it with collector/prometheus/prometheus.yml (targets and
intervals rewritten for the test), and OTLP stand-ins for Tempo and Loki. It
runs once per session, loaded with the traffic of otlp_traffic.py.

Environment:
    OTEL_MLMON_CACHE: where collector/build.sh caches the Collector binary.
    OTEL_MLMON_SKIP_COLLECTOR_BUILD: when set, skip the tests that need the
        Collector instead of building it (a build takes minutes).
    OTEL_MLMON_TRAFFIC_COMMAND: an extra traffic source, run with
        OTEL_EXPORTER_OTLP_ENDPOINT set to the Collector's OTLP/HTTP receiver
        (and OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf), for example
        ``otel-mlmon demo --loops 1``. otlp_traffic.py always runs too,
        because the sampling checks need the trace ids it records.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from collector_stack import (
    COLLECTOR_DIR,
    PIPELINE_SAMPLING_PERCENTAGE,
    PROMETHEUS_DIR,
    LogSink,
    PipelineStack,
    TraceSink,
    prometheus_test_config,
    run_extra_traffic,
    run_traffic,
    start_collector,
    start_prometheus,
    wait_until,
)

_BUILD_TIMEOUT_S = 3600


def _debian_tool_or_skip(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} not found on PATH; install Debian's prometheus and "
            "prometheus-alertmanager packages to run this test"
        )
    return path


@pytest.fixture(name="promtool", scope="session")
def fixture_promtool() -> str:
    return _debian_tool_or_skip("promtool")


@pytest.fixture(name="prometheus_binary", scope="session")
def fixture_prometheus_binary() -> str:
    return _debian_tool_or_skip("prometheus")


@pytest.fixture(name="alertmanager_binary", scope="session")
def fixture_alertmanager_binary() -> str:
    return _debian_tool_or_skip("prometheus-alertmanager")


@pytest.fixture(name="collector_binary", scope="session")
def fixture_collector_binary() -> Path:
    """Return the cached Collector binary, building it first if needed."""
    build = COLLECTOR_DIR / "build.sh"
    printed = subprocess.run(
        ["bash", str(build), "--print-path"],
        check=True,
        capture_output=True,
        text=True,
    )
    binary = Path(printed.stdout.strip())
    if binary.is_file():
        return binary
    if os.environ.get("OTEL_MLMON_SKIP_COLLECTOR_BUILD"):
        pytest.skip(
            f"Collector not built at {binary} and OTEL_MLMON_SKIP_COLLECTOR_BUILD "
            "is set; run collector/build.sh"
        )
    if shutil.which("go") is None:
        pytest.skip("go not found on PATH, so the Collector cannot be built here")
    result = subprocess.run(
        ["bash", str(build)],
        check=False,
        capture_output=True,
        text=True,
        timeout=_BUILD_TIMEOUT_S,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-30:])
        pytest.fail(
            f"collector/build.sh failed with status {result.returncode}:\n{tail}"
        )
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(name="pipeline", scope="session")
def fixture_pipeline(
    collector_binary: Path,
    prometheus_binary: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PipelineStack]:
    """Start the stack, send the traffic, and wait until it has arrived."""
    work_dir = tmp_path_factory.mktemp("pipeline")
    tempo = TraceSink().start()
    loki = LogSink().start()
    collector, ports = start_collector(
        collector_binary, work_dir, "otelcol", tempo, loki, PIPELINE_SAMPLING_PERCENTAGE
    )
    prometheus = None
    try:
        config = prometheus_test_config(ports, [PROMETHEUS_DIR / "alerts.yml"])
        prometheus = start_prometheus(config, work_dir, work_dir)
        manifest = run_traffic(ports, work_dir / "traffic-manifest.json", work_dir)
        run_extra_traffic(ports, work_dir)
        flagged = {trace_id for ids in _flagged(manifest) for trace_id in ids}
        # A flagged trace that never arrives fails its own test, with its
        # category in the message, so a timeout here is not an error.
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: flagged <= tempo.trace_ids(), 30, "the flagged traces")
        # Let the remaining decisions (2 s wait, 1 s batch) and a few more
        # scrapes happen before the tests read the results.
        time.sleep(5)
        wait_until(
            lambda: bool(prometheus.query("ml_model_predictions_total")),
            30,
            "Prometheus to scrape ml_model_predictions_total",
        )
        yield PipelineStack(
            collector,
            ports,
            prometheus,
            tempo,
            loki,
            manifest,
            PIPELINE_SAMPLING_PERCENTAGE,
        )
    finally:
        if prometheus is not None:
            prometheus.process.stop()
        collector.stop()
        tempo.stop()
        loki.stop()


def _flagged(manifest: dict[str, Any]) -> list[list[str]]:
    from otlp_traffic import FLAG_CATEGORIES

    return [manifest["traces"][category] for category in FLAG_CATEGORIES]
