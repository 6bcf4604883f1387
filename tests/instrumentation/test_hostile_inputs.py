"""Hostile inputs through wrap_model: the model's behaviour and the telemetry.

Each input test calls the bare model and its proxy on the same input. The
proxy must return the same result or raise the same exception, add no warning,
log no telemetry failure, and export attributes of native types with finite
floats. Warnings are recorded with the "always" filter rather than turned
into errors, because an error raised inside the telemetry is caught and
logged by otel_mlmon, so the test would only see its side effects.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import logging
import math
import pickle
import re
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import sklearn
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode
from sklearn.base import BaseEstimator, RegressorMixin, clone, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from otel_mlmon import (
    Baseline,
    MLSpanProcessor,
    MonitorConfig,
    semconv,
    unwrap_model,
    wrap_model,
)

IDENTITY_KEYS = frozenset(
    {
        semconv.ML_MODEL_NAME,
        semconv.ML_MODEL_VERSION,
        semconv.ML_MODEL_FRAMEWORK,
        semconv.ML_OPERATION_NAME,
    }
)
CALL_KEYS = frozenset(
    {semconv.ML_BATCH_SIZE, semconv.ML_PREDICTION_ID, semconv.ML_INPUT_TYPE}
)
SUMMARY_KEYS = frozenset(
    {
        semconv.ML_INPUT_FEATURE_COUNT,
        semconv.ML_INPUT_FEATURE_NAMES,
        semconv.ML_INPUT_FEATURE_MEAN,
        semconv.ML_INPUT_FEATURE_STD,
        semconv.ML_INPUT_FEATURE_MIN,
        semconv.ML_INPUT_FEATURE_MAX,
        semconv.ML_INPUT_FEATURE_NULL_COUNT,
    }
)
SUMMARY_ARRAY_KEYS = SUMMARY_KEYS - {semconv.ML_INPUT_FEATURE_COUNT}
LABEL_KEYS = frozenset(
    {
        semconv.ML_PREDICTION_CONFIDENCE_SKIPPED,
        semconv.ML_OUTPUT_CLASSES,
        semconv.ML_OUTPUT_CLASS_COUNTS,
    }
)
PROBABILITY_KEYS = frozenset(
    {
        semconv.ML_PREDICTION_CONFIDENCE_MIN,
        semconv.ML_PREDICTION_CONFIDENCE_MEAN,
        semconv.ML_PREDICTION_LOW_CONFIDENCE_COUNT,
    }
)
NATIVE_TYPES = (str, bool, int, float)

MARKER = "hostile-marker-5c1d"
"""A category value that must not appear in any exported span or log record."""

SKLEARN_DIRECTORY = Path(sklearn.__file__).resolve().parent


class ModelFailure(RuntimeError):
    """The error that FailingModel raises."""


class FailingModel:
    """A model whose predict raises a new ModelFailure and keeps it."""

    def __init__(self) -> None:
        self.raised: list[ModelFailure] = []

    def predict(self, data: Any) -> Any:
        error = ModelFailure("weights file is corrupt")
        self.raised.append(error)
        raise error


class RowSumModel:
    """A model that sums each row of any iterable and keeps what it received."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    def predict(self, data: Any) -> np.ndarray:
        self.received.append(data)
        return np.array([float(np.sum(row)) for row in data])


class ColumnDictModel:
    """A model that takes a dict of equal-length columns and sums across them."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    def predict(self, columns: dict[str, Any]) -> np.ndarray:
        self.received.append(columns)
        return np.sum([np.asarray(values) for values in columns.values()], axis=0)


class DefaultingModel:
    """A model that predicts its fallback value when the input is None."""

    def __init__(self, fallback: float) -> None:
        self.fallback = fallback

    def predict(self, data: Any) -> np.ndarray:
        if data is None:
            return np.array([self.fallback])
        return np.full(len(data), self.fallback)


@dataclasses.dataclass
class Telemetry:
    """In-memory SDK providers and exporters for one test."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    logs: InMemoryLogRecordExporter
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def wrap(self, model: Any, **options: Any) -> Any:
        """Wrap ``model`` with these providers and default settings."""
        options.setdefault("config", MonitorConfig())
        return wrap_model(
            model,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            **options,
        )

    def only_span(self) -> ReadableSpan:
        """Return the single finished span, failing if there is not one."""
        finished = self.spans.get_finished_spans()
        assert len(finished) == 1, [span.name for span in finished]
        return finished[0]

    def metric_points(self, name: str) -> list[Any]:
        """Return the data points of metric ``name``, or [] if it has none."""
        data = self.metrics.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture(name="telemetry")
def fixture_telemetry() -> Iterator[Telemetry]:
    span_exporter = InMemorySpanExporter()
    log_exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(MLSpanProcessor(logger_provider=logger_provider))
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(
        spans=span_exporter,
        metrics=reader,
        logs=log_exporter,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()


@pytest.fixture(name="iris", scope="module")
def fixture_iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


@pytest.fixture(name="iris_forest", scope="module")
def fixture_iris_forest(iris: tuple[np.ndarray, np.ndarray]) -> RandomForestClassifier:
    x, y = iris
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)


@pytest.fixture(name="iris_dummy", scope="module")
def fixture_iris_dummy(iris: tuple[np.ndarray, np.ndarray]) -> DummyClassifier:
    """A class-prior classifier, which accepts any input that has a length."""
    x, y = iris
    return DummyClassifier(strategy="prior").fit(x, y)


@pytest.fixture(name="diabetes_dummy", scope="module")
def fixture_diabetes_dummy() -> DummyRegressor:
    x, y = load_diabetes(return_X_y=True)
    return DummyRegressor().fit(x, y)


@pytest.fixture(name="cancer", scope="module")
def fixture_cancer() -> tuple[np.ndarray, np.ndarray]:
    return load_breast_cancer(return_X_y=True)


@pytest.fixture(name="cancer_logistic", scope="module")
def fixture_cancer_logistic(cancer: tuple[np.ndarray, np.ndarray]) -> Any:
    x, y = cancer
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)


@pytest.fixture(name="habitat_frame", scope="module")
def fixture_habitat_frame(iris: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    """Iris measurements with a categorical column whose categories include MARKER."""
    x, _ = iris
    frame = pd.DataFrame(
        x, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"]
    )
    habitats = np.array(["meadow", "riverbank", MARKER])[np.arange(len(frame)) % 3]
    frame["habitat"] = pd.Categorical(
        habitats, categories=["meadow", "riverbank", MARKER]
    )
    return frame


@pytest.fixture(name="habitat_pipeline", scope="module")
def fixture_habitat_pipeline(
    habitat_frame: pd.DataFrame, iris: tuple[np.ndarray, np.ndarray]
) -> Any:
    encoder = ColumnTransformer(
        [("habitat", OneHotEncoder(handle_unknown="ignore"), ["habitat"])],
        remainder="passthrough",
    )
    model = make_pipeline(encoder, LogisticRegression(max_iter=1000))
    return model.fit(habitat_frame, iris[1])


@pytest.fixture(name="sparse_batch", scope="module")
def fixture_sparse_batch() -> sp.csr_matrix:
    """A 100,000 x 1,000 CSR matrix with about 100,000 stored values (density 0.001)."""
    rng = np.random.default_rng(7)
    stored = 100_000
    rows = rng.integers(0, 100_000, stored)
    columns = rng.integers(0, 1_000, stored)
    values = rng.random(stored) + 0.5
    return sp.csr_matrix((values, (rows, columns)), shape=(100_000, 1_000))


@pytest.fixture(name="sparse_logistic", scope="module")
def fixture_sparse_logistic() -> LogisticRegression:
    """A logistic regression fitted on sparse data of 1,000 features."""
    rng = np.random.default_rng(11)
    train = sp.random(5_000, 1_000, density=0.01, format="csr", random_state=rng)
    labels = (train @ rng.normal(size=1_000) > 0).astype(int)
    return LogisticRegression(max_iter=500).fit(train, labels)


@pytest.fixture(name="wide_cancer", scope="module")
def fixture_wide_cancer(
    cancer: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, GaussianNB]:
    """Breast-cancer rows tiled to 10,000 features, and a naive Bayes fitted on them."""
    x, y = cancer
    wide = np.tile(x, (1, 334))[:, :10_000]
    return wide, GaussianNB().fit(wide, y)


def call_recorded(method: Callable[[Any], Any], data: Any) -> tuple[Any, list[str]]:
    """Call ``method(data)`` and return its result and the warnings it emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = method(data)
    return result, [f"{item.category.__name__}: {item.message}" for item in caught]


def raise_recorded(method: Callable[[Any], Any], data: Any) -> BaseException:
    """Call ``method(data)``, which must raise, and return the exception."""
    with pytest.raises(BaseException) as caught:
        method(data)
    return caught.value


def iter_attributes(span: ReadableSpan) -> Iterator[tuple[str, Any]]:
    """Yield (place, value) for every attribute of the span and of its events."""
    for key, value in (span.attributes or {}).items():
        yield key, value
    for event in span.events:
        for key, value in (event.attributes or {}).items():
            yield f"{event.name}/{key}", value


def type_problems(span: ReadableSpan) -> list[str]:
    """Return the attributes whose value, or an element of it, is not native."""
    problems = []
    for place, value in iter_attributes(span):
        elements = value if isinstance(value, tuple) else (value,)
        for element in elements:
            if type(element) not in NATIVE_TYPES:
                problems.append(
                    f"{place}: {type(element).__module__}.{type(element).__name__}"
                )
    return problems


def non_finite_values(span: ReadableSpan) -> list[str]:
    """Return the attributes that contain a NaN or infinite float."""
    found = []
    for place, value in iter_attributes(span):
        elements = value if isinstance(value, tuple) else (value,)
        for element in elements:
            if isinstance(element, float) and not math.isfinite(element):
                found.append(f"{place}: {element}")
    return found


def telemetry_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return the warnings that otel_mlmon or the OpenTelemetry SDK logged."""
    return [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.WARNING
        and record.name.startswith(("otel_mlmon", "opentelemetry"))
    ]


def assert_clean_span(span: ReadableSpan, caplog: pytest.LogCaptureFixture) -> None:
    """Assert that the span's telemetry is complete, native and finite."""
    assert type_problems(span) == []
    assert non_finite_values(span) == []
    assert span.dropped_attributes == 0
    assert telemetry_warnings(caplog) == []
    assert semconv.ML_PREDICTION_ID in span.attributes
    assert semconv.ML_INPUT_TYPE in span.attributes
    skipped = span.attributes.get(semconv.ML_INPUT_SUMMARY_SKIPPED, "")
    if not str(skipped).startswith("unsupported input type"):
        assert semconv.ML_BATCH_SIZE in span.attributes


def assert_same_prediction(
    bare: Callable[[Any], Any], wrapped: Callable[[Any], Any], data: Any
) -> Any:
    """Assert that both calls return equal results and emit the same warnings."""
    expected, expected_warnings = call_recorded(bare, data)
    result, result_warnings = call_recorded(wrapped, data)
    np.testing.assert_array_equal(result, expected)
    assert np.asarray(result).dtype == np.asarray(expected).dtype
    assert result_warnings == expected_warnings
    return result


def assert_same_error(
    bare: Callable[[Any], Any], wrapped: Callable[[Any], Any], data: Any
) -> BaseException:
    """Assert that the wrapped call raises what the bare call raises."""
    expected = raise_recorded(bare, data)
    error = raise_recorded(wrapped, data)
    assert type(error) is type(expected)
    assert str(error) == str(expected)
    assert error.__cause__ is None
    return error


def assert_error_span(span: ReadableSpan, error_type: str) -> None:
    """Assert that the span records a model error of type ``error_type``."""
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes.get(semconv.ERROR_TYPE) == error_type
    exceptions = [event for event in span.events if event.name == "exception"]
    assert len(exceptions) == 1
    assert exceptions[0].attributes["exception.type"] == error_type


def error_texts(span: ReadableSpan) -> list[str]:
    """Return the texts in which the span describes its error."""
    texts = [span.status.description or ""]
    for event in span.events:
        if event.name == "exception":
            texts.append(str(event.attributes.get("exception.message", "")))
            texts.append(str(event.attributes.get("exception.stacktrace", "")))
    return texts


def exported_texts(telemetry: Telemetry) -> list[str]:
    """Return every string that the spans and log records exported."""
    texts: list[str] = []
    for span in telemetry.spans.get_finished_spans():
        texts.append(span.name)
        texts.append(span.status.description or "")
        for place, value in iter_attributes(span):
            texts.append(place)
            texts.append(repr(value))
        texts.extend(event.name for event in span.events)
    for record in telemetry.logs.get_finished_logs():
        texts.append(str(record.log_record.body))
        for key, value in (record.log_record.attributes or {}).items():
            texts.append(key)
            texts.append(repr(value))
    return texts


def last_frame_file(error: BaseException) -> Path:
    """Return the source file of the innermost frame of the error's traceback."""
    trace = error.__traceback__
    assert trace is not None
    while trace.tb_next is not None:
        trace = trace.tb_next
    return Path(trace.tb_frame.f_code.co_filename).resolve()


def printed_values(values: np.ndarray) -> list[str]:
    """Return the numbers as numpy prints them in an array's str()."""
    return str(values).replace("[", " ").replace("]", " ").split()


# Native attribute types for numpy dtypes.


def test_int32_array_attributes_native(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An int32 batch gets a full summary whose values are all native Python types."""
    x, y = iris
    tenths = np.rint(x * 10).astype(np.int32)
    model = DecisionTreeClassifier(random_state=0).fit(tenths, y.astype(np.int64))
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, tenths)

    span = telemetry.only_span()
    assert set(span.attributes) == IDENTITY_KEYS | CALL_KEYS | SUMMARY_KEYS | LABEL_KEYS
    assert type_problems(span) == []
    assert span.dropped_attributes == 0
    assert telemetry_warnings(caplog) == []


def test_float32_probabilities_attributes_native(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    iris_forest: RandomForestClassifier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A float32 batch to predict_proba gets native confidence and summary values."""
    x, _ = iris
    batch = x.astype(np.float32)
    wrapped = telemetry.wrap(iris_forest)

    assert_same_prediction(iris_forest.predict_proba, wrapped.predict_proba, batch)

    span = telemetry.only_span()
    assert (
        set(span.attributes)
        == IDENTITY_KEYS | CALL_KEYS | SUMMARY_KEYS | PROBABILITY_KEYS
    )
    assert type_problems(span) == []
    assert span.dropped_attributes == 0
    assert telemetry_warnings(caplog) == []


def test_numpy_typed_frame_attributes_native(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A frame of int8, uint64, float32 and bool columns gets native values."""
    x, y = iris
    frame = pd.DataFrame(
        {
            np.int64(0): np.rint(x[:, 0] * 10).astype(np.int8),
            np.int64(1): np.rint(x[:, 1] * 10).astype(np.uint64),
            np.int64(2): x[:, 2].astype(np.float32),
            np.int64(3): x[:, 3] > 1.0,
        }
    )
    model = DecisionTreeClassifier(random_state=0).fit(frame.to_numpy(dtype=float), y)
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, frame)

    span = telemetry.only_span()
    assert set(span.attributes) == IDENTITY_KEYS | CALL_KEYS | SUMMARY_KEYS | LABEL_KEYS
    # Columns numbered 0, 1, ... (a RangeIndex) are no names, so the frame
    # is named like an array.
    assert span.attributes[semconv.ML_INPUT_FEATURE_NAMES] == ("x0", "x1", "x2", "x3")
    assert type_problems(span) == []
    assert span.dropped_attributes == 0
    assert telemetry_warnings(caplog) == []


def test_flag_events_attributes_native(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    iris_forest: RandomForestClassifier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Drift, range and confidence events and their log records are native."""
    x, _ = iris
    config = MonitorConfig(
        low_confidence_threshold=1.0, drift_window_rows=50, drift_min_rows=50
    )
    wrapped = telemetry.wrap(iris_forest, baseline=Baseline.fit(x), config=config)
    shifted = x[::2] + 2.5

    assert_same_prediction(iris_forest.predict_proba, wrapped.predict_proba, shifted)

    span = telemetry.only_span()
    event_names = {event.name for event in span.events}
    assert semconv.ML_DRIFT_DETECTED in event_names
    assert semconv.ML_INPUT_OUT_OF_RANGE in event_names
    assert semconv.ML_PREDICTION_LOW_CONFIDENCE in event_names
    assert set(span.attributes) == (
        IDENTITY_KEYS
        | CALL_KEYS
        | SUMMARY_KEYS
        | PROBABILITY_KEYS
        | {semconv.ML_DRIFT_FEATURE_COUNT}
    )
    assert type_problems(span) == []
    log_problems = [
        f"{key}: {type(value).__name__}"
        for record in telemetry.logs.get_finished_logs()
        for key, value in (record.log_record.attributes or {}).items()
        for element in (value if isinstance(value, tuple) else (value,))
        if type(element) not in NATIVE_TYPES
    ]
    assert log_problems == []
    assert telemetry_warnings(caplog) == []


# NaN and all-NaN columns.


def test_nan_cells_array_summary(
    telemetry: Telemetry,
    cancer: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """NaN cells and an all-NaN column give finite summaries and exact nulls."""
    x, y = cancer
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y)
    batch = x[:200].copy()
    batch[np.random.default_rng(3).random(batch.shape) < 0.1] = np.nan
    batch[:, 3] = np.nan
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict_proba, wrapped.predict_proba, batch)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    nulls = np.isnan(batch).sum(axis=0)
    assert list(span.attributes[semconv.ML_INPUT_FEATURE_NULL_COUNT]) == nulls.tolist()
    mean = np.array(span.attributes[semconv.ML_INPUT_FEATURE_MEAN])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected_mean = np.nanmean(batch, axis=0)
    has_values = nulls < len(batch)
    np.testing.assert_allclose(mean[has_values], expected_mean[has_values], rtol=1e-12)
    assert mean[3] == 0.0


def test_all_nan_frame_summary(
    telemetry: Telemetry,
    cancer: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An all-NaN DataFrame gets finite summaries and full null counts."""
    x, y = cancer
    names = [f"f{i}" for i in range(x.shape[1])]
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    model.fit(pd.DataFrame(x, columns=names), y)
    frame = pd.DataFrame(np.full((40, x.shape[1]), np.nan), columns=names)
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, frame)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert (
        list(span.attributes[semconv.ML_INPUT_FEATURE_NULL_COUNT]) == [40] * x.shape[1]
    )
    assert list(span.attributes[semconv.ML_INPUT_FEATURE_MEAN]) == [0.0] * x.shape[1]
    assert list(span.attributes[semconv.ML_INPUT_FEATURE_STD]) == [0.0] * x.shape[1]


def test_nan_with_baseline_events_finite(
    telemetry: Telemetry,
    cancer: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """NaN cells against a baseline give finite drift scores and missing counts."""
    x, y = cancer
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y)
    batch = x[:100].copy()
    batch[:, 3] = np.nan
    config = MonitorConfig(drift_window_rows=100)
    wrapped = telemetry.wrap(model, baseline=Baseline.fit(x), config=config)

    assert_same_prediction(model.predict_proba, wrapped.predict_proba, batch)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    missing = {
        event.attributes[semconv.ML_FEATURE_NAME]: event.attributes[
            semconv.ML_INPUT_MISSING_COUNT
        ]
        for event in span.events
        if event.name == semconv.ML_INPUT_OUT_OF_RANGE
    }
    assert missing.get("x3") == 100


# Categorical columns.


def test_category_frame_left_unchanged(
    telemetry: Telemetry, habitat_frame: pd.DataFrame, habitat_pipeline: Any
) -> None:
    """A frame with a category column keeps its values and dtypes after the call."""
    frame = habitat_frame.copy(deep=True)
    original = frame.copy(deep=True)
    wrapped = telemetry.wrap(habitat_pipeline)

    wrapped.predict(frame)
    wrapped.predict_proba(frame)

    pd.testing.assert_frame_equal(frame, original)
    assert frame.dtypes.equals(original.dtypes)
    assert list(frame["habitat"].cat.categories) == list(
        original["habitat"].cat.categories
    )


def test_category_values_never_exported(
    telemetry: Telemetry,
    habitat_frame: pd.DataFrame,
    habitat_pipeline: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No category value appears in exported attributes, events, status or logs."""
    config = MonitorConfig(low_confidence_threshold=1.0)
    wrapped = telemetry.wrap(habitat_pipeline, config=config)

    assert_same_prediction(habitat_pipeline.predict, wrapped.predict, habitat_frame)
    assert_same_prediction(
        habitat_pipeline.predict_proba, wrapped.predict_proba, habitat_frame
    )

    spans = telemetry.spans.get_finished_spans()
    assert len(spans) == 2
    assert spans[0].attributes[semconv.ML_INPUT_CATEGORICAL_NAMES] == ("habitat",)
    assert spans[0].attributes[semconv.ML_INPUT_CATEGORICAL_DISTINCT_COUNT] == (3,)
    assert any(
        event.name == semconv.ML_PREDICTION_LOW_CONFIDENCE for event in spans[1].events
    )
    assert [text for text in exported_texts(telemetry) if MARKER in text] == []
    assert [
        record.getMessage()
        for record in caplog.records
        if MARKER in record.getMessage()
    ] == []


def test_unknown_category_error_redacted(
    telemetry: Telemetry,
    habitat_frame: pd.DataFrame,
    iris: tuple[np.ndarray, np.ndarray],
) -> None:
    """An unknown-category error propagates, and the span omits the category."""
    encoder = ColumnTransformer(
        [("habitat", OneHotEncoder(handle_unknown="error"), ["habitat"])],
        remainder="passthrough",
    )
    model = make_pipeline(encoder, LogisticRegression(max_iter=1000))
    model.fit(
        habitat_frame[habitat_frame["habitat"] != MARKER],
        iris[1][habitat_frame["habitat"] != MARKER],
    )
    wrapped = telemetry.wrap(model)

    error = assert_same_error(model.predict, wrapped.predict, habitat_frame)

    assert MARKER in str(error)
    span = telemetry.only_span()
    assert_error_span(span, "ValueError")
    assert [text for text in error_texts(span) if MARKER in text] == []


# Large sparse batches.


def test_sparse_batch_not_densified(
    telemetry: Telemetry,
    sparse_batch: sp.csr_matrix,
    sparse_logistic: LogisticRegression,
) -> None:
    """A 100,000 x 1,000 CSR batch is summarised far below its dense 800 MB."""
    wrapped = telemetry.wrap(sparse_logistic)
    expected = sparse_logistic.predict_proba(sparse_batch)

    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = wrapped.predict_proba(sparse_batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    np.testing.assert_array_equal(result, expected)
    assert peak - before < 100 * 2**20
    span = telemetry.only_span()
    assert span.attributes[semconv.ML_INPUT_TYPE] == "sparse"
    assert span.attributes[semconv.ML_BATCH_SIZE] == 100_000
    assert span.attributes[semconv.ML_INPUT_FEATURE_COUNT] == 1_000


def test_sparse_batch_summary_matches_dense(
    telemetry: Telemetry,
    sparse_batch: sp.csr_matrix,
    sparse_logistic: LogisticRegression,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A large CSR batch's summaries equal the dense stats of its first 128 columns."""
    wrapped = telemetry.wrap(sparse_logistic)

    wrapped.predict(sparse_batch)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    dense = sparse_batch[:, :128].toarray()
    attributes = span.attributes
    np.testing.assert_allclose(
        attributes[semconv.ML_INPUT_FEATURE_MEAN], dense.mean(axis=0), rtol=1e-9
    )
    np.testing.assert_allclose(
        attributes[semconv.ML_INPUT_FEATURE_STD], dense.std(axis=0), rtol=1e-6
    )
    np.testing.assert_array_equal(
        attributes[semconv.ML_INPUT_FEATURE_MIN], dense.min(axis=0)
    )
    np.testing.assert_array_equal(
        attributes[semconv.ML_INPUT_FEATURE_MAX], dense.max(axis=0)
    )
    assert list(attributes[semconv.ML_INPUT_FEATURE_NULL_COUNT]) == [0] * 128


def test_sparse_timestamp_column_std(
    telemetry: Telemetry,
    cancer: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sparse column of epoch timestamps gets the dense standard deviation."""
    x, y = cancer
    model = DummyClassifier(strategy="prior").fit(x, y)
    rng = np.random.default_rng(5)
    one_hot = sp.csr_matrix(np.eye(4)[rng.integers(0, 4, 1_000)])
    seconds = 1.7e9 + rng.uniform(0.0, 60.0, (1_000, 1))
    batch = sp.hstack([one_hot, sp.csr_matrix(seconds)], format="csr")
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, batch)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    std = span.attributes[semconv.ML_INPUT_FEATURE_STD]
    np.testing.assert_allclose(std, batch.toarray().std(axis=0), rtol=1e-6)


def test_sparse_huge_values_finite(
    telemetry: Telemetry,
    cancer: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sparse values near 1e200 give finite summaries and no RuntimeWarning."""
    x, y = cancer
    model = DummyClassifier(strategy="prior").fit(x, y)
    batch = sp.csr_matrix(np.array([[1e200, 0.0], [0.0, -1e200], [3e200, 1.0]]))
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, batch)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    np.testing.assert_allclose(
        span.attributes[semconv.ML_INPUT_FEATURE_MEAN], [4e200 / 3, -1e200 / 3 + 1 / 3]
    )


# Empty batches.


def test_empty_batch_sklearn_error_unchanged(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    iris_forest: RandomForestClassifier,
) -> None:
    """A 0-row batch raises scikit-learn's own ValueError, and the span records it."""
    x, _ = iris
    wrapped = telemetry.wrap(iris_forest)

    error = assert_same_error(iris_forest.predict, wrapped.predict, x[:0])

    assert isinstance(error, ValueError)
    assert last_frame_file(error).is_relative_to(SKLEARN_DIRECTORY)
    assert_error_span(telemetry.only_span(), "ValueError")


def test_empty_array_accepted_by_model(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    iris_dummy: DummyClassifier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 0-row array the model accepts gives its result, batch size 0 and a reason."""
    x, _ = iris
    wrapped = telemetry.wrap(iris_dummy)

    result = assert_same_prediction(
        iris_dummy.predict_proba, wrapped.predict_proba, x[:0]
    )

    assert result.shape == (0, 3)
    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes[semconv.ML_BATCH_SIZE] == 0
    assert span.attributes.get(semconv.ML_INPUT_SUMMARY_SKIPPED)
    assert semconv.ML_INPUT_FEATURE_MEAN not in span.attributes


def test_empty_frame_accepted_by_model(
    telemetry: Telemetry,
    diabetes_dummy: DummyRegressor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 0-row frame the model accepts gives its result, batch size 0 and a reason."""
    frame = load_diabetes(as_frame=True).data.iloc[:0]
    wrapped = telemetry.wrap(diabetes_dummy)

    result = assert_same_prediction(diabetes_dummy.predict, wrapped.predict, frame)

    assert result.shape == (0,)
    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes[semconv.ML_BATCH_SIZE] == 0
    assert span.attributes.get(semconv.ML_INPUT_SUMMARY_SKIPPED)


# 1-D input to a model that needs 2-D.


def test_one_dimensional_input_error_unchanged(
    telemetry: Telemetry, cancer: tuple[np.ndarray, np.ndarray], cancer_logistic: Any
) -> None:
    """A 1-D row raises scikit-learn's own ValueError from inside scikit-learn."""
    x, _ = cancer
    wrapped = telemetry.wrap(cancer_logistic)

    error = assert_same_error(cancer_logistic.predict, wrapped.predict, x[0])

    assert isinstance(error, ValueError)
    assert "Expected 2D array" in str(error)
    assert last_frame_file(error).is_relative_to(SKLEARN_DIRECTORY)


def test_one_dimensional_input_span_error(
    telemetry: Telemetry, cancer: tuple[np.ndarray, np.ndarray], cancer_logistic: Any
) -> None:
    """A 1-D row leaves a span with status ERROR, error.type and an exception event."""
    x, _ = cancer
    wrapped = telemetry.wrap(cancer_logistic)

    raise_recorded(wrapped.predict, x[0])

    assert_error_span(telemetry.only_span(), "ValueError")


def test_one_dimensional_input_values_redacted(
    telemetry: Telemetry, cancer: tuple[np.ndarray, np.ndarray], cancer_logistic: Any
) -> None:
    """The span's copy of the 1-D row error omits the values the message quotes."""
    x, _ = cancer
    wrapped = telemetry.wrap(cancer_logistic)

    error = raise_recorded(wrapped.predict, x[0])

    values = printed_values(x[0])
    assert values[0] in str(error)
    texts = error_texts(telemetry.only_span())
    assert [value for value in values if any(value in text for text in texts)] == []


def test_flattened_batch_values_redacted(
    telemetry: Telemetry, cancer: tuple[np.ndarray, np.ndarray], cancer_logistic: Any
) -> None:
    """The span's copy of a flattened batch's 1-D error omits every quoted value."""
    x, _ = cancer
    flattened = x[:20].ravel()
    wrapped = telemetry.wrap(cancer_logistic)

    error = raise_recorded(wrapped.predict, flattened)

    values = printed_values(flattened)
    assert values[-1] in str(error)
    texts = error_texts(telemetry.only_span())
    assert [value for value in values if any(value in text for text in texts)] == []


# Ragged lists.


def test_ragged_list_reaches_model(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """A ragged list reaches the model as is, and the span gives a skip reason."""
    model = RowSumModel()
    wrapped = telemetry.wrap(model)
    ragged = [[1.0, 2.0], [3.0]]

    result = wrapped.predict(ragged)

    assert model.received[-1] is ragged
    assert ragged == [[1.0, 2.0], [3.0]]
    np.testing.assert_array_equal(result, [3.0, 3.0])
    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes.get(semconv.ML_INPUT_SUMMARY_SKIPPED)
    assert semconv.ML_INPUT_FEATURE_MEAN not in span.attributes


# 10,000 features.


def test_wide_input_capped_without_drops(
    telemetry: Telemetry,
    wide_cancer: tuple[np.ndarray, GaussianNB],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """10,000 features are capped at 128, marked truncated, and drop no attribute."""
    wide, model = wide_cancer
    batch = wide[:50]
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict_proba, wrapped.predict_proba, batch)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes[semconv.ML_INPUT_FEATURE_COUNT] == 10_000
    assert span.attributes[semconv.ML_INPUT_FEATURE_TRUNCATED] is True
    for key in SUMMARY_ARRAY_KEYS:
        assert len(span.attributes[key]) == 128, key
    np.testing.assert_allclose(
        span.attributes[semconv.ML_INPUT_FEATURE_MEAN],
        batch[:, :128].mean(axis=0),
        rtol=1e-12,
    )


# A model that raises.


def test_model_exception_same_object(telemetry: Telemetry) -> None:
    """The model's exception object itself propagates, with its raise frame last."""
    model = FailingModel()
    wrapped = telemetry.wrap(model)

    error = raise_recorded(wrapped.predict, [[1.0]])

    assert error is model.raised[-1]
    assert error.__cause__ is None
    assert last_frame_file(error) == Path(__file__).resolve()
    assert error.__traceback__ is not None


class ParseFailingModel:
    """A model that raises with a message naming values bare, as pandas does."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.raised: list[ValueError] = []

    def predict(self, data: Any) -> Any:
        error = ValueError(f"unable to parse: {self.message}")
        self.raised.append(error)
        raise error


def test_bare_special_values_redacted(telemetry: Telemetry) -> None:
    """Values with spaces and regex characters, named bare, leave the span."""
    values = ["a+b (c)*", "jane doe", "x.y@z.org", "[0-9]+", "ok"]
    frame = pd.DataFrame({"text": values, "number": [1.0, 2.0, 3.0, 4.0, 5.0]})
    model = ParseFailingModel(", ".join(values) + "; ok2 and looks ok")
    wrapped = telemetry.wrap(model)

    error = raise_recorded(wrapped.predict, frame)

    assert error is model.raised[-1]
    assert str(error) == f"unable to parse: {model.message}"
    texts = error_texts(telemetry.only_span())
    for value in values[:-1]:
        assert [text for text in texts if value in text] == []
    # "ok" is a value and is removed as a whole word, but "ok2" stays.
    assert "unable to parse: <redacted>, <redacted>, <redacted>" in texts[0]
    assert "; ok2 and looks <redacted>" in texts[0]


def test_long_error_many_values_fast(telemetry: Telemetry) -> None:
    """A long message and 50,000 distinct text values re-raise quickly."""
    frame = pd.DataFrame({"city": [f"city-{i} north" for i in range(50_000)]})
    named = " ".join(f"id{i}" for i in range(20_000)) + " city-7 north"
    model = ParseFailingModel(named)
    wrapped = telemetry.wrap(model)

    started = time.perf_counter()
    error = raise_recorded(wrapped.predict, frame)
    elapsed = time.perf_counter() - started

    assert error is model.raised[-1]
    # Measured on 2 shared cores: 0.065 s, where a substring search and a
    # regular expression per value took 2.0 s. The bound allows for load.
    assert elapsed < 0.6
    texts = error_texts(telemetry.only_span())
    assert [text for text in texts if "city-7 north" in text] == []


def test_model_exception_recorded_on_span(telemetry: Telemetry) -> None:
    """The model's exception sets status ERROR, error.type and an exception event."""
    wrapped = telemetry.wrap(FailingModel())
    error_type = f"{ModelFailure.__module__}.{ModelFailure.__qualname__}"

    raise_recorded(wrapped.predict, [[1.0]])

    span = telemetry.only_span()
    assert_error_span(span, error_type)
    exception = next(event for event in span.events if event.name == "exception")
    assert exception.attributes["exception.message"] == "weights file is corrupt"
    assert "weights file is corrupt" in span.status.description


def test_model_exception_duration_point(telemetry: Telemetry) -> None:
    """The model's exception adds one duration point with error.type."""
    wrapped = telemetry.wrap(FailingModel())
    error_type = f"{ModelFailure.__module__}.{ModelFailure.__qualname__}"

    raise_recorded(wrapped.predict, [[1.0]])

    points = telemetry.metric_points(semconv.ML_MODEL_PREDICTION_DURATION)
    failed = [
        point
        for point in points
        if point.attributes.get(semconv.ERROR_TYPE) == error_type
    ]
    assert len(failed) == 1
    assert failed[0].count == 1
    assert failed[0].attributes[semconv.ML_OPERATION_NAME] == "predict"


# Further hostile inputs.


def test_string_list_text_pipeline(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """A list of strings to a text pipeline predicts the same, with a skip reason."""
    descriptions = [
        loader().DESCR.splitlines()
        for loader in (load_iris, load_breast_cancer, load_diabetes)
    ]
    lines = [line for lines in descriptions for line in lines if line.strip()]
    labels = [
        index
        for index, lines in enumerate(descriptions)
        for line in lines
        if line.strip()
    ]
    model = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)).fit(
        lines, labels
    )
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, lines[::5])

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes[semconv.ML_BATCH_SIZE] == len(lines[::5])
    assert span.attributes.get(semconv.ML_INPUT_SUMMARY_SKIPPED)


def test_numeric_object_array(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    iris_forest: RandomForestClassifier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An object array of floats predicts the same and gets the numeric summary."""
    x, _ = iris
    batch = np.array(x.tolist(), dtype=object)
    wrapped = telemetry.wrap(iris_forest)

    assert_same_prediction(iris_forest.predict, wrapped.predict, batch)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    np.testing.assert_allclose(
        span.attributes[semconv.ML_INPUT_FEATURE_MEAN], x.mean(axis=0)
    )


def test_mixed_object_array(
    telemetry: Telemetry,
    habitat_frame: pd.DataFrame,
    iris: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An object array of floats and strings predicts the same, with a skip reason."""
    batch = habitat_frame.to_numpy(dtype=object)
    encoder = ColumnTransformer(
        [("habitat", OneHotEncoder(handle_unknown="ignore"), [4])],
        remainder="passthrough",
    )
    model = make_pipeline(encoder, LogisticRegression(max_iter=1000)).fit(
        batch, iris[1]
    )
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, batch)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes.get(semconv.ML_INPUT_SUMMARY_SKIPPED)
    assert [text for text in exported_texts(telemetry) if MARKER in text] == []


def test_mixed_dtype_frame(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A frame of float, int, bool, string, category and datetime predicts the same."""
    x, y = iris
    rows = len(x)
    frame = pd.DataFrame(
        {
            "sepal_length": x[:, 0],
            "petal_tenths": np.rint(x[:, 2] * 10).astype(np.int64),
            "wide_petal": x[:, 3] > 1.0,
            "habitat_text": np.array(["meadow", "riverbank", "hillside"], dtype=object)[
                np.arange(rows) % 3
            ],
            "habitat_code": pd.Categorical(np.array(["a", "b"])[np.arange(rows) % 2]),
            "measured_at": pd.date_range("2024-01-01", periods=rows, freq="h"),
        }
    )
    encoder = ColumnTransformer(
        [
            (
                "text",
                OneHotEncoder(handle_unknown="ignore"),
                ["habitat_text", "habitat_code"],
            ),
            ("numbers", "passthrough", ["sepal_length", "petal_tenths", "wide_petal"]),
        ],
        remainder="drop",
    )
    model = make_pipeline(encoder, LogisticRegression(max_iter=1000)).fit(frame, y)
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, frame)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes[semconv.ML_INPUT_FEATURE_NAMES] == (
        "sepal_length",
        "petal_tenths",
        "wide_petal",
    )
    assert span.attributes[semconv.ML_INPUT_CATEGORICAL_NAMES] == (
        "habitat_text",
        "habitat_code",
    )
    assert span.attributes[semconv.ML_INPUT_CATEGORICAL_DISTINCT_COUNT] == (3, 2)


def test_list_valued_column_frame(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A frame with a column of lists, which the pipeline drops, keeps its summary."""
    x, y = iris
    frame = pd.DataFrame(
        x, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"]
    )
    frame["tags"] = [
        ["field", "2024"] if index % 2 else ["lab"] for index in range(len(frame))
    ]
    selector = ColumnTransformer(
        [
            (
                "numbers",
                "passthrough",
                ["sepal_length", "sepal_width", "petal_length", "petal_width"],
            )
        ],
        remainder="drop",
    )
    model = make_pipeline(selector, LogisticRegression(max_iter=1000)).fit(frame, y)
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, frame)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes[semconv.ML_BATCH_SIZE] == len(frame)
    assert span.attributes.get(semconv.ML_INPUT_FEATURE_COUNT) == 4


def test_bool_columns_frame(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bool columns predict the same, and each mean is the share of True values."""
    x, y = iris
    frame = pd.DataFrame(
        x > np.median(x, axis=0),
        columns=["long_sepal", "wide_sepal", "long_petal", "wide_petal"],
    )
    model = DecisionTreeClassifier(random_state=0).fit(frame, y)
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, frame)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    np.testing.assert_allclose(
        span.attributes[semconv.ML_INPUT_FEATURE_MEAN], frame.mean().to_numpy()
    )
    assert list(span.attributes[semconv.ML_INPUT_FEATURE_NULL_COUNT]) == [0, 0, 0, 0]


def test_nullable_int64_with_na(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A nullable Int64 frame predicts the same, and pd.NA counts as null."""
    x, y = iris
    frame = pd.DataFrame(
        np.rint(x * 10).astype(int), columns=["a", "b", "c", "d"]
    ).astype("Int64")
    frame.iloc[::7, 1] = pd.NA
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(frame, y)
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, frame)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert (
        list(span.attributes[semconv.ML_INPUT_FEATURE_NULL_COUNT])
        == frame.isna().sum().tolist()
    )
    assert span.attributes[semconv.ML_INPUT_FEATURE_MEAN][1] == pytest.approx(
        frame["b"].mean()
    )


def test_infinite_values_sklearn_error(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    iris_forest: RandomForestClassifier,
) -> None:
    """An infinite value raises scikit-learn's own ValueError through the proxy."""
    x, _ = iris
    batch = x[:10].copy()
    batch[2, 1] = np.inf
    wrapped = telemetry.wrap(iris_forest)

    error = assert_same_error(iris_forest.predict, wrapped.predict, batch)

    assert isinstance(error, ValueError)
    assert_error_span(telemetry.only_span(), "ValueError")


def test_infinite_values_counted_null(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    iris_dummy: DummyClassifier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Infinite values a model accepts count as nulls and leave every float finite."""
    x, _ = iris
    batch = x[:10].copy()
    batch[2, 1] = np.inf
    batch[:, 3] = -np.inf
    wrapped = telemetry.wrap(iris_dummy)

    assert_same_prediction(iris_dummy.predict_proba, wrapped.predict_proba, batch)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert list(span.attributes[semconv.ML_INPUT_FEATURE_NULL_COUNT]) == [0, 1, 0, 10]


def test_series_input(
    telemetry: Telemetry,
    diabetes_dummy: DummyRegressor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A pandas Series predicts the same and gets a summary of its values."""
    series = load_diabetes(as_frame=True).data["bmi"]
    wrapped = telemetry.wrap(diabetes_dummy)

    assert_same_prediction(diabetes_dummy.predict, wrapped.predict, series)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes[semconv.ML_BATCH_SIZE] == len(series)
    assert span.attributes[semconv.ML_INPUT_FEATURE_MEAN] == (
        pytest.approx(series.mean()),
    )


def test_three_dimensional_array(
    telemetry: Telemetry, iris_dummy: DummyClassifier, caplog: pytest.LogCaptureFixture
) -> None:
    """A 3-D array predicts the same, with a reason for the missing summary."""
    images = np.random.default_rng(2).random((6, 8, 8))
    wrapped = telemetry.wrap(iris_dummy)

    assert_same_prediction(iris_dummy.predict_proba, wrapped.predict_proba, images)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes[semconv.ML_BATCH_SIZE] == 6
    assert span.attributes.get(semconv.ML_INPUT_SUMMARY_SKIPPED)


def test_dict_input_reaches_model(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """A dict of columns reaches the model as is, and the span gives a skip reason."""
    model = ColumnDictModel()
    columns = load_diabetes(as_frame=True).data[["age", "bmi"]].to_dict("list")
    expected = ColumnDictModel().predict(columns)
    wrapped = telemetry.wrap(model)

    result = wrapped.predict(columns)

    assert model.received[-1] is columns
    np.testing.assert_array_equal(result, expected)
    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes.get(semconv.ML_INPUT_SUMMARY_SKIPPED)


def test_list_of_dicts_vectorizer(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A list of feature dicts to a DictVectorizer pipeline predicts the same."""
    x, y = iris
    records = [
        dict(zip(["sepal_length", "sepal_width", "petal_length", "petal_width"], row))
        for row in x.tolist()
    ]
    model = make_pipeline(DictVectorizer(), LogisticRegression(max_iter=1000)).fit(
        records, y
    )
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, records)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes[semconv.ML_BATCH_SIZE] == len(records)
    assert span.attributes.get(semconv.ML_INPUT_SUMMARY_SKIPPED)


def test_none_input_sklearn_error(
    telemetry: Telemetry, iris_forest: RandomForestClassifier
) -> None:
    """None raises scikit-learn's own error, and the span records it."""
    wrapped = telemetry.wrap(iris_forest)

    error = assert_same_error(iris_forest.predict, wrapped.predict, None)

    assert_error_span(telemetry.only_span(), type(error).__qualname__)


def test_none_input_accepted_by_model(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """None to a model that accepts it predicts the same, with a skip reason."""
    model = DefaultingModel(fallback=0.25)
    wrapped = telemetry.wrap(model)

    assert_same_prediction(model.predict, wrapped.predict, None)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes.get(semconv.ML_INPUT_SUMMARY_SKIPPED)


def test_generator_reaches_model_unconsumed(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A generator reaches the model as the same object with every row still in it."""
    x, _ = iris
    model = RowSumModel()
    expected = RowSumModel().predict(row for row in x)
    rows = (row for row in x)
    wrapped = telemetry.wrap(model)

    result = wrapped.predict(rows)

    assert model.received[-1] is rows
    assert len(result) == len(x)
    np.testing.assert_array_equal(result, expected)
    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes.get(semconv.ML_INPUT_SUMMARY_SKIPPED)


def test_huge_float_values_finite(
    telemetry: Telemetry,
    diabetes_dummy: DummyRegressor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Values of 1e308 give finite summaries and no RuntimeWarning."""
    batch = np.array([[1e308, -1e308], [1e308, 1.0], [1e308, -1e308]])
    wrapped = telemetry.wrap(diabetes_dummy)

    assert_same_prediction(diabetes_dummy.predict, wrapped.predict, batch)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes[semconv.ML_INPUT_FEATURE_MAX] == (1e308, 1.0)
    assert span.attributes[semconv.ML_INPUT_FEATURE_MEAN][0] == pytest.approx(1e308)


def test_tiny_float_values(
    telemetry: Telemetry,
    diabetes_dummy: DummyRegressor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Subnormal values down to 5e-324 keep their exact minimum and maximum."""
    batch = np.array([[5e-324, -5e-324], [1e-310, 0.0], [5e-324, 5e-324]])
    wrapped = telemetry.wrap(diabetes_dummy)

    assert_same_prediction(diabetes_dummy.predict, wrapped.predict, batch)

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes[semconv.ML_INPUT_FEATURE_MIN] == (5e-324, -5e-324)
    assert span.attributes[semconv.ML_INPUT_FEATURE_MAX] == (1e-310, 5e-324)


@pytest.mark.skipif(
    np.finfo(np.longdouble).max <= np.finfo(np.float64).max,
    reason="long double is no wider than float64 on this platform",
)
def test_long_double_beyond_float64(
    telemetry: Telemetry, iris_dummy: DummyClassifier, caplog: pytest.LogCaptureFixture
) -> None:
    """Long-double values beyond the float64 range raise no RuntimeWarning."""
    batch = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.longdouble)
    batch[0, 0] = np.longdouble(1e300) * np.longdouble(1e300)
    wrapped = telemetry.wrap(iris_dummy)

    assert_same_prediction(iris_dummy.predict_proba, wrapped.predict_proba, batch)

    assert_clean_span(telemetry.only_span(), caplog)


# The proxy's parity with the model.


def test_proxy_isinstance_parity(telemetry: Telemetry) -> None:
    """A LinearRegression proxy passes the model's isinstance checks."""
    model = LinearRegression().fit(*load_diabetes(return_X_y=True))
    wrapped = telemetry.wrap(model)

    assert isinstance(wrapped, LinearRegression)
    assert isinstance(wrapped, RegressorMixin)
    assert isinstance(wrapped, BaseEstimator)
    assert is_regressor(wrapped)


def test_proxy_hasattr_parity_regressor(telemetry: Telemetry) -> None:
    """The proxy of a LinearRegression has exactly the model's prediction methods."""
    model = LinearRegression().fit(*load_diabetes(return_X_y=True))
    wrapped = telemetry.wrap(model)

    for name in (
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
        "coef_",
        "score",
    ):
        assert hasattr(wrapped, name) == hasattr(model, name), name


def test_proxy_hasattr_parity_svc(
    telemetry: Telemetry, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    """An SVC proxy without probability estimates lacks predict_proba, like the SVC."""
    model = SVC().fit(*iris)
    wrapped = telemetry.wrap(model)

    for name in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        assert hasattr(wrapped, name) == hasattr(model, name), name


def test_proxy_container_protocol_parity(telemetry: Telemetry) -> None:
    """A LinearRegression proxy lacks __len__, __iter__, __getitem__, like the model."""
    model = LinearRegression().fit(*load_diabetes(return_X_y=True))
    wrapped = telemetry.wrap(model)

    for name in ("__len__", "__iter__", "__getitem__"):
        assert hasattr(wrapped, name) == hasattr(model, name), name
    assert isinstance(wrapped, collections.abc.Iterable) == isinstance(
        model, collections.abc.Iterable
    )


def test_proxy_truthiness(telemetry: Telemetry) -> None:
    """A LinearRegression proxy is truthy like the model, not raising TypeError."""
    model = LinearRegression().fit(*load_diabetes(return_X_y=True))
    wrapped = telemetry.wrap(model)

    assert bool(model) is True
    assert bool(wrapped) is True


def test_proxy_pickle_round_trip(telemetry: Telemetry) -> None:
    """Pickling the proxy gives a bare model that predicts the same."""
    x, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(x, y)
    wrapped = telemetry.wrap(model)

    restored = pickle.loads(pickle.dumps(wrapped))

    assert type(restored) is LinearRegression
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))


def test_proxy_clone_unfitted(telemetry: Telemetry) -> None:
    """scikit-learn's clone of the proxy is an unfitted model with its parameters."""
    model = LinearRegression(fit_intercept=False).fit(*load_diabetes(return_X_y=True))
    wrapped = telemetry.wrap(model)

    cloned = clone(wrapped)

    assert type(cloned) is LinearRegression
    assert not hasattr(cloned, "coef_")
    assert cloned.get_params() == model.get_params()


def test_proxy_deepcopy_predicts_same(telemetry: Telemetry) -> None:
    """A deep copy of the proxy predicts the same and traces each call once."""
    x, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(x, y)
    wrapped = telemetry.wrap(model)

    duplicate = copy.deepcopy(wrapped)

    np.testing.assert_array_equal(duplicate.predict(x), model.predict(x))
    assert len(telemetry.spans.get_finished_spans()) == 1


def test_wrap_twice_single_span(telemetry: Telemetry) -> None:
    """Wrapping a proxy again warns, returns it, and traces each call once."""
    x, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(x, y)
    wrapped = telemetry.wrap(model)

    with pytest.warns(UserWarning, match="already wrapped"):
        again = telemetry.wrap(wrapped)
    again.predict(x)

    assert again is wrapped
    assert len(telemetry.spans.get_finished_spans()) == 1


def test_unwrap_returns_original(telemetry: Telemetry) -> None:
    """unwrap_model returns the wrapped object itself, and a bare model unchanged."""
    model = LinearRegression().fit(*load_diabetes(return_X_y=True))
    wrapped = telemetry.wrap(model)

    assert unwrap_model(wrapped) is model
    assert unwrap_model(model) is model


def test_keyword_input_summarised(
    telemetry: Telemetry,
    iris: tuple[np.ndarray, np.ndarray],
    iris_forest: RandomForestClassifier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Input passed as the keyword X is summarised like a positional input."""
    x, _ = iris
    wrapped = telemetry.wrap(iris_forest)

    np.testing.assert_array_equal(wrapped.predict(X=x), iris_forest.predict(X=x))

    span = telemetry.only_span()
    assert_clean_span(span, caplog)
    assert span.attributes[semconv.ML_BATCH_SIZE] == len(x)
    assert span.attributes[semconv.ML_INPUT_FEATURE_COUNT] == 4
    assert re.fullmatch(r"[0-9a-f]{32}", span.attributes[semconv.ML_PREDICTION_ID])


@pytest.mark.parametrize(
    ("library", "option"),
    [
        ("lightgbm", "raw_score"),
        ("lightgbm", "pred_leaf"),
        ("lightgbm", "pred_contrib"),
        ("xgboost", "output_margin"),
    ],
)
def test_classifier_scores_not_labels(
    telemetry: Telemetry,
    caplog: pytest.LogCaptureFixture,
    library: str,
    option: str,
) -> None:
    """Scores from a classifier's predict are summarised as values, not labels."""
    import lightgbm
    import xgboost

    x, y = load_breast_cancer(return_X_y=True)
    model: Any
    if library == "lightgbm":
        model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
    else:
        model = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)
    # The baseline's label profile turns scores read as labels into a
    # prediction drift event once a window of 200 rows closes.
    baseline = Baseline.fit(x, predictions=model.predict(x))
    config = MonitorConfig(drift_window_rows=200, drift_min_rows=200)
    wrapped = telemetry.wrap(model, baseline=baseline, config=config)

    scores = wrapped.predict(x, **{option: True})

    np.testing.assert_array_equal(scores, model.predict(x, **{option: True}))
    span = telemetry.only_span()
    attributes = dict(span.attributes or {})
    assert semconv.ML_OUTPUT_CLASSES not in attributes
    assert semconv.ML_OUTPUT_MEAN in attributes
    assert [event.name for event in span.events] == []
    assert telemetry_warnings(caplog) == []
