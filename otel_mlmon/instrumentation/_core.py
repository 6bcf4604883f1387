"""The traced model call shared by wrap_model and the instrumentors.

A call runs in three zones. Before: start the span, and if that fails, call
the model untraced. Call: run the model. Its exception is recorded on the
span and re-raised unchanged. After: read input and output, record
attributes, metrics and flags, and end the span. A failure there is logged
once per model and kind, and the model's result is returned all the same.
"""

from __future__ import annotations

import contextvars
import logging
import os
import random
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from opentelemetry import context, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from otel_mlmon import semconv
from otel_mlmon._redact import input_strings, redact_message
from otel_mlmon.baseline import Baseline
from otel_mlmon.config import MonitorConfig
from otel_mlmon.drift import DriftMonitor, Observation, OutputBins
from otel_mlmon.drift_metrics import export_drift_metrics
from otel_mlmon.drift_report import DriftSettings
from otel_mlmon.feedback._instruments import feedback_instruments_for
from otel_mlmon.feedback._monitor import (
    FeedbackRecorder,
    PendingCall,
    open_recorder,
    row_predictions,
)
from otel_mlmon.feedback.records import ReviewReason
from otel_mlmon.feedback.store import PredictionStore
from otel_mlmon.inputs import InputView, read_input
from otel_mlmon.metrics import instruments_for
from otel_mlmon.outputs import OutputView, is_label_output, read_output
from otel_mlmon.processor import FeatureFlag, MLSpanProcessor, PredictionFlags
from otel_mlmon.stats.summary import summarise_dense, summarise_sparse
from otel_mlmon.stats.tensor import is_tensor, summarise_tensor
from otel_mlmon.version import __version__

_logger = logging.getLogger(__name__)

_IN_PREDICTION: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "otel_mlmon_in_prediction", default=False
)
_LAST_PREDICTION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "otel_mlmon_last_prediction_id", default=None
)
_LAST_PREDICTION_ROWS: contextvars.ContextVar[int] = contextvars.ContextVar(
    "otel_mlmon_last_prediction_rows", default=0
)
_default_processor: MLSpanProcessor | None = None
_MAX_ERROR_TYPES = 32
_NO_ROWS = np.zeros(0, dtype=np.int64)
_FIRST_ROW = np.zeros(1, dtype=np.int64)


def last_prediction_id() -> str | None:
    """Return the id of the last traced call in this context, if any.

    Row ``i`` of that call has the id ``{id}-{i}``. In a web app, call it
    in the request's handler after the prediction.
    """
    return _LAST_PREDICTION_ID.get()


def last_prediction_ids() -> list[str]:
    """Return the row ids of the last traced call in this context.

    Row ``i`` has the id ``{last_prediction_id()}-{i}``, the id that
    :func:`otel_mlmon.record_feedback` takes. The list is empty before any
    call, and when the rows of the call's input could not be read.
    """
    prediction_id = _LAST_PREDICTION_ID.get()
    if prediction_id is None:
        return []
    return [f"{prediction_id}-{row}" for row in range(_LAST_PREDICTION_ROWS.get())]


def clear_last_prediction() -> None:
    """Forget the last call's ids in this context, as at a request's start."""
    _LAST_PREDICTION_ID.set(None)
    _LAST_PREDICTION_ROWS.set(0)


def inside_prediction() -> bool:
    """Tell whether the current context is inside a traced model call."""
    return _IN_PREDICTION.get()


class ModelMonitor:
    """Tracing, metrics and flags for the calls of one model.

    Thread-safe: per-call state lives on the stack, drift windows lock.
    """

    def __init__(
        self,
        model: Any,
        *,
        name: str,
        version: str,
        framework: str,
        config: MonitorConfig,
        baseline: Baseline | None = None,
        feature_names: Sequence[str] | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        feedback_store: PredictionStore | str | os.PathLike[str] | None = None,
    ) -> None:
        self.model = model
        self.name = name
        self.version = version
        self.framework = framework
        self.config = config
        self.baseline = baseline
        self.feature_names = _initial_names(model, feature_names, baseline)
        self.drift = (
            DriftMonitor(baseline, DriftSettings.from_config(config))
            if baseline is not None
            else None
        )
        self._tracer_provider = tracer_provider
        self._tracer = trace.get_tracer(
            "otel_mlmon", __version__, tracer_provider
        )
        self._instruments = instruments_for(meter_provider)
        self._identity = {
            semconv.ML_MODEL_NAME: name,
            semconv.ML_MODEL_VERSION: version,
        }
        if self.drift is not None:
            export_drift_metrics(
                self.drift, self._identity, meter_provider, config.max_features
            )
        self._operations: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
        self._error_attributes: dict[tuple[str, str], dict[str, Any]] = {}
        self._failures: set[str] = set()
        self._processor: tuple[Any, MLSpanProcessor] | None = None
        self._traced: dict[tuple[str, Any, int], Callable[..., Any]] = {}
        self.feedback = self._open_feedback(feedback_store, meter_provider)

    def _open_feedback(
        self,
        store: PredictionStore | str | os.PathLike[str] | None,
        meter_provider: MeterProvider | None,
    ) -> FeedbackRecorder | None:
        target = store if store is not None else self.config.feedback_db
        if target is None:
            return None
        recorder = open_recorder(target, self.name)
        if recorder is not None:
            recorder.register_model(
                self.name,
                self.version,
                feedback_instruments_for(meter_provider),
                self.config.feedback_window_labels,
            )
        return recorder

    def traced_method(
        self, operation: str, method: Callable[..., Any]
    ) -> Callable[..., Any]:
        """Return a function that calls ``method`` inside a prediction span.

        Bound methods of the same function and instance share one wrapper,
        so reading ``model.predict`` in a loop builds no new closure.
        """
        key = (
            operation,
            getattr(method, "__func__", method),
            id(getattr(method, "__self__", None)),
        )
        traced = self._traced.get(key)
        if traced is None:

            def traced(*args: Any, **kwargs: Any) -> Any:
                return self.call(operation, method, args, kwargs)

            traced.__name__ = operation
            traced.__doc__ = getattr(method, "__doc__", None)
            traced.__wrapped__ = method  # type: ignore[attr-defined]
            if len(self._traced) < 64:
                self._traced[key] = traced
        return traced

    def call(
        self,
        operation: str,
        method: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> Any:
        """Call ``method(*args, **kwargs)`` inside a prediction span."""
        if not is_instrumentation_enabled():
            return method(*args, **kwargs)
        started = self._start(operation)
        if started is None:
            return method(*args, **kwargs)
        span, token = started
        start = time.perf_counter()
        cpu_start = time.thread_time()
        try:
            result = method(*args, **kwargs)
            elapsed = time.perf_counter() - start
            cpu = time.thread_time() - cpu_start
        except BaseException as error:
            elapsed = time.perf_counter() - start
            data = args[0] if args else _first_input(kwargs)
            self._fail(span, operation, error, elapsed, data)
            raise
        finally:
            _IN_PREDICTION.reset(token[1])
            context.detach(token[0])
        self._finish(span, operation, args, kwargs, result, elapsed, cpu)
        return result

    def _start(self, operation: str) -> tuple[Any, Any] | None:
        try:
            name, attributes, _ = self._describe_operation(operation)
            span = self._tracer.start_span(
                name, kind=SpanKind.INTERNAL, attributes=attributes
            )
            token = context.attach(trace.set_span_in_context(span))
            return span, (token, _IN_PREDICTION.set(True))
        except Exception as error:  # pylint: disable=broad-except
            self._log_once("start the span", error)
            return None

    def _describe_operation(
        self, operation: str
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        described = self._operations.get(operation)
        if described is None:
            span_attributes = {
                **self._identity,
                semconv.ML_MODEL_FRAMEWORK: self.framework,
                semconv.ML_OPERATION_NAME: operation,
            }
            metric_attributes = {
                **self._identity,
                semconv.ML_OPERATION_NAME: operation,
            }
            described = (
                f"{operation} {self.name}",
                span_attributes,
                metric_attributes,
            )
            self._operations[operation] = described
        return described

    def _fail(
        self,
        span: Any,
        operation: str,
        error: BaseException,
        elapsed: float,
        data: Any,
    ) -> None:
        try:
            error_type = _qualified_name(type(error))
            message = redact_message(str(error), input_strings(data))
            stack = "".join(traceback.format_tb(error.__traceback__))
            span.add_event(
                "exception",
                {
                    "exception.type": error_type,
                    "exception.message": message,
                    "exception.stacktrace": f"{stack}{error_type}: {message}",
                },
            )
            span.set_attribute(semconv.ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"))
            attributes = self._error_metric_attributes(operation, error_type)
            self._instruments.duration.record(elapsed, attributes)
        except Exception as failure:  # pylint: disable=broad-except
            self._log_once("record the model's error", failure)
        try:
            # Which input failed helps more than its summary, which is left
            # out: a batch the model rejects may hold anything.
            view = read_input(data, self.feature_names)
            span.set_attribute(semconv.ML_INPUT_TYPE, view.kind)
            if view.rows is not None:
                span.set_attribute(semconv.ML_BATCH_SIZE, view.rows)
        except Exception as failure:  # pylint: disable=broad-except
            self._log_once("read the failed call's input", failure)
        finally:
            span.end()

    def _error_metric_attributes(
        self, operation: str, error_type: str
    ) -> dict[str, Any]:
        key = (operation, error_type)
        attributes = self._error_attributes.get(key)
        if attributes is None:
            if len(self._error_attributes) >= _MAX_ERROR_TYPES:
                error_type = "_OTHER"
            attributes = {
                **self._describe_operation(operation)[2],
                semconv.ERROR_TYPE: error_type,
            }
            if len(self._error_attributes) < _MAX_ERROR_TYPES:
                self._error_attributes[key] = attributes
        return attributes

    def _finish(
        self,
        span: Any,
        operation: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        result: Any,
        elapsed: float,
        cpu: float,
    ) -> None:
        try:
            metric_attributes = self._describe_operation(operation)[2]
            self._instruments.duration.record(elapsed, metric_attributes)
            self._instruments.cpu_time.record(cpu, metric_attributes)
            data = args[0] if args else _first_input(kwargs)
            self._describe_call(span, operation, data, result)
        except Exception as error:  # pylint: disable=broad-except
            self._log_once("describe the prediction", error)
        finally:
            span.end()

    def _describe_call(
        self, span: Any, operation: str, data: Any, result: Any
    ) -> None:
        # Each step has its own guard, so a failure in one (an input of an
        # odd type, say) keeps what the others found on the span.
        metric_attributes = self._describe_operation(operation)[2]
        prediction_id = f"{random.getrandbits(128):032x}"
        _LAST_PREDICTION_ID.set(prediction_id)
        attributes: dict[str, Any] = {semconv.ML_PREDICTION_ID: prediction_id}
        flags = PredictionFlags(
            model_name=self.name,
            model_version=self.version,
            prediction_id=prediction_id,
            threshold=self.config.low_confidence_threshold,
            max_rows=self.config.max_flagged_rows,
        )
        view = None
        try:
            view = read_input(data, self.feature_names)
            self._summarise_input(view, attributes)
        except Exception as error:  # pylint: disable=broad-except
            self._log_once("summarise the input", error)
        rows = view.rows if view is not None and view.rows is not None else 0
        _LAST_PREDICTION_ROWS.set(rows)
        output = None
        try:
            output = read_output(operation, result, self.model)
            self._read_confidence(output, attributes, flags, metric_attributes)
            if rows >= self.config.min_summary_rows or (
                semconv.ML_OUTPUT_CLASSES in output.summary
            ):
                attributes.update(output.summary)
        except Exception as error:  # pylint: disable=broad-except
            self._log_once("read the output", error)
        if self.drift is not None and rows and view is not None:
            try:
                self._observe_drift(view, flags, data, output, result)
            except Exception as error:  # pylint: disable=broad-except
                self._log_once("update the drift windows", error)
        span.set_attributes(attributes)
        if rows:
            self._instruments.predictions.add(rows, metric_attributes)
        if flags:
            low_rows = flags.low_rows
            if (
                self.config.capture_inputs
                and view is not None
                and low_rows is not None
            ):
                flags.captured = self._capture(
                    data, view, low_rows[: flags.max_rows]
                )
            self._find_processor().on_prediction(span, flags)
        if self.feedback is not None and rows:
            try:
                self._queue_feedback(
                    span, prediction_id, operation, (rows, output, result),
                    flags, data, view,
                )
            except Exception as error:  # pylint: disable=broad-except
                self._log_once("queue the prediction for feedback", error)

    def _queue_feedback(
        self,
        span: Any,
        prediction_id: str,
        operation: str,
        call: tuple[int, OutputView | None, Any],
        flags: PredictionFlags,
        data: Any,
        view: InputView | None,
    ) -> None:
        """Hand the call's rows, and those to review, to the feedback writer."""
        assert self.feedback is not None
        rows, output, result = call
        classes = output.classes if output is not None else None
        probabilities = output.probabilities if output is not None else None
        predicted = row_predictions(operation, result, classes, probabilities, rows)
        if predicted is None:
            raise ValueError(
                f"{operation} returned no single prediction per row to store"
            )
        if classes is None and getattr(self.model, "classes_", None) is not None:
            classes = self.model.classes_
        context = span.get_span_context()
        confidence = output.confidence if output is not None else None
        self.feedback.submit(
            PendingCall(
                prediction_id=prediction_id,
                model_name=self.name,
                model_version=self.version,
                model_kind="classification" if classes is not None else None,
                created_at=time.time(),
                predicted=predicted,
                confidence=None if confidence is None else confidence.tolist(),
                trace_id=f"{context.trace_id:032x}" if context.is_valid else None,
                span_id=f"{context.span_id:016x}" if context.is_valid else None,
                reviews=self._review_rows(span, rows, flags, data, view),
            )
        )

    def _review_rows(
        self,
        span: Any,
        rows: int,
        flags: PredictionFlags,
        data: Any,
        view: InputView | None,
    ) -> list[tuple[int, ReviewReason, Any]]:
        """Return the rows to queue for review, with their captured inputs.

        Low-confidence rows are those the processor logs, with the inputs
        it captured. Drift rows get a log record here.
        """
        reviews: list[tuple[int, ReviewReason, Any]] = []
        if flags.low_rows is not None:
            low = flags.low_rows[: flags.max_rows].tolist()
            captured: Sequence[Any] = flags.captured or (None,) * len(low)
            reviews += [
                (row, ReviewReason.LOW_CONFIDENCE, values)
                for row, values in zip(low, captured)
            ]
        if self.config.review_drift and self._drift_detected():
            drifted = list(range(min(rows, self.config.max_flagged_rows)))
            captured = [None] * len(drifted)
            if self.config.capture_inputs and view is not None:
                captured = self._capture(data, view, drifted)
            reviews += [
                (row, ReviewReason.DRIFT, values)
                for row, values in zip(drifted, captured)
            ]
            self._find_processor().on_review(
                span, flags, drifted, ReviewReason.DRIFT.value
            )
        return reviews

    def _drift_detected(self) -> bool:
        """Tell whether the last closed drift window found drift."""
        report = getattr(self.drift, "last_report", None)
        return bool(getattr(report, "drift_detected", False))

    def _summarise_input(
        self, view: InputView, attributes: dict[str, Any]
    ) -> None:
        attributes[semconv.ML_INPUT_TYPE] = view.kind
        if view.rows is not None:
            attributes[semconv.ML_BATCH_SIZE] = view.rows
        if view.numeric is None:
            attributes[semconv.ML_INPUT_SUMMARY_SKIPPED] = (
                view.skipped or "no numeric input"
            )
            return
        if not view.rows:
            attributes[semconv.ML_INPUT_SUMMARY_SKIPPED] = "empty batch"
            return
        if view.rows < self.config.min_summary_rows:
            attributes[semconv.ML_INPUT_SUMMARY_SKIPPED] = (
                f"batch of {view.rows} rows is below the minimum of "
                f"{self.config.min_summary_rows} rows for summaries"
            )
            return
        width = view.numeric.shape[1]
        cap = self.config.max_features
        values = view.numeric if width <= cap else view.numeric[:, :cap]
        attributes[semconv.ML_INPUT_FEATURE_COUNT] = width
        if width > cap:
            attributes[semconv.ML_INPUT_FEATURE_TRUNCATED] = True
        if width:
            if isinstance(values, np.ndarray):
                summary = summarise_dense(values)
            elif is_tensor(values):
                summary = summarise_tensor(values)
            else:
                summary = summarise_sparse(values)
            attributes[semconv.ML_INPUT_FEATURE_NAMES] = view.names[:cap]
            attributes[semconv.ML_INPUT_FEATURE_MEAN] = summary.mean
            attributes[semconv.ML_INPUT_FEATURE_STD] = summary.std
            attributes[semconv.ML_INPUT_FEATURE_MIN] = summary.min
            attributes[semconv.ML_INPUT_FEATURE_MAX] = summary.max
            attributes[semconv.ML_INPUT_FEATURE_NULL_COUNT] = summary.null_count
        categorical = view.categorical
        if categorical is not None:
            attributes[semconv.ML_INPUT_CATEGORICAL_NAMES] = categorical.names[:cap]
            attributes[semconv.ML_INPUT_CATEGORICAL_DISTINCT_COUNT] = (
                categorical.distinct_counts[:cap]
            )
            attributes[semconv.ML_INPUT_CATEGORICAL_NULL_COUNT] = (
                categorical.null_counts[:cap]
            )

    def _read_confidence(
        self,
        output: OutputView,
        attributes: dict[str, Any],
        flags: PredictionFlags,
        metric_attributes: dict[str, Any],
    ) -> None:
        confidence = output.confidence
        if confidence is None:
            attributes[semconv.ML_PREDICTION_CONFIDENCE_SKIPPED] = (
                output.skipped or "no confidence"
            )
            return
        if confidence.shape[0] == 1:
            value = float(confidence[0])
            if value != value:
                attributes[semconv.ML_PREDICTION_CONFIDENCE_SKIPPED] = (
                    "probabilities are not finite"
                )
                return
            lowest = mean = value
            low = _FIRST_ROW if value < flags.threshold else _NO_ROWS
        else:
            finite = np.isfinite(confidence)
            if not finite.any():
                attributes[semconv.ML_PREDICTION_CONFIDENCE_SKIPPED] = (
                    "probabilities are not finite"
                )
                return
            valid = confidence[finite] if not finite.all() else confidence
            lowest = float(valid.min())
            mean = float(valid.mean())
            low = np.flatnonzero(confidence < flags.threshold)
        attributes[semconv.ML_PREDICTION_CONFIDENCE_MIN] = lowest
        attributes[semconv.ML_PREDICTION_CONFIDENCE_MEAN] = mean
        attributes[semconv.ML_PREDICTION_LOW_CONFIDENCE_COUNT] = len(low)
        self._instruments.confidence.record(mean, metric_attributes)
        if len(low):
            self._instruments.low_confidence.add(len(low), metric_attributes)
            flags.low_rows = low
            flags.low_confidence = confidence[low]
            if output.classes is not None and output.probabilities is not None:
                shown = low[: flags.max_rows]
                best = output.probabilities[shown].argmax(axis=1)
                flags.labels = np.asarray(output.classes)[best].tolist()

    def _observe_drift(
        self,
        view: InputView,
        flags: PredictionFlags,
        data: Any,
        output: OutputView | None,
        result: Any,
    ) -> None:
        monitor = self.drift
        assert monitor is not None
        # TODO: bin torch tensors on their device; until then they get
        # feature summaries but no drift or out-of-range checks.
        if view.numeric is None or is_tensor(view.numeric):
            return
        columns = monitor.columns_for(view.names)
        if columns is None:
            self._log_once(
                "match the input's columns to the baseline's features",
                ValueError(
                    f"input has {len(view.names)} numeric columns, the "
                    f"baseline {len(monitor.feature_names)} features"
                ),
            )
            return

        categories = None
        if monitor.categories.names and view.kind == "pandas":
            categories = monitor.category_index(data)
        outputs = _output_bins(monitor, output, result, self.model)
        observation = monitor.observe(view.numeric, columns, categories, outputs)
        flags.out_of_range = _range_flags(observation, monitor.feature_names)
        for report in observation.reports:
            drifted = report.drifted
            if drifted:
                flags.drifted = [
                    FeatureFlag(
                        feature.name,
                        score=feature.score,
                        statistic=feature.statistic,
                        threshold=feature.threshold,
                    )
                    for feature in drifted
                ]
                flags.drift_threshold = drifted[0].threshold
                flags.drift_window_rows = report.rows

    def _capture(
        self, data: Any, view: InputView, rows: Any
    ) -> list[dict[str, Any]]:
        """Return the input rows to keep for review, redaction applied."""
        redact = self.config.redact_features
        captured, columns = _capture_rows(data, view, rows, redact)
        present = {column.casefold() for column in columns}
        unmatched = [name for name in redact if name.casefold() not in present]
        if unmatched and "redact" not in self._failures:
            # A misspelt name would keep the feature it meant, so it is logged.
            self._failures.add("redact")
            _logger.warning(
                "otel_mlmon: redact_features entries %s match no input "
                "feature of model %s, so they hide nothing; the input's "
                "features are named %s",
                unmatched,
                self.name,
                _abbreviated_names(columns),
            )
        return captured

    def _find_processor(self) -> MLSpanProcessor:
        provider = self._tracer_provider or trace.get_tracer_provider()
        cached = self._processor
        if cached is not None and cached[0] is provider:
            return cached[1]
        found = _registered_processor(provider) or _shared_processor()
        self._processor = (provider, found)
        return found

    def _log_once(self, action: str, error: BaseException) -> None:
        key = f"{action}:{type(error).__qualname__}"
        if key in self._failures:
            return
        self._failures.add(key)
        _logger.warning(
            "otel_mlmon failed to %s for model %s, and the prediction went "
            "on untouched; this is logged once per kind: %s: %s",
            action,
            self.name,
            _qualified_name(type(error)),
            redact_message(str(error)),
        )


def _registered_processor(provider: Any) -> MLSpanProcessor | None:
    multi = getattr(provider, "_active_span_processor", None)
    for processor in getattr(multi, "_span_processors", ()):
        if isinstance(processor, MLSpanProcessor):
            return processor
    return None


def _shared_processor() -> MLSpanProcessor:
    global _default_processor
    if _default_processor is None:
        _default_processor = MLSpanProcessor()
    return _default_processor


def _range_flags(
    observation: Observation, names: Sequence[str]
) -> list[FeatureFlag]:
    counts = observation.range_counts()
    if counts is None:
        return []
    outside, missing = counts
    flagged = np.flatnonzero((outside > 0) | (missing > 0))
    order = flagged[np.argsort(-(outside + missing)[flagged], kind="stable")]
    return [
        FeatureFlag(
            names[i], out_of_range=int(outside[i]), missing=int(missing[i])
        )
        for i in order.tolist()
    ]


def _output_bins(
    monitor: DriftMonitor, output: OutputView | None, result: Any, model: Any
) -> OutputBins | None:
    if output is None or (monitor.prediction is None and monitor.confidence is None):
        return None
    if output.probabilities is not None:
        return monitor.output_bins(
            confidence=output.confidence,
            classes=output.classes,
            probabilities=output.probabilities,
        )
    if output.confidence is not None:
        return monitor.output_bins(confidence=output.confidence)
    if is_label_output(result, getattr(model, "classes_", None)):
        return monitor.output_bins(labels=result)
    return monitor.output_bins(values=result)


def _capture_rows(
    data: Any, view: InputView, rows: Any, redact: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Return the kept rows and the names of the input's columns.

    Names are compared case-insensitively, so that "Proline" hides
    "proline": hiding more than meant is the safe error.
    """
    hidden = {name.casefold() for name in redact}
    if type(data).__module__.startswith("pandas") and hasattr(data, "iloc"):
        frame = data.iloc[rows]
        if frame.ndim == 1:
            frame = frame.to_frame()
        columns = [str(column) for column in frame.columns]
        # Selected by position and without repeats, because to_dict warns
        # in the caller's code when a frame's column names repeat.
        repeated = frame.columns.duplicated()
        kept = [
            position
            for position, column in enumerate(columns)
            if column.casefold() not in hidden and not repeated[position]
        ]
        records = [
            {str(key): value for key, value in record.items()}
            for record in frame.iloc[:, kept].to_dict("records")
        ]
        return records, columns
    if view.numeric is None or not isinstance(view.numeric, np.ndarray):
        return [{} for _ in rows], list(view.names)
    names = view.names
    keep = [i for i, name in enumerate(names) if name.casefold() not in hidden]
    selected = view.numeric[np.asarray(rows)][:, keep].tolist()
    kept_names = [names[i] for i in keep]
    return [dict(zip(kept_names, values)) for values in selected], list(names)


def _abbreviated_names(names: Sequence[str], limit: int = 10) -> str:
    text = ", ".join(names[:limit])
    if len(names) > limit:
        text += f", ... ({len(names)} in all)"
    return text


def _first_input(kwargs: Mapping[str, Any]) -> Any:
    for key in ("X", "x", "data", "input", "inputs"):
        if key in kwargs:
            return kwargs[key]
    return None


def _initial_names(
    model: Any, names: Sequence[str] | None, baseline: Baseline | None
) -> tuple[str, ...] | None:
    if names is not None:
        return tuple(str(name) for name in names)
    if baseline is not None:
        return baseline.feature_names
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None:
        return tuple(str(name) for name in fitted)
    return None


def _qualified_name(kind: type) -> str:
    module = kind.__module__
    if module in ("builtins", "__main__"):
        return kind.__qualname__
    return f"{module}.{kind.__qualname__}"
