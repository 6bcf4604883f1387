"""Load on gunicorn: the same model server instrumented and bare, compared.

Two gunicorn servers on 127.0.0.1 (2 workers with 4 threads each by
default) serve the same Flask app: a StandardScaler and LogisticRegression
pipeline trained at start-up on scikit-learn's breast cancer data set (569
rows, 30 features), behind ``POST /predict``. The instrumented server runs
under ``opentelemetry-instrument``, as the README recommends for gunicorn.
It gets Flask's instrumentation, otel_mlmon's sklearn instrumentor and a
drift baseline fitted on the data set. It exports every signal over
OTLP/HTTP, to a receiver this script starts on 127.0.0.1 unless
``--endpoint`` is given. The bare server is plain gunicorn, with no
OpenTelemetry loaded.

A client in this process (a thread pool, one keep-alive ``http.client``
connection per thread, reopened every ``--requests-per-connection``
requests so that both workers get connections) sends the same requests to
both servers. Rounds alternate between the servers, and their order flips
every round, so that noise from other processes falls on both sides. Every
reply is checked against the bare model run in this process.

Two phases:

- comparison: ``--requests`` requests per server of ``--batch-rows`` rows
  each, in ``--rounds`` rounds; it prints throughput and p50/p99 latency,
  and their ratios, instrumented over bare;
- memory: ``--memory-rows`` rows per server (1,000,000 by default) in
  requests of ``--memory-batch-rows`` rows, in ``--memory-chunks``
  alternating chunks. It reads each worker's VmRSS from
  ``/proc/<pid>/status`` after a warm-up and after every chunk, and prints
  the samples and the growth.

The client shares the machine's cores with the servers (and with the OTLP
receiver, when it runs in this process), so throughput is that of the whole
machine. Compare the ratios of one run, not absolute figures across runs.

Run: python benchmarks/load.py [--requests 4000] [--rounds 8] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import http.client
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
TESTS = BENCHMARKS.parent / "tests"
BIN = Path(sys.executable).parent
MODEL_NAME = "breast_cancer_clf"
PREDICTION_SPAN = f"predict_proba {MODEL_NAME}"
SIDES = ("instrumented", "bare")
_JSON = {"Content-Type": "application/json"}


# The app gunicorn serves, as ``load:create_app()``.


def train_model() -> Any:
    """Train the served pipeline on the breast cancer data set.

    LogisticRegression's lbfgs solver is deterministic, so every process
    that calls this gets the same coefficients.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return pipeline.fit(x, y)


def create_app() -> Any:
    """Return the Flask app: ``POST /predict`` and ``GET /health``.

    ``POST /predict`` takes ``{"rows": [[30 floats], ...]}`` and returns
    each row's label and highest class probability, with the worker's pid.
    """
    from flask import Flask, jsonify, request

    model = train_model()
    app = Flask("otel_mlmon_load")

    @app.post("/predict")
    def predict() -> Any:
        rows = np.asarray(request.get_json()["rows"], dtype=np.float64)
        probabilities = model.predict_proba(rows)
        best = probabilities.argmax(axis=1)
        return jsonify(
            labels=model.classes_[best].tolist(),
            confidence=probabilities.max(axis=1).tolist(),
            pid=os.getpid(),
        )

    @app.get("/health")
    def health() -> Any:
        return jsonify(pid=os.getpid())

    return app


# The servers.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def resident_set_bytes(pid: int) -> int:
    """Return VmRSS of process ``pid`` from ``/proc/<pid>/status``, in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS line in /proc/{pid}/status")


def child_pids(parent: int) -> list[int]:
    """Return the pids of the processes whose parent is ``parent``."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii")
        except OSError:
            continue
        # The command name in brackets may contain spaces, so the fields
        # are read after its closing bracket: state, then the parent pid.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            children.append(int(entry.name))
    return sorted(children)


@dataclasses.dataclass
class ServerOptions:
    """Settings shared by both gunicorn servers."""

    workers: int = 2
    threads: int = 4
    preload: bool = False
    disabled_instrumentations: str = ""
    # Each export collects about 800 points per model (most of them drift
    # bin series), which took 15-35 ms with the GIL held on a 2-core VM.
    # There, one-row requests reached 0.60 of the bare throughput with a
    # 60 s interval but 0.52 with 1 s, so the default is a middle 10 s.
    metric_interval_ms: int = 10_000


class Server:
    """A gunicorn server process on 127.0.0.1, with its log file."""

    def __init__(
        self, side: str, command: Sequence[str], environ: Mapping[str, str]
    ) -> None:
        self.side = side
        self.port = free_port()
        self.log: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")
        arguments = [part.replace("{port}", str(self.port)) for part in command]
        self.process = subprocess.Popen(
            arguments,
            env=dict(environ),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def worker_pids(self) -> list[int]:
        """Return the pids of the gunicorn workers (children of the master)."""
        return child_pids(self.process.pid)

    def output(self) -> str:
        """Return what the server has logged so far."""
        self.log.flush()
        self.log.seek(0)
        text = self.log.read()
        self.log.seek(0, os.SEEK_END)
        return text

    def wait_until_serving(self, workers: int, timeout: float = 120.0) -> None:
        """Wait until ``workers`` different workers have responded to ``/health``."""
        deadline = time.monotonic() + timeout
        answered: set[int] = set()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the {self.side} server exited with "
                    f"{self.process.returncode}:\n{self.output()}"
                )
            # A new connection for each probe, so that every worker that
            # is accepting connections gets one.
            try:
                connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=5
                )
                connection.request("GET", "/health")
                answered.add(json.loads(connection.getresponse().read())["pid"])
                connection.close()
            except (OSError, http.client.HTTPException):
                time.sleep(0.2)
                continue
            if len(answered) >= workers:
                return
        raise RuntimeError(
            f"the {self.side} server did not start {workers} workers within "
            f"{timeout:.0f} s (answered: {sorted(answered)}):\n{self.output()}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


def gunicorn_command(options: ServerOptions) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        "--workers",
        str(options.workers),
        "--threads",
        str(options.threads),
        "--bind",
        "127.0.0.1:{port}",
        "--pythonpath",
        str(BENCHMARKS),
        "--keep-alive",
        "30",
        "--graceful-timeout",
        "10",
        "--log-level",
        "warning",
        *(["--preload"] if options.preload else []),
        "load:create_app()",
    ]


def _clean_environment() -> dict[str, str]:
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OTEL_")
    }
    # Both launchers find ``python`` and ``gunicorn`` on PATH.
    environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    environ["PYTHONUNBUFFERED"] = "1"
    return environ


def instrumented_environment(
    endpoint: str, baseline_path: str, options: ServerOptions
) -> dict[str, str]:
    """Return the environment of the server run by ``opentelemetry-instrument``."""
    environ = _clean_environment()
    environ.update(
        {
            "OTEL_SERVICE_NAME": "otel-mlmon-load",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            # Spans leave within 200 ms, so a round's export work falls in
            # that round rather than in the next bare round.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": str(options.metric_interval_ms),
            # process.pid on each worker's resource; the SDK detects it
            # again after gunicorn forks.
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": (
                options.disabled_instrumentations
            ),
            "OTEL_MLMON_MODEL_NAME": MODEL_NAME,
            "OTEL_MLMON_MODEL_VERSION": "1",
            "OTEL_MLMON_BASELINE": baseline_path,
        }
    )
    return environ


@dataclasses.dataclass
class Servers:
    """The instrumented and the bare server, started side by side."""

    instrumented: Server
    bare: Server

    def by_side(self) -> dict[str, Server]:
        return {"instrumented": self.instrumented, "bare": self.bare}


@dataclasses.dataclass
class Model:
    """The bare model in this process, and the data set it was trained on."""

    pipeline: Any
    x: Any


def load_model() -> Model:
    from sklearn.datasets import load_breast_cancer

    x, _ = load_breast_cancer(return_X_y=True)
    return Model(train_model(), x)


def save_baseline(x: Any, path: Path) -> str:
    from otel_mlmon import Baseline

    Baseline.fit(x).save(str(path))
    return str(path)


@contextlib.contextmanager
def running_servers(
    endpoint: str, baseline_path: str, options: ServerOptions
) -> Iterator[Servers]:
    """Start both servers, wait until every worker responds, stop them after."""
    command = gunicorn_command(options)
    launcher = str(BIN / "opentelemetry-instrument")
    started: list[Server] = []
    try:
        instrumented = Server(
            "instrumented",
            [launcher, *command],
            instrumented_environment(endpoint, baseline_path, options),
        )
        started.append(instrumented)
        bare = Server("bare", command, _clean_environment())
        started.append(bare)
        instrumented.wait_until_serving(options.workers)
        bare.wait_until_serving(options.workers)
        yield Servers(instrumented, bare)
    finally:
        for server in started:
            server.stop()


# The load generator.


@dataclasses.dataclass
class Batch:
    """A request body and the bare model's outputs for its rows."""

    body: bytes
    labels: list[int]
    confidence: Any


def make_batches(model: Model, rows: int, count: int, seed: int) -> list[Batch]:
    """Draw ``count`` batches of ``rows`` rows of the data set, with replacement."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        picked = model.x[rng.integers(0, len(model.x), size=rows)]
        probabilities = model.pipeline.predict_proba(picked)
        best = probabilities.argmax(axis=1)
        batches.append(
            Batch(
                body=json.dumps({"rows": picked.tolist()}).encode(),
                labels=model.pipeline.classes_[best].tolist(),
                confidence=probabilities.max(axis=1),
            )
        )
    return batches


@dataclasses.dataclass
class RoundResult:
    """Outcome of one server's requests in a round (or in several, added up)."""

    requests: int
    rows: int
    seconds: float
    latencies: list[float] = dataclasses.field(default_factory=list)
    # Requests that failed or did not return 200.
    errors: list[str] = dataclasses.field(default_factory=list)
    # Replies whose outputs differ from the bare model's.
    mismatches: list[str] = dataclasses.field(default_factory=list)
    # Replies checked against the bare model, and the worker pids that sent them.
    checked: int = 0
    pids: collections.Counter[int] = dataclasses.field(
        default_factory=collections.Counter
    )

    def add(self, other: RoundResult) -> None:
        self.requests += other.requests
        self.rows += other.rows
        self.seconds += other.seconds
        self.latencies.extend(other.latencies)
        self.errors.extend(other.errors)
        self.mismatches.extend(other.mismatches)
        self.checked += other.checked
        self.pids.update(other.pids)


def send_requests(
    port: int,
    batches: Sequence[Batch],
    requests: int,
    concurrency: int,
    requests_per_connection: int,
) -> RoundResult:
    """Send ``requests`` requests from ``concurrency`` threads, then check replies.

    Request ``i`` carries batch ``i % len(batches)``. Latency is measured
    from sending the request to reading the whole response. Replies are
    checked against the bare model after the clock stops, so checking
    costs the round nothing.
    """
    latencies: list[float] = []
    errors: list[str] = []
    replies: list[tuple[int, bytes]] = []
    start_together = threading.Barrier(concurrency + 1)

    def client(first: int) -> None:
        connection: http.client.HTTPConnection | None = None
        sent = 0
        start_together.wait()
        for index in range(first, requests, concurrency):
            if connection is None:
                connection = http.client.HTTPConnection(
                    "127.0.0.1", port, timeout=120
                )
            body = batches[index % len(batches)].body
            started = time.perf_counter()
            try:
                connection.request("POST", "/predict", body, _JSON)
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"request {index}: {error!r}")
                connection.close()
                connection = None
                continue
            latencies.append(time.perf_counter() - started)
            if response.status == 200:
                replies.append((index, payload))
            else:
                errors.append(f"request {index}: HTTP {response.status}")
            sent += 1
            if sent % requests_per_connection == 0:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()

    threads = [
        threading.Thread(target=client, args=(first,))
        for first in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    start_together.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started

    rows = sum(len(batches[i % len(batches)].labels) for i in range(requests))
    result = RoundResult(requests, rows, seconds, latencies, errors)
    for index, payload in replies:
        result.mismatches.extend(_check_reply(index, payload, batches, result.pids))
        result.checked += 1
    return result


def _check_reply(
    index: int,
    payload: bytes,
    batches: Sequence[Batch],
    pids: collections.Counter[int],
) -> list[str]:
    batch = batches[index % len(batches)]
    reply = json.loads(payload)
    pids[reply["pid"]] += 1
    if reply["labels"] != batch.labels:
        return [f"request {index}: labels differ from the bare model's"]
    # JSON carries floats exactly (shortest repr), and both sides run the
    # same deterministic fit, so any difference is a real one.
    difference = np.abs(np.asarray(reply["confidence"]) - batch.confidence)
    if difference.max() > 1e-12:
        return [
            f"request {index}: confidence differs from the bare model's "
            f"by up to {difference.max():.3g}"
        ]
    return []


def alternate_rounds(
    servers: Servers,
    batches: Sequence[Batch],
    requests_per_side: int,
    rounds: int,
    concurrency: int,
    requests_per_connection: int,
    after_round: Callable[[int], None] | None = None,
) -> dict[str, RoundResult]:
    """Send the requests to both servers in rounds, alternating who goes first.

    ``after_round(round_index)`` runs after both sides of a round, outside
    the timed part.
    """
    totals = {side: RoundResult(0, 0, 0.0) for side in SIDES}
    per_round = [requests_per_side // rounds] * rounds
    per_round[-1] += requests_per_side - sum(per_round)
    for round_index, requests in enumerate(per_round):
        order = SIDES if round_index % 2 == 0 else SIDES[::-1]
        for side in order:
            server = servers.by_side()[side]
            totals[side].add(
                send_requests(
                    server.port,
                    batches,
                    requests,
                    concurrency,
                    requests_per_connection,
                )
            )
        if after_round is not None:
            after_round(round_index)
    return totals


# Figures.


@dataclasses.dataclass
class Comparison:
    """Throughput and latency of both sides, and their ratios."""

    throughput: dict[str, float]
    rows_per_second: dict[str, float]
    p50: dict[str, float]
    p99: dict[str, float]

    @property
    def throughput_ratio(self) -> float:
        return self.throughput["instrumented"] / self.throughput["bare"]

    @property
    def p50_ratio(self) -> float:
        return self.p50["instrumented"] / self.p50["bare"]

    @property
    def p99_ratio(self) -> float:
        return self.p99["instrumented"] / self.p99["bare"]


def compare(totals: Mapping[str, RoundResult]) -> Comparison:
    return Comparison(
        throughput={s: totals[s].requests / totals[s].seconds for s in SIDES},
        rows_per_second={s: totals[s].rows / totals[s].seconds for s in SIDES},
        p50={s: float(np.percentile(totals[s].latencies, 50)) for s in SIDES},
        p99={s: float(np.percentile(totals[s].latencies, 99)) for s in SIDES},
    )


def format_comparison(comparison: Comparison) -> list[str]:
    lines = [f"  {'':<16}{'instrumented':>14}{'bare':>12}{'ratio':>9}"]
    table = (
        ("requests/s", comparison.throughput, 1.0, comparison.throughput_ratio),
        ("rows/s", comparison.rows_per_second, 1.0, comparison.throughput_ratio),
        ("p50 latency ms", comparison.p50, 1e3, comparison.p50_ratio),
        ("p99 latency ms", comparison.p99, 1e3, comparison.p99_ratio),
    )
    for label, values, scale, ratio in table:
        lines.append(
            f"  {label:<16}{values['instrumented'] * scale:>14.1f}"
            f"{values['bare'] * scale:>12.1f}{ratio:>9.3f}"
        )
    return lines


@dataclasses.dataclass
class MemorySamples:
    """VmRSS of each worker of one server, in bytes, after each chunk of rows."""

    rows: list[int] = dataclasses.field(default_factory=list)
    by_pid: dict[int, list[int]] = dataclasses.field(default_factory=dict)

    def sample(self, rows: int, pids: Sequence[int]) -> None:
        self.rows.append(rows)
        for pid in pids:
            self.by_pid.setdefault(pid, []).append(resident_set_bytes(pid))

    def growth(self, pid: int) -> int:
        """Return the last sample minus the first (the warm-up one)."""
        values = self.by_pid[pid]
        return values[-1] - values[0]

    def slope(self, pid: int) -> float:
        """Return the least-squares trend of VmRSS, in bytes per million rows."""
        values = self.by_pid[pid]
        fitted = np.polyfit(np.asarray(self.rows, dtype=float), values, 1)
        return float(fitted[0]) * 1e6


def warm_up(
    servers: Servers,
    batches: Sequence[Batch],
    requests: int,
    concurrency: int,
    requests_per_connection: int,
) -> dict[str, RoundResult]:
    """Send ``requests`` untimed requests to each server, one after the other."""
    return {
        side: send_requests(
            server.port, batches, requests, concurrency, requests_per_connection
        )
        for side, server in servers.by_side().items()
    }


@dataclasses.dataclass
class MemoryPhase:
    """Results of the memory phase: warm-up, measured chunks, VmRSS samples."""

    warmup: dict[str, RoundResult]
    totals: dict[str, RoundResult]
    samples: dict[str, MemorySamples]


def memory_phase(
    servers: Servers,
    batches: Sequence[Batch],
    total_rows: int,
    chunks: int,
    warmup_requests: int,
    concurrency: int,
    requests_per_connection: int,
) -> MemoryPhase:
    """Send ``total_rows`` rows to each server in alternating chunks.

    Each worker's VmRSS is sampled after ``warmup_requests`` requests, and
    after every chunk. The warm-up rows are not counted in ``total_rows``.
    """
    rows_per_request = len(batches[0].labels)
    requests = -(-total_rows // rows_per_request)
    samples = {side: MemorySamples() for side in SIDES}
    pids = {side: servers.by_side()[side].worker_pids() for side in SIDES}
    warmup = warm_up(
        servers, batches, warmup_requests, concurrency, requests_per_connection
    )
    for side in SIDES:
        samples[side].sample(0, pids[side])

    def sample_both(round_index: int) -> None:
        # alternate_rounds gives the remainder of the division to the last round.
        done = (round_index + 1) * (requests // chunks) * rows_per_request
        if round_index == chunks - 1:
            done = requests * rows_per_request
        for side in SIDES:
            samples[side].sample(done, pids[side])

    totals = alternate_rounds(
        servers,
        batches,
        requests,
        chunks,
        concurrency,
        requests_per_connection,
        after_round=sample_both,
    )
    return MemoryPhase(warmup, totals, samples)


def format_memory(samples: MemorySamples) -> list[str]:
    lines = []
    header = " ".join(f"{rows / 1000:>7.0f}k" for rows in samples.rows)
    lines.append(f"    rows:       {header}")
    for pid, values in samples.by_pid.items():
        row = " ".join(f"{value / 2**20:>8.1f}" for value in values)
        lines.append(
            f"    pid {pid:<7} {row}   growth "
            f"{samples.growth(pid) / 2**20:+.1f} MiB, trend "
            f"{samples.slope(pid) / 2**20:+.1f} MiB per million rows"
        )
    return lines


# Spans received by the OTLP receiver.


def _attribute(attributes: Any, key: str) -> Any:
    for pair in attributes:
        if pair.key == key:
            value = pair.value
            return getattr(value, value.WhichOneof("value"))
    return None


def prediction_spans_by_pid(trace_requests: Sequence[Any]) -> collections.Counter[int]:
    """Count prediction spans per ``process.pid`` in OTLP trace requests."""
    counts: collections.Counter[int] = collections.Counter()
    for request in trace_requests:
        for resource in request.resource_spans:
            pid = _attribute(resource.resource.attributes, "process.pid")
            for scope in resource.scope_spans:
                for span in scope.spans:
                    if span.name == PREDICTION_SPAN:
                        counts[int(pid)] += 1
    return counts


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


# The command line.


def _parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=4000,
        help="requests per server in the comparison phase",
    )
    parser.add_argument(
        "--rounds", type=int, default=8, help="alternating rounds of the comparison"
    )
    parser.add_argument(
        "--batch-rows", type=int, default=1, help="rows per comparison request"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="client threads (connections)"
    )
    parser.add_argument(
        "--requests-per-connection",
        type=int,
        default=100,
        help="requests before a client thread opens a new connection",
    )

    parser.add_argument(
        "--memory-rows",
        type=int,
        default=1_000_000,
        help="rows per server in the memory phase (0 skips it)",
    )
    parser.add_argument(
        "--memory-batch-rows",
        type=int,
        default=1000,
        help="rows per request in the memory phase",
    )
    parser.add_argument(
        "--memory-chunks",
        type=int,
        default=10,
        help="alternating chunks of the memory phase; VmRSS is read after each",
    )
    parser.add_argument(
        "--warmup-requests",
        type=int,
        default=200,
        help="requests per server before each phase, not timed",
    )

    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--threads", type=int, default=4, help="gunicorn threads per worker"
    )
    parser.add_argument(
        "--preload",
        action="store_true",
        help="load the app in gunicorn's master before forking the workers",
    )
    parser.add_argument(
        "--disable",
        default="",
        metavar="NAMES",
        help="OTEL_PYTHON_DISABLED_INSTRUMENTATIONS of the instrumented server, "
        "e.g. flask to measure the model's instrumentation alone",
    )

    parser.add_argument(
        "--metric-interval-ms",
        type=int,
        default=10_000,
        help="OTEL_METRIC_EXPORT_INTERVAL of the instrumented server, in ms",
    )
    parser.add_argument(
        "--endpoint",
        help="OTLP/HTTP endpoint to export to; by default a receiver in this "
        "process on 127.0.0.1, which also counts the spans",
    )
    arguments = parser.parse_args()
    _check_arguments(parser, arguments)
    return arguments


def _check_arguments(
    parser: argparse.ArgumentParser, arguments: argparse.Namespace
) -> None:
    """Exit with a usage error on counts that leave a round without requests."""
    for option in (
        "requests",
        "rounds",
        "batch_rows",
        "concurrency",
        "requests_per_connection",
        "memory_batch_rows",
        "memory_chunks",
        "workers",
        "threads",
        "metric_interval_ms",
    ):
        if getattr(arguments, option) < 1:
            flag = "--" + option.replace("_", "-")
            parser.error(f"{flag} must be 1 or more, got {getattr(arguments, option)}")
    if arguments.rounds > arguments.requests:
        parser.error(
            f"--rounds ({arguments.rounds}) must not exceed --requests "
            f"({arguments.requests}), so that every round sends requests"
        )
    memory_requests = -(-arguments.memory_rows // arguments.memory_batch_rows)
    if arguments.memory_rows > 0 and arguments.memory_chunks > memory_requests:
        parser.error(
            f"--memory-chunks ({arguments.memory_chunks}) must not exceed the "
            f"memory phase's {memory_requests} requests; lower it or raise "
            "--memory-rows"
        )
    if arguments.memory_rows < 0 or arguments.warmup_requests < 0:
        parser.error("--memory-rows and --warmup-requests must be 0 or more")


def _start_receiver(endpoint: str | None) -> tuple[Any, str]:
    if endpoint is not None:
        return None, endpoint
    sys.path.insert(0, str(TESTS))
    support = importlib.import_module("otel_mlmon_test_support")
    receiver = support.HttpReceiver()
    return receiver, receiver.endpoint


def _print_spans(receiver: Any, servers: Servers, predictions: int) -> None:
    def counted() -> collections.Counter[int]:
        with receiver.received.lock:
            requests = list(receiver.received.requests["traces"])
        return prediction_spans_by_pid(requests)

    wait_for(lambda: sum(counted().values()) >= predictions, timeout=30)
    counts = counted()
    workers = servers.instrumented.worker_pids()
    print(
        f"prediction spans received: {sum(counts.values())} of {predictions} "
        f"requests; by worker pid: "
        + ", ".join(f"{pid}: {counts.get(pid, 0)}" for pid in workers)
    )


def _format_errors(totals: Mapping[str, RoundResult]) -> str:
    errors = sum(len(totals[side].errors) for side in SIDES)
    mismatches = sum(len(totals[side].mismatches) for side in SIDES)
    return (
        f"  failed requests: {errors}; replies unlike the bare model's: "
        f"{mismatches}"
    )


def _run_comparison(
    arguments: argparse.Namespace, servers: Servers, model: Model
) -> int:
    """Run and print the comparison phase; return the instrumented requests."""
    connection_options = (arguments.concurrency, arguments.requests_per_connection)
    batches = make_batches(model, arguments.batch_rows, 64, seed=1)
    warmup = warm_up(servers, batches, arguments.warmup_requests, *connection_options)
    print("warm-up:")
    print(_format_errors(warmup))
    totals = alternate_rounds(
        servers, batches, arguments.requests, arguments.rounds, *connection_options
    )
    print(
        f"comparison: {arguments.requests} requests per server of "
        f"{arguments.batch_rows} rows, {arguments.rounds} alternating rounds, "
        f"{arguments.concurrency} client threads; ratio is instrumented / bare"
    )
    for line in format_comparison(compare(totals)):
        print(line)
    print(_format_errors(totals))
    sent: int = arguments.warmup_requests + totals["instrumented"].requests
    return sent


def _run_memory(arguments: argparse.Namespace, servers: Servers, model: Model) -> int:
    """Run and print the memory phase; return the instrumented requests."""
    batches = make_batches(model, arguments.memory_batch_rows, 8, seed=2)
    memory = memory_phase(
        servers,
        batches,
        arguments.memory_rows,
        arguments.memory_chunks,
        arguments.warmup_requests,
        arguments.concurrency,
        arguments.requests_per_connection,
    )
    print("memory warm-up:")
    print(_format_errors(memory.warmup))
    print(
        f"memory: {memory.totals['bare'].rows:,} rows per server in requests "
        f"of {arguments.memory_batch_rows} rows, {arguments.memory_chunks} "
        f"alternating chunks, after {arguments.warmup_requests} warm-up requests"
    )
    for line in format_comparison(compare(memory.totals)):
        print(line)
    print(_format_errors(memory.totals))
    for side in SIDES:
        print(f"  {side} workers, VmRSS in MiB after warm-up and each chunk:")
        for line in format_memory(memory.samples[side]):
            print(line)
    sent: int = arguments.warmup_requests + memory.totals["instrumented"].requests
    return sent


def main() -> None:
    arguments = _parse_arguments()
    options = ServerOptions(
        workers=arguments.workers,
        threads=arguments.threads,
        preload=arguments.preload,
        disabled_instrumentations=arguments.disable,
        metric_interval_ms=arguments.metric_interval_ms,
    )
    receiver, endpoint = _start_receiver(arguments.endpoint)
    model = load_model()
    with tempfile.TemporaryDirectory() as directory:
        baseline = save_baseline(model.x, Path(directory) / "baseline.json")
        with running_servers(endpoint, baseline, options) as servers:
            for side, server in servers.by_side().items():
                print(f"{side} server: workers {server.worker_pids()}")
            predictions = _run_comparison(arguments, servers, model)
            if arguments.memory_rows > 0:
                predictions += _run_memory(arguments, servers, model)
            if receiver is not None:
                _print_spans(receiver, servers, predictions)
    if receiver is not None:
        receiver.close()


if __name__ == "__main__":
    main()
