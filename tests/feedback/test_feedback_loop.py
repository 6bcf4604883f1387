"""record_feedback, row ids and the background writer, with real SQLite files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from otel_mlmon import (
    Baseline,
    ConfigError,
    MonitorConfig,
    last_prediction_id,
    last_prediction_ids,
    record_feedback,
    semconv,
    wrap_model,
)
from otel_mlmon.feedback import FeedbackStoreError, LabelStatus, PredictionStore
from otel_mlmon.feedback._monitor import (
    FeedbackRecorder,
    PendingCall,
    active_recorders,
    close_recorders,
)
from otel_mlmon.instrumentation.wrap import monitor_of


@pytest.fixture(autouse=True)
def _close_recorders() -> Iterator[None]:
    close_recorders()
    yield
    close_recorders()


@pytest.fixture(name="providers")
def fixture_providers(tracer_provider: Any, meter_provider: Any) -> dict[str, Any]:
    return {"tracer_provider": tracer_provider, "meter_provider": meter_provider}


def test_row_ids_of_last_call(iris_model: Any, store_path: Path, providers: Any) -> None:
    """last_prediction_ids lists {id}-{i} for each row of the last call."""
    model, x, _ = iris_model
    wrapped = wrap_model(model, name="iris", feedback_store=store_path, **providers)
    wrapped.predict(x[:4])
    call_id = last_prediction_id()
    assert last_prediction_ids() == [f"{call_id}-{i}" for i in range(4)]
    wrapped.predict(x[:1])
    assert last_prediction_ids() == [f"{last_prediction_id()}-0"]


def test_row_ids_without_store(iris_model: Any, providers: Any) -> None:
    """Row ids exist with no store configured, and nothing is queued."""
    model, x, _ = iris_model
    wrapped = wrap_model(model, name="iris", config=MonitorConfig(), **providers)
    wrapped.predict_proba(x[:2])
    assert len(last_prediction_ids()) == 2
    assert monitor_of(wrapped).feedback is None
    assert active_recorders() == []


def test_label_right_after_prediction(
    iris_model: Any, store_path: Path, providers: Any
) -> None:
    """A label sent at once finds its prediction: labels flush the queue."""
    model, x, y = iris_model
    wrapped = wrap_model(model, name="iris", feedback_store=store_path, **providers)
    predicted = wrapped.predict(x[100:101])
    outcome = record_feedback(last_prediction_ids()[0], int(y[100]))
    assert outcome.status is LabelStatus.MATCHED
    assert outcome.predicted == int(predicted[0])
    assert outcome.actual == int(y[100])


def test_background_writer_stores_rows(
    iris_model: Any, store_path: Path, providers: Any
) -> None:
    """Queued rows reach the file without a label or an explicit flush."""
    model, x, _ = iris_model
    wrapped = wrap_model(model, name="iris", feedback_store=store_path, **providers)
    wrapped.predict(x[:7])
    deadline = time.monotonic() + 10
    with PredictionStore(store_path) as store:
        while store.counts().predictions < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.counts().predictions == 7


def test_regressor_error_gauges(
    store_path: Path, providers: Any, metric_points: Any
) -> None:
    """Labels of a regressor give MAE and RMSE over the window."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    model = Ridge().fit(x, y)
    wrapped = wrap_model(model, name="diabetes", feedback_store=store_path, **providers)
    predicted = wrapped.predict(x[:20])
    for prediction_id, actual in zip(last_prediction_ids(), y[:20]):
        assert record_feedback(prediction_id, float(actual)).status is LabelStatus.MATCHED
    error = predicted - y[:20]
    (mae,) = metric_points(semconv.ML_MODEL_MAE)
    (rmse,) = metric_points(semconv.ML_MODEL_RMSE)
    assert mae.value == pytest.approx(np.mean(np.abs(error)))
    assert rmse.value == pytest.approx(np.sqrt(np.mean(error**2)))
    assert metric_points(semconv.ML_MODEL_ACCURACY) == []


def test_repeated_label_counts_once(
    iris_model: Any, store_path: Path, providers: Any, metric_points: Any
) -> None:
    """A corrected label replaces the first one in the accuracy window."""
    model, x, y = iris_model
    wrapped = wrap_model(model, name="iris", feedback_store=store_path, **providers)
    predicted = wrapped.predict(x[:2])
    first, second = last_prediction_ids()
    wrong = (int(predicted[0]) + 1) % 3
    record_feedback(first, wrong)
    record_feedback(second, int(predicted[1]))
    (accuracy,) = metric_points(semconv.ML_MODEL_ACCURACY)
    assert accuracy.value == pytest.approx(0.5)
    outcome = record_feedback(first, int(predicted[0]))
    assert outcome.status is LabelStatus.MATCHED
    (accuracy,) = metric_points(semconv.ML_MODEL_ACCURACY)
    assert accuracy.value == pytest.approx(1.0)


def test_regressor_rejects_string_label(
    store_path: Path, providers: Any, metric_points: Any
) -> None:
    """A string label for a regressor raises and is counted as invalid."""
    from otel_mlmon.feedback import InvalidLabelError
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    wrapped = wrap_model(
        Ridge().fit(x, y), name="diabetes", feedback_store=store_path, **providers
    )
    wrapped.predict(x[:1])
    with pytest.raises(InvalidLabelError, match="must be a number"):
        record_feedback(last_prediction_ids()[0], "high")
    (labels,) = metric_points(semconv.ML_FEEDBACK_LABELS)
    assert labels.attributes[semconv.ML_FEEDBACK_OUTCOME] == "invalid"
    assert labels.value == 1


def test_window_survives_restart(
    iris_model: Any, store_path: Path, providers: Any, metric_points: Any
) -> None:
    """A new process's window starts from the labels already stored."""
    model, x, y = iris_model
    wrapped = wrap_model(model, name="iris", version="5", feedback_store=store_path, **providers)
    wrapped.predict(x[:10])
    for prediction_id in last_prediction_ids():
        record_feedback(prediction_id, 2)
    close_recorders()
    wrap_model(model, name="iris", version="5", feedback_store=store_path, **providers)
    recorder = active_recorders()[0]
    quality = recorder.quality("iris", "5", "classification")
    assert quality.count == 10
    assert quality.accuracy == pytest.approx(0.0)


def test_no_store_configured_raises() -> None:
    """record_feedback without any store says how to configure one."""
    with pytest.raises(FeedbackStoreError, match="OTEL_MLMON_FEEDBACK_DB"):
        record_feedback("abc-0", 1)


def test_store_from_environment(
    iris_model: Any, store_path: Path, providers: Any, monkeypatch: Any
) -> None:
    """OTEL_MLMON_FEEDBACK_DB turns the store on for wrap_model."""
    monkeypatch.setenv("OTEL_MLMON_FEEDBACK_DB", str(store_path))
    monkeypatch.setenv("OTEL_MLMON_FEEDBACK_WINDOW_LABELS", "50")
    model, x, _ = iris_model
    wrapped = wrap_model(model, name="iris", **providers)
    assert monitor_of(wrapped).config.feedback_window_labels == 50
    wrapped.predict(x[:2])
    assert record_feedback(last_prediction_ids()[1], 0).status is LabelStatus.MATCHED


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OTEL_MLMON_FEEDBACK_WINDOW_LABELS", "0", "from 1 to 1000000"),
        ("OTEL_MLMON_FEEDBACK_WINDOW_LABELS", "many", "from 1 to 1000000"),
        ("OTEL_MLMON_REVIEW_DRIFT", "sometimes", "true or false"),
        ("OTEL_MLMON_FEEDBACK_DB", "  ", "path of a SQLite file"),
    ],
)
def test_invalid_variables(variable: str, value: str, message: str) -> None:
    """Invalid feedback variables raise ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=variable) as raised:
        MonitorConfig.from_env({variable: value})
    assert message in str(raised.value)


def _call(prediction_id: str, rows: int) -> PendingCall:
    return PendingCall(
        prediction_id=prediction_id,
        model_name="m",
        model_version="1",
        model_kind="classification",
        created_at=time.time(),
        predicted=[1] * rows,
        confidence=[0.9] * rows,
        trace_id=None,
        span_id=None,
    )


def test_full_queue_drops_and_counts(store_path: Path) -> None:
    """Calls beyond the queue's row limit are dropped and counted."""
    recorder = FeedbackRecorder(
        PredictionStore(store_path), flush_interval_s=60.0, max_pending_rows=5
    )
    recorder.submit(_call("a", 3))
    recorder.submit(_call("b", 3))
    assert recorder.pending_rows == 3
    assert recorder.dropped_rows == 3
    recorder.close()
    with PredictionStore(store_path) as store:
        assert store.counts().predictions == 3


def test_invalid_row_spares_batch(store_path: Path) -> None:
    """An output the store rejects drops only its own call."""
    recorder = FeedbackRecorder(PredictionStore(store_path), flush_interval_s=60.0)
    bad = _call("bad", 1)
    bad.predicted = [object()]
    recorder.submit(_call("good", 2))
    recorder.submit(bad)
    recorder.close()
    assert recorder.dropped_rows == 1
    with PredictionStore(store_path) as store:
        assert store.counts().predictions == 2


def test_drift_rows_queued_for_review(
    store_path: Path, providers: Any, log_exporter: Any
) -> None:
    """With review_drift on, rows predicted during drift are queued."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    x, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(x, y)
    config = MonitorConfig(
        drift_window_rows=100,
        drift_min_rows=100,
        review_drift=True,
        low_confidence_threshold=0.0,
        max_flagged_rows=3,
        capture_inputs=True,
    )
    wrapped = wrap_model(
        model,
        name="cancer",
        baseline=Baseline.fit(x, bins=5),
        config=config,
        feedback_store=store_path,
        **providers,
    )
    wrapped.predict(x[:50])
    before = last_prediction_id()
    # This call closes the first window, finds drift and is itself queued.
    wrapped.predict(x[50:150] * 3.0)
    wrapped.predict(x[150:160] * 3.0)
    active_recorders()[0].flush()
    with PredictionStore(store_path) as store:
        items = store.review_list()
    assert [item.reason.value for item in items] == ["drift"] * 6
    calls = {item.prediction_id.rsplit("-", 1)[0] for item in items}
    assert len(calls) == 2
    assert before not in calls
    rows = {item.prediction_id.rsplit("-", 1)[1] for item in items}
    assert rows == {"0", "1", "2"}
    assert all(len(item.input_row) == 30 for item in items)
    logged = {
        record.log_record.attributes[semconv.ML_PREDICTION_ID]: record.log_record
        for record in log_exporter.get_finished_logs()
        if record.log_record.event_name == semconv.ML_PREDICTION_REVIEW
    }
    assert set(logged) == {item.prediction_id for item in items}
    for item in items:
        assert format(logged[item.prediction_id].trace_id, "032x") == item.trace_id
        assert logged[item.prediction_id].attributes[semconv.ML_REVIEW_REASON] == "drift"
