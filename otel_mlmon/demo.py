"""The demo: a real model served by Flask, traced, measured and flagged.

It trains a classifier on scikit-learn's breast cancer data set (569 real
tumour measurements, 30 features) and fits a baseline on the training split.
It serves the model over HTTP on 127.0.0.1 with Flask instrumented. Then it
sends three phases of traffic: the held-out rows, a shifted copy of them
(drift), and blends of two classes' rows (low confidence). Every second
prediction gets its true label back through ``POST /feedback``, sent 20
requests later to stand for the delay of real ground truth. Last, it prints
what the telemetry showed, with accuracy per phase and the review queue.
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
from otel_mlmon.feedback import PredictionStore, ReviewItem
from otel_mlmon.feedback._monitor import FeedbackRecorder, close_recorder
from otel_mlmon.flask import PREDICTION_ID_HEADER, init_app
from otel_mlmon.instrumentation._core import last_prediction_id
from otel_mlmon.instrumentation.wrap import monitor_of

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
# Labels come back for every LABEL_EVERY-th prediction, LABEL_DELAY_REQUESTS
# requests after it, in batches of LABEL_BATCH. The accuracy gauge covers
# the last DEMO_WINDOW_LABELS labels, fewer than each phase sends, so its
# value at a phase's end is that phase's accuracy.
LABEL_EVERY = 2
LABEL_DELAY_REQUESTS = 20
LABEL_BATCH = 10
DEMO_WINDOW_LABELS = 30
MODEL_NAME = "breast_cancer_clf"
MODEL_VERSION = "1"


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
    label_outcomes: dict[str, int] = dataclasses.field(default_factory=dict)
    accuracy: list[tuple[str, float | None, int]] = dataclasses.field(
        default_factory=list
    )
    review_open: int = 0
    review_items: list[ReviewItem] = dataclasses.field(default_factory=list)
    feedback_db: str = ""

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
    ``{"features": {"name": value, ...}}``. Responses carry the row's
    prediction id in ``X-Prediction-Id``, and ``POST /feedback`` takes
    labels for it (see :mod:`otel_mlmon.flask`).
    """
    from flask import Flask, jsonify, request

    app = Flask("otel_mlmon_demo")
    init_app(app)
    names = list(feature_names)

    @app.post("/predict")
    def predict() -> Any:
        body = request.get_json(silent=True) or {}
        features = body.get("features")
        if isinstance(features, dict):
            features = [features.get(name) for name in names]
        if not isinstance(features, list) or len(features) != len(names):
            return jsonify(error=f"expected {len(names)} features"), 400
        try:
            row = np.array([features], dtype=np.float64)
        except (TypeError, ValueError):
            # Not re-raised: the server span would record the error's message,
            # which quotes the offending value.
            return jsonify(error="every feature must be a number or null"), 400
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
) -> list[tuple[str, Any, Any]]:
    """Return each phase's name, rows and true labels."""
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
    # A blend's true class is taken to be that of its larger share. The
    # shifted rows keep the labels of the tumours they were scaled from.
    blended_truth = np.where(weights[:, 0] > 0.5, 0, 1)
    return [
        ("held-out", x_test, y_test),
        ("shifted", shifted, y_test),
        ("blended", blended, blended_truth),
    ]


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
        name=MODEL_NAME,
        version=MODEL_VERSION,
        baseline=baseline,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        config=MonitorConfig.from_env(
            drift_window_rows=DEMO_WINDOW_ROWS,
            low_confidence_threshold=DEMO_CONFIDENCE_THRESHOLD,
            capture_inputs=True,
            feedback_window_labels=DEMO_WINDOW_LABELS,
        ),
        feedback_store=_new_store_path(folder),
    )
    monitor = monitor_of(wrapped)
    recorder = monitor.feedback if monitor is not None else None
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
    base = f"http://127.0.0.1:{server.server_port}"
    url = f"{base}/predict"
    print(f"Serving the model at {url}", file=out, flush=True)
    labeller = _Labeller(f"{base}/feedback", recorder)
    try:
        result = _send_phases(
            url,
            _traffic(data.data[test], data.target[test], names, rng),
            loops,
            progress,
            labeller,
        )
    finally:
        server.shutdown()
        thread.join()
        FlaskInstrumentor().uninstrument_app(app)  # type: ignore[no-untyped-call]
        telemetry.shutdown()
    result.spans = collector.records
    result.destination = telemetry.destination
    result.label_outcomes = labeller.outcomes
    result.accuracy = labeller.accuracy
    if recorder is not None:
        _read_review_queue(recorder, result)
        close_recorder(recorder)
    print_summary(result, out)
    return result


def _new_store_path(folder: Path) -> Path:
    """Return the demo's feedback store path, with any earlier run's file removed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "feedback.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def _read_review_queue(recorder: FeedbackRecorder, result: DemoResult) -> None:
    recorder.flush()
    store: PredictionStore = recorder.store
    result.feedback_db = str(store.path)
    result.review_open = store.counts().open_reviews
    result.review_items = store.review_list(limit=3)


class _Labeller:
    """Send true labels back through ``POST /feedback``, some requests late."""

    def __init__(self, url: str, recorder: FeedbackRecorder | None) -> None:
        self.url = url
        self.recorder = recorder
        self.waiting: list[tuple[int, str, int]] = []
        self.outcomes: dict[str, int] = {}
        self.accuracy: list[tuple[str, float | None, int]] = []
        # One label for an id never served, to show it is counted, not failed.
        self._extra = [{"prediction_id": "never-served-0", "actual": 1}]

    def add(self, request_number: int, row_id: str | None, truth: int) -> None:
        """Schedule the label of a prediction, if it is one that gets one."""
        if row_id and request_number % LABEL_EVERY == 0:
            self.waiting.append((request_number, row_id, truth))

    def send_due(self, request_number: int) -> None:
        """Send the labels old enough, once a full batch is due."""
        due = [w for w in self.waiting if w[0] <= request_number - LABEL_DELAY_REQUESTS]
        if len(due) >= LABEL_BATCH:
            self._post(due)

    def finish_phase(self, phase: str) -> None:
        """Send the phase's remaining labels and note the accuracy gauge."""
        self._post(list(self.waiting))
        if self.recorder is None:
            self.accuracy.append((phase, None, 0))
            return
        quality = self.recorder.quality(MODEL_NAME, MODEL_VERSION, "classification")
        self.accuracy.append((phase, quality.accuracy, quality.count))

    def _post(self, items: list[tuple[int, str, int]]) -> None:
        sent = {row_id for _, row_id, _ in items}
        self.waiting = [w for w in self.waiting if w[1] not in sent]
        for start in range(0, len(items), LABEL_BATCH):
            labels = [
                {"prediction_id": row_id, "actual": truth}
                for _, row_id, truth in items[start : start + LABEL_BATCH]
            ]
            self._send_batch(self._extra + labels)
            self._extra = []

    def _send_batch(self, labels: list[dict[str, Any]]) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"labels": labels}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                counts = json.loads(response.read())["counts"]
        except OSError as error:
            _logger.warning("Demo feedback to %s failed: %s", self.url, error)
            counts = {"failed": len(labels)}
        for outcome, count in counts.items():
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + count


def _send_phases(
    url: str,
    phases: list[tuple[str, Any, Any]],
    loops: int,
    progress: TextIO,
    labeller: _Labeller,
) -> DemoResult:
    result = DemoResult(0, 0, [], [], {}, [], "")
    total = sum(len(rows) for _, rows, _ in phases) * max(loops, 1)
    bar = _ProgressBar(total, progress)
    loop = 0
    while loops == 0 or loop < loops:
        loop += 1
        for phase, rows, truths in phases:
            first = result.requests + 1
            for row, truth in zip(rows, truths):
                row_id = _send(url, row, result)
                labeller.add(result.requests, row_id, int(truth))
                labeller.send_due(result.requests)
                bar.update(result.requests)
            labeller.finish_phase(phase)
            result.phases.append((phase, first, result.requests))
    bar.close()
    return result


def _send(url: str, row: Any, result: DemoResult) -> str | None:
    """Send one row; return its prediction id from the response header."""
    body = json.dumps({"features": row.tolist()}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}
    )
    start = time.perf_counter()
    row_id = None
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
            row_id = response.headers.get(PREDICTION_ID_HEADER)
    except OSError as error:
        result.errors += 1
        _logger.warning("Demo request to %s failed: %s", url, error)
        answer = {}
    result.http_latency_s.append(time.perf_counter() - start)
    result.requests += 1
    if answer.get("prediction_id"):
        result.request_of[answer["prediction_id"]] = result.requests
    return row_id


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
    _print_feedback(result, write)
    write(f"  telemetry written to:     {result.destination}")


def _print_feedback(result: DemoResult, write: Callable[[str], None]) -> None:
    outcomes = result.label_outcomes
    described = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
    write(
        f"  labels sent:              {sum(outcomes.values())} through "
        f"POST /feedback ({described or 'none'})"
    )
    write(f"  accuracy over the last {DEMO_WINDOW_LABELS} labels, at each phase's end:")
    for phase, accuracy, count in result.accuracy[:3]:
        shown = "no labels" if accuracy is None else f"{accuracy:.2f}"
        write(f"    {phase:<10} {shown} ({count} labels)")
    if not result.feedback_db:
        write("  review queue:             off (the feedback store did not open)")
        return
    write(
        f"  review queue:             {result.review_open} open items in "
        f"{result.feedback_db}"
    )
    for item in result.review_items:
        confidence = "?" if item.confidence is None else f"{item.confidence:.2f}"
        write(
            f"    #{item.review_id:<4} {item.reason.value} predicted "
            f"{item.predicted} confidence {confidence} trace {item.trace_id}"
        )
    write("  list them: otel-mlmon review list --db " + result.feedback_db)
