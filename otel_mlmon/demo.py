"""The demo: a real model served by Flask, traced, measured and flagged.

It trains a classifier on scikit-learn's breast cancer data set (569 real
tumour measurements, 30 features) and fits a baseline on the training split.
It serves the model over HTTP on 127.0.0.1 with Flask instrumented. Then it
sends three phases of traffic: the held-out rows, a shifted copy of them
(drift), and blends of two classes' rows (low confidence). Last, it prints
what the telemetry showed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from otel_mlmon import semconv
from otel_mlmon._setup import Telemetry, configure_telemetry
from otel_mlmon.baseline import Baseline
from otel_mlmon.config import MonitorConfig
from otel_mlmon.instrumentation import wrap_model
from otel_mlmon.instrumentation._core import last_prediction_id

_logger = logging.getLogger(__name__)

# With 5 quantile bins and 100-row windows, PSI between two samples of the
# same distribution stays near 0.05 (its small-sample bias is about
# (bins - 1) / rows), well below the 0.2 threshold.
DEMO_BINS = 5
DEMO_WINDOW_ROWS = 100
SHIFTED_FEATURES = ("mean radius", "mean perimeter", "mean area", "worst area")
SHIFT_FACTOR = 1.35
# A binary classifier's confidence, its highest class probability, is never
# below 0.5, so the demo flags rows below 0.8 rather than the default 0.5.
DEMO_CONFIDENCE_THRESHOLD = 0.8


@dataclasses.dataclass
class SpanRecord:
    """Duration, id and events of one prediction span, for the summary."""

    duration_s: float
    prediction_id: str
    events: list[tuple[str, dict[str, Any]]]


class _PredictionSpans(SpanProcessor):
    """Keep the prediction spans in memory for the demo's summary."""

    def __init__(self) -> None:
        self.records: list[SpanRecord] = []
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes or {}
        if semconv.ML_MODEL_NAME not in attributes:
            return
        record = SpanRecord(
            duration_s=((span.end_time or 0) - (span.start_time or 0)) / 1e9,
            prediction_id=str(attributes.get(semconv.ML_PREDICTION_ID, "")),
            events=[(e.name, dict(e.attributes or {})) for e in span.events],
        )
        with self._lock:
            self.records.append(record)


@dataclasses.dataclass
class DemoResult:
    """Figures of a demo run, as printed in its summary."""

    requests: int
    errors: int
    http_latency_s: list[float]
    spans: list[SpanRecord]
    request_of: dict[str, int]
    phases: list[tuple[str, int, int]]
    destination: str

    def low_confidence_rows(self) -> int:
        """Count rows flagged as low-confidence across all spans."""
        return sum(
            int(attrs[semconv.ML_PREDICTION_LOW_CONFIDENCE_COUNT])
            for record in self.spans
            for name, attrs in record.events
            if name == semconv.ML_PREDICTION_LOW_CONFIDENCE
        )

    def drift_first_seen(self) -> dict[str, tuple[int, float]]:
        """Map each drifted feature to its first flagging request and PSI."""
        seen: dict[str, tuple[int, float]] = {}
        for record in self.spans:
            request = self.request_of.get(record.prediction_id, -1)
            for name, attrs in record.events:
                if name != semconv.ML_DRIFT_DETECTED:
                    continue
                feature = str(attrs[semconv.ML_FEATURE_NAME])
                score = float(attrs[semconv.ML_DRIFT_SCORE])
                if feature not in seen or request < seen[feature][0]:
                    seen[feature] = (request, score)
        return seen


def build_app(model: Any, feature_names: Sequence[str]) -> Any:
    """Return a Flask app serving ``model`` at ``POST /predict``.

    The body is ``{"features": [...]}`` with one value per feature, or
    ``{"features": {"name": value, ...}}``.
    """
    from flask import Flask, jsonify, request

    app = Flask("otel_mlmon_demo")
    names = list(feature_names)

    @app.post("/predict")
    def predict() -> Any:
        body = request.get_json(silent=True) or {}
        features = body.get("features")
        if isinstance(features, dict):
            features = [features.get(name) for name in names]
        if not isinstance(features, list) or len(features) != len(names):
            return jsonify(error=f"expected {len(names)} features"), 400
        row = np.array([features], dtype=np.float64)
        probabilities = model.predict_proba(row)[0]
        best = int(probabilities.argmax())
        return jsonify(
            label=int(model.classes_[best]),
            confidence=float(probabilities[best]),
            prediction_id=last_prediction_id(),
        )

    return app


def _traffic(
    x_test: Any, y_test: Any, names: Sequence[str], rng: np.random.Generator
) -> list[tuple[str, Any]]:
    shifted = x_test.copy()
    for name in SHIFTED_FEATURES:
        shifted[:, list(names).index(name)] *= SHIFT_FACTOR
    # Halfway between a malignant and a benign tumour, the model is unsure.
    malignant = rng.permutation(np.flatnonzero(y_test == 0))
    benign = rng.permutation(np.flatnonzero(y_test == 1))
    pairs = min(len(malignant), len(benign))
    weights = rng.uniform(0.4, 0.6, size=(pairs, 1))
    blended = (
        weights * x_test[malignant[:pairs]]
        + (1 - weights) * x_test[benign[:pairs]]
    )
    return [("held-out", x_test), ("shifted", shifted), ("blended", blended)]


def _split(y: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    order = rng.permutation(len(y))
    cut = int(len(y) * 0.7)
    return order[:cut], order[cut:]


def run_demo(
    folder: Path,
    *,
    loops: int = 1,
    port: int = 0,
    out: TextIO = sys.stdout,
    progress: TextIO = sys.stderr,
) -> DemoResult:
    """Run the demo end to end and print its summary to ``out``.

    Args:
        folder: Where the OTLP JSON lines files go, unless an OTLP endpoint
            is configured.
        loops: Times to send the three phases; 0 repeats until interrupted.
        port: Port of the server on 127.0.0.1; 0 picks a free one.
    """
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from werkzeug.serving import make_server

    rng = np.random.default_rng(7)
    data = load_breast_cancer()
    names = [str(name) for name in data.feature_names]
    train, test = _split(data.target, rng)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(data.data[train], data.target[train])
    baseline = Baseline.fit(
        data.data[train],
        feature_names=names,
        bins=DEMO_BINS,
        predictions=model.predict(data.data[train]),
    )
    collector = _PredictionSpans()
    telemetry = configure_telemetry(
        "otel-mlmon-demo", folder, extra_span_processors=(collector,)
    )
    wrapped = wrap_model(
        model,
        name="breast_cancer_clf",
        version="1",
        baseline=baseline,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        config=MonitorConfig.from_env(
            drift_window_rows=DEMO_WINDOW_ROWS,
            low_confidence_threshold=DEMO_CONFIDENCE_THRESHOLD,
        ),
    )
    app = build_app(wrapped, names)
    FlaskInstrumentor().instrument_app(  # type: ignore[no-untyped-call]
        app,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/predict"
    print(f"Serving the model at {url}", file=out, flush=True)
    try:
        result = _send_phases(
            url, _traffic(data.data[test], data.target[test], names, rng), loops, progress
        )
    finally:
        server.shutdown()
        thread.join()
        FlaskInstrumentor().uninstrument_app(app)  # type: ignore[no-untyped-call]
        telemetry.shutdown()
    result.spans = collector.records
    result.destination = telemetry.destination
    print_summary(result, out)
    return result


def _send_phases(
    url: str,
    phases: list[tuple[str, Any]],
    loops: int,
    progress: TextIO,
) -> DemoResult:
    result = DemoResult(0, 0, [], [], {}, [], "")
    total = sum(len(rows) for _, rows in phases) * max(loops, 1)
    bar = _ProgressBar(total, progress)
    loop = 0
    while loops == 0 or loop < loops:
        loop += 1
        for phase, rows in phases:
            first = result.requests + 1
            for row in rows:
                _send(url, row, result)
                bar.update(result.requests)
            result.phases.append((phase, first, result.requests))
    bar.close()
    return result


def _send(url: str, row: Any, result: DemoResult) -> None:
    body = json.dumps({"features": row.tolist()}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    except OSError as error:
        result.errors += 1
        _logger.warning("Demo request to %s failed: %s", url, error)
        answer = {}
    result.http_latency_s.append(time.perf_counter() - start)
    result.requests += 1
    if answer.get("prediction_id"):
        result.request_of[answer["prediction_id"]] = result.requests


class _ProgressBar:
    """A one-line progress bar, redrawn in place on a terminal."""

    def __init__(self, total: int, stream: TextIO, width: int = 30) -> None:
        self.total = total
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._shown = -1

    def update(self, done: int) -> None:
        percent = done * 100 // max(self.total, 1)
        if percent == self._shown or (not self.tty and percent % 25):
            return
        self._shown = percent
        filled = self.width * done // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {done}/{self.total} requests"
        if self.tty:
            self.stream.write("\r" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else 0.0


def print_summary(result: DemoResult, out: TextIO) -> None:
    """Print what the demo's telemetry showed."""
    durations = [record.duration_s for record in result.spans]
    write: Callable[[str], None] = lambda text: print(text, file=out)
    write("")
    write("Summary")
    write(f"  requests sent:            {result.requests} ({result.errors} failed)")
    for phase, first, last in result.phases[:3]:
        write(f"    {phase:<10} requests {first}-{last}")
    write(f"  prediction spans:         {len(result.spans)}")
    write(
        "  HTTP latency p50 / p95:   "
        f"{_percentile_ms(result.http_latency_s, 50):.2f} ms / "
        f"{_percentile_ms(result.http_latency_s, 95):.2f} ms"
    )
    write(
        "  predict span p50 / p95:   "
        f"{_percentile_ms(durations, 50):.2f} ms / "
        f"{_percentile_ms(durations, 95):.2f} ms"
    )
    write(
        f"  low-confidence rows:      {result.low_confidence_rows()} "
        f"(confidence below {DEMO_CONFIDENCE_THRESHOLD})"
    )
    drifted = result.drift_first_seen()
    if drifted:
        write("  drifted features (first flagged at request, PSI):")
        for feature, (request, score) in sorted(
            drifted.items(), key=lambda item: (item[1][0], -item[1][1])
        ):
            write(f"    {feature:<26} request {request:<5} PSI {score:.2f}")
    else:
        write("  drifted features:         none")
    write(f"  telemetry written to:     {result.destination}")
