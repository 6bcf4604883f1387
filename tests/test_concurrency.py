"""Concurrent prediction calls: each span keeps its own data, no row is lost.

Threads start together at a barrier, and the interpreter switches threads
every microsecond instead of every 5 ms, so races in the instrumentation
show up within a few hundred calls. Every caller sends its own input: a
batch of real rows whose first feature is set to a value only that call
uses, so a span that picked up another call's data, parent or prediction
id fails its check.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanContext
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from otel_mlmon import (
    Baseline,
    MonitorConfig,
    drift_report,
    last_prediction_id,
    last_prediction_ids,
    record_feedback,
    semconv,
    wrap_model,
)
from otel_mlmon.drift import DriftMonitor
from otel_mlmon.drift_report import DriftSettings
from otel_mlmon.feedback import LabelStatus, PredictionStore
from otel_mlmon.feedback._monitor import _EARLY_FLUSH_ROWS, close_recorders
from otel_mlmon.instrumentation.wrap import monitor_of

THREADS = 16
CALLS_PER_THREAD = 200
TASKS = 200
WINDOW_ROWS = 97
COUNTING_CALLS_PER_THREAD = 40
CATEGORICAL_ROUNDS = 30
FEEDBACK_THREADS = 8
FEEDBACK_CALLS_PER_THREAD = 20
# Digit pixels are integer intensities from 0 to 16, so they can be
# profiled as categories. Eight of them make the first call build eight
# category lookups, which widens the window in which threads race on it.
CATEGORICAL_PIXELS = [
    f"pixel_{row}_{column}" for row in (2, 3, 4, 5) for column in (3, 4)
]

MetricPoints = Callable[[str], list[Any]]


@dataclasses.dataclass(frozen=True)
class Call:
    """One prediction call as its caller made it."""

    label: str
    batch: np.ndarray
    parent: SpanContext
    prediction_id: str | None


@pytest.fixture(name="fast_thread_switching")
def fixture_fast_thread_switching() -> Iterator[None]:
    """Switch threads every microsecond while the test runs."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.fixture(name="closed_recorders")
def fixture_closed_recorders() -> Iterator[None]:
    """Close feedback recorders of other tests before, and this one's after."""
    close_recorders()
    yield
    close_recorders()


@pytest.fixture(name="wine", scope="module")
def fixture_wine() -> tuple[Pipeline, np.ndarray, np.ndarray]:
    """A scaled logistic regression fitted on the wine data set, and the data."""
    x, y = load_wine(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x, y)
    return model, x, y


def caller_batch(x: np.ndarray, caller: int, call: int, size: int) -> np.ndarray:
    """Return ``size`` real rows whose first feature only this call uses."""
    start = (caller * 7 + call * 3) % (len(x) - size)
    batch = x[start : start + size].copy()
    batch[:, 0] = 1000.0 * (caller + 1) + call
    return batch


def predict_with_id(model: Any, batch: np.ndarray) -> str | None:
    """Predict, and return the call's id as read in the calling context."""
    model.predict_proba(batch)
    return last_prediction_id()


def assert_span_matches(span: ReadableSpan, call: Call) -> None:
    attributes = span.attributes
    assert attributes is not None, call.label
    assert span.parent is not None, call.label
    assert span.parent.span_id == call.parent.span_id, call.label
    assert span.context is not None, call.label
    assert span.context.trace_id == call.parent.trace_id, call.label
    assert attributes[semconv.ML_PREDICTION_ID] == call.prediction_id, call.label
    assert attributes[semconv.ML_BATCH_SIZE] == len(call.batch), call.label
    means = list(attributes[semconv.ML_INPUT_FEATURE_MEAN])  # type: ignore[arg-type]
    assert means == pytest.approx(call.batch.mean(axis=0), rel=1e-12), call.label
    minimums = list(attributes[semconv.ML_INPUT_FEATURE_MIN])  # type: ignore[arg-type]
    assert minimums == call.batch.min(axis=0).tolist(), call.label
    maximums = list(attributes[semconv.ML_INPUT_FEATURE_MAX])  # type: ignore[arg-type]
    assert maximums == call.batch.max(axis=0).tolist(), call.label


def assert_spans_match(spans: Sequence[ReadableSpan], calls: list[Call]) -> None:
    """Check that every call has exactly one span, carrying its own data."""
    predictions = {
        span.attributes[semconv.ML_PREDICTION_ID]: span
        for span in spans
        if span.attributes and semconv.ML_PREDICTION_ID in span.attributes
    }
    assert len(predictions) == len(calls)
    assert len({call.prediction_id for call in calls}) == len(calls)
    for call in calls:
        span = predictions.get(call.prediction_id)
        assert span is not None, call.label
        assert_span_matches(span, call)


def test_threads_keep_span_data_apart(
    wine: tuple[Pipeline, np.ndarray, np.ndarray],
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
    fast_thread_switching: None,
) -> None:
    """16 threads of 200 calls: every span has its caller's input and parent."""
    model, x, _ = wine
    wrapped = wrap_model(
        model,
        name="wine",
        version="1",
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        config=MonitorConfig(),
    )
    tracer = tracer_provider.get_tracer("test_concurrency")
    barrier = threading.Barrier(THREADS, timeout=30)

    def run_caller(caller: int) -> list[Call]:
        # Each thread has its own batch size, 1 to 16 rows. One-row batches
        # take the single-row path of the confidence reader.
        size = caller + 1
        calls = []
        barrier.wait()
        for number in range(CALLS_PER_THREAD):
            batch = caller_batch(x, caller, number, size)
            with tracer.start_as_current_span(f"request {caller}-{number}") as parent:
                wrapped.predict_proba(batch)
                calls.append(
                    Call(
                        f"thread {caller} call {number}",
                        batch,
                        parent.get_span_context(),
                        last_prediction_id(),
                    )
                )
        return calls

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(run_caller, caller) for caller in range(THREADS)]
        calls = [call for future in futures for call in future.result()]

    assert len(calls) == THREADS * CALLS_PER_THREAD
    assert_spans_match(span_exporter.get_finished_spans(), calls)


def test_asyncio_tasks_keep_parent_spans(
    wine: tuple[Pipeline, np.ndarray, np.ndarray],
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
    fast_thread_switching: None,
) -> None:
    """200 tasks predict in the loop, in an executor and via to_thread."""
    model, x, _ = wine
    wrapped = wrap_model(
        model,
        name="wine",
        version="1",
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        config=MonitorConfig(),
    )
    tracer = tracer_provider.get_tracer("test_concurrency")

    async def run_task(task: int) -> list[Call]:
        loop = asyncio.get_running_loop()
        calls = []
        with tracer.start_as_current_span(f"task {task}") as parent:
            context = parent.get_span_context()
            await asyncio.sleep(0)

            direct = caller_batch(x, task, 0, 1 + task % 7)
            wrapped.predict_proba(direct)
            prediction_id = last_prediction_id()
            calls.append(Call(f"task {task} direct", direct, context, prediction_id))
            await asyncio.sleep(0)

            # run_in_executor does not carry the context over, so the
            # caller copies it.
            pooled = caller_batch(x, task, 1, 2 + task % 5)
            copied = contextvars.copy_context()
            prediction_id = await loop.run_in_executor(
                None, copied.run, predict_with_id, wrapped, pooled
            )
            calls.append(Call(f"task {task} executor", pooled, context, prediction_id))

            # asyncio.to_thread copies the context itself.
            threaded = caller_batch(x, task, 2, 3 + task % 3)
            prediction_id = await asyncio.to_thread(predict_with_id, wrapped, threaded)
            calls.append(
                Call(f"task {task} to_thread", threaded, context, prediction_id)
            )
        return calls

    async def run_tasks() -> list[list[Call]]:
        return await asyncio.gather(*(run_task(task) for task in range(TASKS)))

    calls = [call for task_calls in asyncio.run(run_tasks()) for call in task_calls]

    assert len(calls) == 3 * TASKS
    assert_spans_match(span_exporter.get_finished_spans(), calls)


@pytest.fixture(name="breast_cancer", scope="module")
def fixture_breast_cancer() -> tuple[Pipeline, np.ndarray, tuple[str, ...]]:
    """A classifier and the training split of the breast cancer data set."""
    data = load_breast_cancer()
    x_train = data.data[:400]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, data.target[:400])
    names = tuple(str(name) for name in data.feature_names)
    return model, x_train, names


def sum_by_attributes(points: list[Any], model_name: str) -> int:
    return sum(
        point.value
        for point in points
        if point.attributes.get(semconv.ML_MODEL_NAME) == model_name
    )


def counting_batch_size(caller: int) -> int:
    """Return the rows per call of a caller of the counting test.

    Training rows are inside the baseline's range, so the one-row batches
    of even callers take the drift engine's pending-row path, and the
    batches of 2 to 16 rows of odd callers a full count.
    """
    return 1 if caller % 2 == 0 else caller + 1


def test_threads_lose_no_row_or_window(
    breast_cancer: tuple[Pipeline, np.ndarray, tuple[str, ...]],
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
    metric_points: MetricPoints,
    fast_thread_switching: None,
) -> None:
    """Counters, histograms, drift bins and windows add up to what was sent."""
    model, x_train, names = breast_cancer
    baseline = Baseline.fit(x_train, feature_names=names)
    # Every row's first feature falls in the fifth of its ten training
    # bins, so every closed window drifts and flags the call that closed it.
    edges = baseline.inner_edges[0]
    in_one_bin = float(edges[3] + edges[4]) / 2
    wrapped = wrap_model(
        model,
        name="breast_cancer",
        version="1",
        baseline=baseline,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        config=MonitorConfig(drift_window_rows=WINDOW_ROWS, drift_min_rows=1),
    )
    barrier = threading.Barrier(THREADS, timeout=30)

    def run_caller(caller: int) -> list[np.ndarray]:
        size = counting_batch_size(caller)
        batches = []
        barrier.wait()
        for number in range(COUNTING_CALLS_PER_THREAD):
            start = (caller * 13 + number * 7) % (len(x_train) - size)
            batch = x_train[start : start + size].copy()
            batch[:, 0] = in_one_bin
            wrapped.predict_proba(batch)
            batches.append(batch)
        return batches

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(run_caller, caller) for caller in range(THREADS)]
        batches = [batch for future in futures for batch in future.result()]
    calls = len(batches)
    rows = sum(len(batch) for batch in batches)

    assert calls == THREADS * COUNTING_CALLS_PER_THREAD
    rows_per_round = sum(counting_batch_size(caller) for caller in range(THREADS))
    assert rows == COUNTING_CALLS_PER_THREAD * rows_per_round
    predictions = metric_points(semconv.ML_MODEL_PREDICTIONS)
    assert sum_by_attributes(predictions, "breast_cancer") == rows
    for histogram in (
        semconv.ML_MODEL_PREDICTION_DURATION,
        semconv.ML_MODEL_PREDICTION_CPU_TIME,
        semconv.ML_MODEL_PREDICTION_CONFIDENCE,
    ):
        counts = [point.count for point in metric_points(histogram)]
        assert sum(counts) == calls, histogram

    bin_rows: dict[tuple[str, str], int] = {}
    for point in metric_points(semconv.ML_FEATURE_BIN_ROWS):
        key = (
            point.attributes[semconv.ML_FEATURE_NAME],
            point.attributes[semconv.ML_FEATURE_BIN],
        )
        bin_rows[key] = point.value
    rows_per_feature = Counter[str]()
    for (feature, _), count in bin_rows.items():
        rows_per_feature[feature] += count
    assert rows_per_feature == Counter({name: rows for name in names})
    # The same rows counted in one batch, by a monitor no other thread uses.
    reference = DriftMonitor(baseline, DriftSettings(window_rows=10**8))
    columns = reference.columns_for(names)
    assert columns is not None
    reference.observe(np.vstack(batches), columns)
    expected_numeric, _ = reference.cumulative_counts()
    labels = [str(index) for index in range(baseline.bins)] + ["missing"]
    expected_bin_rows = {
        (name, label): int(expected_numeric[row, column])
        for row, name in enumerate(names)
        for column, label in enumerate(labels)
    }
    assert bin_rows == expected_bin_rows

    flagged = [
        span
        for span in span_exporter.get_finished_spans()
        if span.attributes and semconv.ML_DRIFT_FEATURE_COUNT in span.attributes
    ]
    assert len(flagged) == rows // WINDOW_ROWS
    window_rows = {
        event.attributes[semconv.ML_DRIFT_WINDOW_ROWS]
        for span in flagged
        for event in span.events
        if event.name == semconv.ML_DRIFT_DETECTED and event.attributes
    }
    assert window_rows == {WINDOW_ROWS}
    monitor = monitor_of(wrapped)
    assert monitor is not None
    assert monitor.drift is not None
    open_window = monitor.drift.close_window()
    assert open_window is not None
    assert open_window.rows == rows % WINDOW_ROWS
    assert drift_report(wrapped) is open_window


@pytest.fixture(name="digits", scope="module")
def fixture_digits() -> tuple[DecisionTreeClassifier, pd.DataFrame, Baseline]:
    """A tree on the digits data set, and a baseline with eight categories."""
    frame = load_digits(as_frame=True).frame
    target = frame.pop("target")
    model = DecisionTreeClassifier(random_state=0).fit(frame, target)
    baseline = Baseline.fit(frame, categorical=CATEGORICAL_PIXELS)
    return model, frame, baseline


def test_first_calls_count_categorical_rows(
    digits: tuple[DecisionTreeClassifier, pd.DataFrame, Baseline],
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    fast_thread_switching: None,
) -> None:
    """16 first calls at once count every row of every categorical feature."""
    model, frame, baseline = digits
    config = MonitorConfig(drift_window_rows=10**6)
    batches = [
        frame.iloc[caller * 20 : caller * 20 + caller + 1] for caller in range(THREADS)
    ]
    rows = sum(len(batch) for batch in batches)

    def counted_bins(version: str, concurrent: bool) -> tuple[np.ndarray, np.ndarray]:
        # A new wrap has a new drift monitor, whose first call builds the
        # category lookups that every other call then reads.
        wrapped = wrap_model(
            model,
            name="digits",
            version=version,
            baseline=baseline,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            config=config,
        )
        if concurrent:
            barrier = threading.Barrier(THREADS, timeout=30)

            def run_caller(caller: int) -> None:
                barrier.wait()
                wrapped.predict_proba(batches[caller])

            with ThreadPoolExecutor(max_workers=THREADS) as pool:
                for future in [pool.submit(run_caller, c) for c in range(THREADS)]:
                    future.result()
        else:
            for batch in batches:
                wrapped.predict_proba(batch)
        monitor = monitor_of(wrapped)
        assert monitor is not None
        assert monitor.drift is not None
        return monitor.drift.cumulative_counts()

    serial_numeric, serial_categorical = counted_bins("serial", concurrent=False)
    assert serial_categorical.sum(axis=1).tolist() == [rows] * len(CATEGORICAL_PIXELS)
    # Category lookups built in place, not published in one assignment,
    # lost rows in about 1 round in 12 (5 of 60 on a 2-CPU machine). So 30
    # rounds catch that with a chance of about 93 %.
    for round_number in range(CATEGORICAL_ROUNDS):
        numeric, categorical = counted_bins(str(round_number), concurrent=True)
        assert np.array_equal(numeric, serial_numeric), f"round {round_number}"
        assert np.array_equal(categorical, serial_categorical), f"round {round_number}"


def test_thread_labels_match_exactly_once(
    wine: tuple[Pipeline, np.ndarray, np.ndarray],
    tmp_path: Path,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    metric_points: MetricPoints,
    closed_recorders: None,
    fast_thread_switching: None,
) -> None:
    """Labels sent right after each call, from 8 threads, all match once."""
    model, x, y = wine
    store = PredictionStore(tmp_path / "feedback.sqlite3")
    wrapped = wrap_model(
        model,
        name="wine",
        version="1",
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        config=MonitorConfig(feedback_window_labels=100_000),
        feedback_store=store,
    )
    barrier = threading.Barrier(FEEDBACK_THREADS, timeout=30)

    def run_caller(caller: int) -> tuple[int, list[tuple[LabelStatus, bool]]]:
        predicted_rows = 0
        outcomes = []
        barrier.wait()
        for number in range(FEEDBACK_CALLS_PER_THREAD):
            # A call of _EARLY_FLUSH_ROWS rows wakes the background writer
            # at once, so its transaction often overlaps the caller's first
            # label. Those calls get their first and last rows labelled, the
            # small ones every row.
            large = number % 4 == 0
            size = _EARLY_FLUSH_ROWS if large else 1 + caller % 4
            rows = (np.arange(size) + caller * 11 + number * 5) % len(x)
            probabilities = wrapped.predict_proba(x[rows])
            predicted = model.classes_[probabilities.argmax(axis=1)]
            predicted_rows += size
            ids = last_prediction_ids()
            labelled = [0, size - 1] if large else range(size)
            for row in labelled:
                actual = int(y[rows[row]])
                outcome = record_feedback(ids[row], actual)
                outcomes.append((outcome.status, bool(predicted[row] == actual)))
        return predicted_rows, outcomes

    with ThreadPoolExecutor(max_workers=FEEDBACK_THREADS) as pool:
        futures = [
            pool.submit(run_caller, caller) for caller in range(FEEDBACK_THREADS)
        ]
        results = [future.result() for future in futures]
    predicted_rows = sum(rows for rows, _ in results)
    outcomes = [outcome for _, called in results for outcome in called]
    labels = len(outcomes)
    correct = sum(1 for _, right in outcomes if right)

    assert Counter(status for status, _ in outcomes) == {LabelStatus.MATCHED: labels}
    counts = store.counts()
    assert counts.predictions == predicted_rows
    assert counts.labels == labels
    matched = [
        point.value
        for point in metric_points(semconv.ML_FEEDBACK_LABELS)
        if point.attributes.get(semconv.ML_FEEDBACK_OUTCOME) == "matched"
    ]
    assert matched == [labels]
    delays = [point.count for point in metric_points(semconv.ML_FEEDBACK_LABEL_DELAY)]
    assert delays == [labels]
    accuracy = [point.value for point in metric_points(semconv.ML_MODEL_ACCURACY)]
    assert accuracy == [pytest.approx(correct / labels)]
