"""wrap_model on real scikit-learn models: spans, metrics, flags, errors."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from otel_mlmon import (
    Baseline,
    ConfigError,
    MonitorConfig,
    last_prediction_id,
    semconv,
    unwrap_model,
    wrap_model,
)


@pytest.fixture(name="wrap")
def fixture_wrap(tracer_provider: Any, meter_provider: Any) -> Any:
    def wrap(model: Any, **kwargs: Any) -> Any:
        return wrap_model(
            model,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            **kwargs,
        )

    return wrap


def only_span(exporter: Any) -> Any:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    return spans[0]


class TestProxy:
    def test_isinstance_and_class(self, wrap: Any, iris_model: Any) -> None:
        """The proxy passes isinstance checks for the model's class."""
        model, _, _ = iris_model
        wrapped = wrap(model)
        assert isinstance(wrapped, RandomForestClassifier)
        assert wrapped.__class__ is RandomForestClassifier
        assert unwrap_model(wrapped) is model

    def test_hasattr_matches_model(self, wrap: Any) -> None:
        """A method the model lacks is missing on the proxy too."""
        x, y = load_diabetes(return_X_y=True)
        svc = SVC().fit(x[:100], (y[:100] > 140))
        wrapped = wrap(svc)
        assert not hasattr(wrapped, "predict_proba")
        assert hasattr(wrapped, "decision_function")
        regressor = wrap(LinearRegression().fit(x, y))
        assert not hasattr(regressor, "predict_proba")
        assert hasattr(regressor, "coef_")

    def test_attributes_pass_through(self, wrap: Any, iris_model: Any) -> None:
        """Reads and writes of other attributes reach the model."""
        model, _, _ = iris_model
        wrapped = wrap(copy.deepcopy(model))
        assert wrapped.n_estimators == 25
        wrapped.n_jobs = 2
        assert unwrap_model(wrapped).n_jobs == 2
        assert len(wrapped) == 25
        assert wrapped[0] is unwrap_model(wrapped).estimators_[0]

    def test_pickle_stores_bare_model(self, wrap: Any, iris_model: Any) -> None:
        """Pickling the proxy stores the model itself, which predicts alike."""
        model, x, _ = iris_model
        restored = pickle.loads(pickle.dumps(wrap(model)))
        assert type(restored) is RandomForestClassifier
        np.testing.assert_array_equal(restored.predict(x), model.predict(x))

    def test_clone_gives_unfitted_estimator(
        self, wrap: Any, iris_model: Any
    ) -> None:
        """sklearn's clone returns an unfitted bare estimator."""
        model, _, _ = iris_model
        cloned = clone(wrap(model))
        assert type(cloned) is RandomForestClassifier
        assert not hasattr(cloned, "estimators_")
        assert cloned.get_params() == model.get_params()

    def test_wrap_twice_warns_once_traced(
        self, wrap: Any, iris_model: Any, span_exporter: Any
    ) -> None:
        """Wrapping a proxy warns, returns it, and gives one span a call."""
        model, x, _ = iris_model
        wrapped = wrap(model)
        with pytest.warns(UserWarning, match="already wrapped"):
            again = wrap(wrapped)
        assert again is wrapped
        again.predict(x[:3])
        assert len(span_exporter.get_finished_spans()) == 1

    def test_model_without_methods_rejected(self, wrap: Any) -> None:
        """An object with no prediction method gets a clear TypeError."""
        with pytest.raises(TypeError, match="none of the methods"):
            wrap(object())

    def test_deepcopy_stays_wrapped(
        self, wrap: Any, iris_model: Any, span_exporter: Any
    ) -> None:
        """copy.deepcopy of the proxy is a traced copy of the model."""
        model, x, _ = iris_model
        duplicate = copy.deepcopy(wrap(model))
        assert unwrap_model(duplicate) is not model
        duplicate.predict(x[:2])
        assert len(span_exporter.get_finished_spans()) == 1


class TestSpan:
    def test_predict_proba_span(
        self, wrap: Any, iris_model: Any, span_exporter: Any
    ) -> None:
        """predict_proba gives a span with identity, summaries, confidence."""
        model, x, _ = iris_model
        wrapped = wrap(model, name="iris", version="3")
        result = wrapped.predict_proba(x[:20])
        np.testing.assert_array_equal(result, model.predict_proba(x[:20]))
        span = only_span(span_exporter)
        attributes = span.attributes
        assert span.name == "predict_proba iris"
        assert span.kind.name == "INTERNAL"
        assert attributes[semconv.ML_MODEL_NAME] == "iris"
        assert attributes[semconv.ML_MODEL_VERSION] == "3"
        assert attributes[semconv.ML_MODEL_FRAMEWORK] == "sklearn"
        assert attributes[semconv.ML_OPERATION_NAME] == "predict_proba"
        assert attributes[semconv.ML_BATCH_SIZE] == 20
        assert len(attributes[semconv.ML_PREDICTION_ID]) == 32
        assert attributes[semconv.ML_INPUT_FEATURE_NAMES] == (
            "x0", "x1", "x2", "x3",
        )
        np.testing.assert_allclose(
            attributes[semconv.ML_INPUT_FEATURE_MEAN], x[:20].mean(axis=0)
        )
        np.testing.assert_allclose(
            attributes[semconv.ML_INPUT_FEATURE_STD], x[:20].std(axis=0)
        )
        assert attributes[semconv.ML_INPUT_FEATURE_MIN] == tuple(
            x[:20].min(axis=0)
        )
        confidence = result.max(axis=1)
        assert attributes[semconv.ML_PREDICTION_CONFIDENCE_MIN] == pytest.approx(
            confidence.min()
        )
        assert attributes[
            semconv.ML_PREDICTION_CONFIDENCE_MEAN
        ] == pytest.approx(confidence.mean())
        assert span.dropped_attributes == 0

    def test_predict_has_no_confidence(
        self, wrap: Any, iris_model: Any, span_exporter: Any
    ) -> None:
        """predict gives labels and the reason there is no confidence."""
        model, x, _ = iris_model
        wrap(model).predict(x[:50])
        attributes = only_span(span_exporter).attributes
        assert "predict_proba" in attributes[
            semconv.ML_PREDICTION_CONFIDENCE_SKIPPED
        ]
        assert semconv.ML_PREDICTION_CONFIDENCE_MIN not in attributes
        counts = dict(
            zip(
                attributes[semconv.ML_OUTPUT_CLASSES],
                attributes[semconv.ML_OUTPUT_CLASS_COUNTS],
            )
        )
        assert sum(counts.values()) == 50

    def test_predict_does_not_call_proba(
        self, wrap: Any, span_exporter: Any
    ) -> None:
        """predict makes exactly one model call, no hidden predict_proba."""
        calls: list[str] = []

        class Counting(LogisticRegression):
            def predict_proba(self, X: Any) -> Any:
                calls.append("predict_proba")
                return super().predict_proba(X)

        x, y = load_breast_cancer(return_X_y=True)
        model = Counting(max_iter=5000).fit(x, y)
        calls.clear()
        wrap(model).predict(x[:5])
        assert calls == []

    def test_regressor_output_summary(
        self, wrap: Any, span_exporter: Any
    ) -> None:
        """A regressor's span summarises its predicted values."""
        x, y = load_diabetes(return_X_y=True)
        model = LinearRegression().fit(x, y)
        predicted = wrap(model).predict(x[:40])
        attributes = only_span(span_exporter).attributes
        assert attributes[semconv.ML_OUTPUT_MEAN] == pytest.approx(
            predicted.mean()
        )
        assert attributes[semconv.ML_OUTPUT_MIN] == pytest.approx(
            predicted.min()
        )
        assert attributes[semconv.ML_OUTPUT_MAX] == pytest.approx(
            predicted.max()
        )

    def test_pipeline_one_span(self, wrap: Any, span_exporter: Any) -> None:
        """A Pipeline gives one span for the call, not one per step."""
        x, y = load_breast_cancer(return_X_y=True)
        pipeline = make_pipeline(StandardScaler(), LogisticRegression())
        wrap(pipeline.fit(x, y)).predict_log_proba(x[:10])
        span = only_span(span_exporter)
        expected = np.exp(pipeline.predict_log_proba(x[:10]).max(axis=1))
        assert span.attributes[
            semconv.ML_PREDICTION_CONFIDENCE_MIN
        ] == pytest.approx(expected.min())

    def test_pandas_feature_names(
        self, wrap: Any, span_exporter: Any
    ) -> None:
        """DataFrame columns become feature names."""
        data = load_breast_cancer(as_frame=True)
        frame = data.data.iloc[:, :4].copy()
        model = LogisticRegression(max_iter=5000).fit(frame, data.target)
        wrapped = wrap(model)
        wrapped.predict_proba(frame.iloc[:8])
        attributes = only_span(span_exporter).attributes
        assert attributes[semconv.ML_INPUT_FEATURE_NAMES] == tuple(
            frame.columns
        )
        assert attributes[semconv.ML_INPUT_TYPE] == "pandas"

    def test_min_summary_rows_withholds(
        self, wrap: Any, iris_model: Any, span_exporter: Any
    ) -> None:
        """Batches below the minimum get no numeric summaries."""
        model, x, _ = iris_model
        config = MonitorConfig(min_summary_rows=5)
        wrap(model, config=config).predict_proba(x[:4])
        attributes = only_span(span_exporter).attributes
        assert semconv.ML_INPUT_FEATURE_MEAN not in attributes
        assert "below the minimum of 5" in attributes[
            semconv.ML_INPUT_SUMMARY_SKIPPED
        ]

    def test_feature_cap_reported(
        self, wrap: Any, span_exporter: Any
    ) -> None:
        """More features than the cap: arrays are cut and the span flags it."""
        rng = np.random.default_rng(0)
        x = rng.normal(size=(30, 12))
        model = LinearRegression().fit(x, x[:, 0])
        wrap(model, config=MonitorConfig(max_features=5)).predict(x)
        attributes = only_span(span_exporter).attributes
        assert attributes[semconv.ML_INPUT_FEATURE_TRUNCATED] is True
        assert attributes[semconv.ML_INPUT_FEATURE_COUNT] == 12
        assert len(attributes[semconv.ML_INPUT_FEATURE_MEAN]) == 5

    def test_last_prediction_id_matches_span(
        self, wrap: Any, iris_model: Any, span_exporter: Any
    ) -> None:
        """last_prediction_id returns the id on the call's span."""
        model, x, _ = iris_model
        wrap(model).predict(x[:1])
        span = only_span(span_exporter)
        assert last_prediction_id() == span.attributes[
            semconv.ML_PREDICTION_ID
        ]


class TestErrors:
    def test_model_error_propagates(
        self, wrap: Any, iris_model: Any, span_exporter: Any, metric_points: Any
    ) -> None:
        """The model's own exception object propagates, recorded on the span."""
        model, x, _ = iris_model
        with pytest.raises(ValueError) as bare:
            model.predict(x[:, :2])
        with pytest.raises(ValueError) as caught:
            wrap(model).predict(x[:, :2])
        assert str(caught.value) == str(bare.value)
        span = only_span(span_exporter)
        assert span.status.status_code.name == "ERROR"
        assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
        assert span.attributes[semconv.ML_INPUT_TYPE] == "numpy"
        assert span.attributes[semconv.ML_BATCH_SIZE] == len(x)
        assert semconv.ML_INPUT_FEATURE_MEAN not in span.attributes
        assert span.events[0].name == "exception"
        errors = [
            point
            for point in metric_points(semconv.ML_MODEL_PREDICTION_DURATION)
            if point.attributes.get(semconv.ERROR_TYPE) == "ValueError"
        ]
        assert len(errors) == 1
        assert errors[0].count == 1

    def test_same_exception_object(self, wrap: Any) -> None:
        """The exception raised is the model's object, traceback intact."""
        failure = RuntimeError("model broke")

        class Broken:
            def predict(self, X: Any) -> Any:
                raise failure

        with pytest.raises(RuntimeError) as caught:
            wrap(Broken()).predict([[1.0]])
        assert caught.value is failure
        frames = []
        trace = caught.value.__traceback__
        while trace is not None:
            frames.append(trace.tb_frame.f_code.co_name)
            trace = trace.tb_next
        assert frames[-1] == "predict"

    def test_error_message_redacted(
        self, wrap: Any, iris_model: Any, span_exporter: Any
    ) -> None:
        """Quoted input values in an error message do not reach the span."""
        model, _, _ = iris_model
        with pytest.raises(ValueError):
            wrap(model).predict([["secret-marker", 1.0, 2.0, 3.0]])
        span = only_span(span_exporter)
        exported = repr(span.to_json())
        assert "secret-marker" not in exported
        assert "could not convert string to float" in exported

    def test_telemetry_failure_logged_once(
        self,
        wrap: Any,
        iris_model: Any,
        caplog: Any,
        monkeypatch: Any,
    ) -> None:
        """A failure inside telemetry is logged once; predictions go on."""
        from otel_mlmon.instrumentation import _core

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise ArithmeticError("summary failed")

        monkeypatch.setattr(_core, "read_input", broken)
        model, x, _ = iris_model
        wrapped = wrap(model)
        with caplog.at_level("WARNING", logger="otel_mlmon"):
            first = wrapped.predict(x[:3])
            second = wrapped.predict(x[3:6])
        np.testing.assert_array_equal(first, model.predict(x[:3]))
        np.testing.assert_array_equal(second, model.predict(x[3:6]))
        failures = [r for r in caplog.records if "summary failed" in r.message]
        assert len(failures) == 1


class TestMetrics:
    def test_metric_points(
        self, wrap: Any, iris_model: Any, metric_points: Any
    ) -> None:
        """A call records duration, rows, CPU time and confidence."""
        model, x, _ = iris_model
        wrapped = wrap(model, name="iris")
        wrapped.predict_proba(x[:30])
        wrapped.predict_proba(x[30:31])
        (duration,) = metric_points(semconv.ML_MODEL_PREDICTION_DURATION)
        assert duration.count == 2
        assert duration.explicit_bounds[0] == 0.0005
        assert duration.explicit_bounds[-1] == 10.0
        assert duration.attributes == {
            semconv.ML_MODEL_NAME: "iris",
            semconv.ML_MODEL_VERSION: "unknown",
            semconv.ML_OPERATION_NAME: "predict_proba",
        }
        (rows,) = metric_points(semconv.ML_MODEL_PREDICTIONS)
        assert rows.value == 31
        (cpu,) = metric_points(semconv.ML_MODEL_PREDICTION_CPU_TIME)
        assert cpu.count == 2
        (confidence,) = metric_points(semconv.ML_MODEL_PREDICTION_CONFIDENCE)
        assert confidence.count == 2
        (memory,) = metric_points(semconv.PROCESS_MEMORY_USAGE)
        assert memory.value > 10_000_000


class TestFlags:
    def test_low_confidence_event_and_logs(
        self,
        wrap: Any,
        iris_model: Any,
        span_exporter: Any,
        log_exporter: Any,
        metric_points: Any,
    ) -> None:
        """Rows below the threshold give an event, log records and a count."""
        model, x, _ = iris_model
        config = MonitorConfig(low_confidence_threshold=0.99, max_flagged_rows=3)
        result = wrap(model, config=config).predict_proba(x)
        low_rows = np.flatnonzero(result.max(axis=1) < 0.99)
        assert len(low_rows) > 3
        span = only_span(span_exporter)
        (event,) = [
            e for e in span.events if e.name == semconv.ML_PREDICTION_LOW_CONFIDENCE
        ]
        assert event.attributes[semconv.ML_PREDICTION_ROWS] == tuple(
            low_rows[:3].tolist()
        )
        assert event.attributes[
            semconv.ML_PREDICTION_LOW_CONFIDENCE_COUNT
        ] == len(low_rows)
        (counter,) = metric_points(semconv.ML_MODEL_LOW_CONFIDENCE_PREDICTIONS)
        assert counter.value == len(low_rows)
        records = [entry.log_record for entry in log_exporter.get_finished_logs()]
        assert len(records) == 3
        assert {r.trace_id for r in records} == {span.context.trace_id}
        assert {r.span_id for r in records} == {span.context.span_id}
        assert all(semconv.ML_INPUT_VALUES not in r.attributes for r in records)
        labels = [r.attributes[semconv.ML_PREDICTION_LABEL] for r in records]
        assert labels == [str(v) for v in result[low_rows[:3]].argmax(axis=1)]

    def test_capture_with_redaction(
        self, wrap: Any, iris_model: Any, log_exporter: Any
    ) -> None:
        """With capture on, log records carry the rows minus redacted names."""
        import json

        model, x, _ = iris_model
        config = MonitorConfig(
            low_confidence_threshold=0.99,
            capture_inputs=True,
            redact_features=("x2",),
        )
        wrap(model, config=config).predict_proba(x)
        record = log_exporter.get_finished_logs()[0].log_record
        row = json.loads(record.attributes[semconv.ML_INPUT_VALUES])
        index = record.attributes[semconv.ML_PREDICTION_ROW]
        assert row == {"x0": x[index, 0], "x1": x[index, 1], "x3": x[index, 3]}

    def test_redaction_ignores_case(
        self, wrap: Any, iris_model: Any, log_exporter: Any
    ) -> None:
        """A redacted name in another case still hides its feature."""
        import json

        model, x, _ = iris_model
        config = MonitorConfig(
            low_confidence_threshold=0.99,
            capture_inputs=True,
            redact_features=("X2",),
        )
        wrap(model, config=config).predict_proba(x)
        record = log_exporter.get_finished_logs()[0].log_record
        row = json.loads(record.attributes[semconv.ML_INPUT_VALUES])
        assert set(row) == {"x0", "x1", "x3"}

    def test_unmatched_redaction_warns_once(
        self,
        wrap: Any,
        iris_model: Any,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A redacted name no feature has is logged once, with the names."""
        model, x, _ = iris_model
        config = MonitorConfig(
            low_confidence_threshold=0.99,
            capture_inputs=True,
            redact_features=("petal width", "x1"),
        )
        wrapped = wrap(model, config=config)
        wrapped.predict_proba(x)
        wrapped.predict_proba(x)
        warnings = [
            r.getMessage() for r in caplog.records if "redact_features" in r.getMessage()
        ]
        assert len(warnings) == 1
        assert "['petal width']" in warnings[0]
        assert "x0, x1, x2, x3" in warnings[0]

    def test_drift_event_on_window_close(
        self,
        wrap: Any,
        span_exporter: Any,
        metric_points: Any,
        log_exporter: Any,
    ) -> None:
        """A shifted window gives drift events on the closing span."""
        data = load_breast_cancer()
        x, y = data.data, data.target
        names = [str(n) for n in data.feature_names]
        model = LogisticRegression(max_iter=5000).fit(x, y)
        baseline = Baseline.fit(x, feature_names=names, bins=5)
        config = MonitorConfig(drift_window_rows=200)
        wrapped = wrap(model, baseline=baseline, config=config)
        shifted = x[:200].copy()
        shifted[:, 0] *= 1.5
        wrapped.predict(shifted[:150])
        wrapped.predict(shifted[150:])
        first, second = span_exporter.get_finished_spans()
        assert not [e for e in first.events if e.name == semconv.ML_DRIFT_DETECTED]
        drift = [e for e in second.events if e.name == semconv.ML_DRIFT_DETECTED]
        assert drift[0].attributes[semconv.ML_FEATURE_NAME] == "mean radius"
        assert drift[0].attributes[semconv.ML_DRIFT_SCORE] > 0.2
        assert drift[0].attributes[semconv.ML_DRIFT_WINDOW_ROWS] == 200
        points = metric_points(semconv.ML_FEATURE_DRIFT_SCORE)
        scores = {
            p.attributes[semconv.ML_FEATURE_NAME]: p.value
            for p in points
            if p.attributes[semconv.ML_DRIFT_STATISTIC] == "psi"
        }
        assert len(scores) == 30
        statistics = {p.attributes[semconv.ML_DRIFT_STATISTIC] for p in points}
        assert statistics == {
            "psi", "jensen_shannon", "ks", "ks_p_value", "wasserstein"
        }
        assert scores["mean radius"] == pytest.approx(
            drift[0].attributes[semconv.ML_DRIFT_SCORE]
        )
        bodies = [e.log_record.body for e in log_exporter.get_finished_logs()]
        assert any("mean radius" in str(body) for body in bodies)

    def test_numbered_frame_maps_by_position(
        self, wrap: Any, span_exporter: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A frame with columns 0, 1, ... meets a named baseline by position."""
        data = load_breast_cancer()
        x, y = data.data, data.target
        names = [str(n) for n in data.feature_names]
        model = LogisticRegression(max_iter=5000).fit(x, y)
        baseline = Baseline.fit(x, feature_names=names)
        live = pd.DataFrame(x[:10].copy())
        live.iloc[:3, 2] = 1e6
        wrap(model, baseline=baseline).predict(live)
        span = only_span(span_exporter)
        assert span.attributes[semconv.ML_INPUT_FEATURE_NAMES] == tuple(names)
        (event,) = [
            e for e in span.events if e.name == semconv.ML_INPUT_OUT_OF_RANGE
        ]
        assert event.attributes[semconv.ML_FEATURE_NAME] == "mean perimeter"
        assert event.attributes[semconv.ML_INPUT_OUT_OF_RANGE_COUNT] == 3
        assert [r for r in caplog.records if r.name.startswith("otel_mlmon")] == []

    def test_out_of_range_counts(
        self, wrap: Any, span_exporter: Any
    ) -> None:
        """Out-of-range counts name the feature, never the values."""
        x, y = load_diabetes(return_X_y=True)
        model = LinearRegression().fit(x, y)
        baseline = Baseline.fit(x)
        live = x[:10].copy()
        live[:3, 2] = 99.0
        wrap(model, baseline=baseline).predict(live)
        span = only_span(span_exporter)
        (event,) = [
            e for e in span.events if e.name == semconv.ML_INPUT_OUT_OF_RANGE
        ]
        assert event.attributes[semconv.ML_FEATURE_NAME] == "x2"
        assert event.attributes[semconv.ML_INPUT_OUT_OF_RANGE_COUNT] == 3
        assert "99" not in repr(dict(event.attributes))


class TestConfig:
    def test_invalid_variable_fails_at_wrap(
        self, wrap: Any, iris_model: Any, monkeypatch: Any
    ) -> None:
        """An invalid variable raises at wrap time, naming it and the range."""
        monkeypatch.setenv("OTEL_MLMON_LOW_CONFIDENCE_THRESHOLD", "1.7")
        model, _, _ = iris_model
        with pytest.raises(ConfigError) as caught:
            wrap(model)
        assert "OTEL_MLMON_LOW_CONFIDENCE_THRESHOLD" in str(caught.value)
        assert "from 0 to 1" in str(caught.value)

    def test_variables_configure(
        self, wrap: Any, iris_model: Any, monkeypatch: Any, span_exporter: Any
    ) -> None:
        """Variables set the configuration when no config is passed."""
        monkeypatch.setenv("OTEL_MLMON_MAX_FEATURES", "2")
        model, x, _ = iris_model
        wrap(model).predict(x[:5])
        attributes = only_span(span_exporter).attributes
        assert len(attributes[semconv.ML_INPUT_FEATURE_NAMES]) == 2
