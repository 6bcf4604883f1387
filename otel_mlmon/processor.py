"""MLSpanProcessor: turns a prediction's flags into span events and logs.

The SDK rejects events on a span that has ended, and a processor's
``on_end`` gets a read-only span. So the instrumentation hands each flagged
prediction to :meth:`MLSpanProcessor.on_prediction` while its span is still
live, and the events land on the exported span.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from opentelemetry import trace
from opentelemetry._logs import (
    LoggerProvider,
    SeverityNumber,
    get_logger,
)
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_mlmon import semconv
from otel_mlmon.version import __version__

_logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_FEATURE_EVENTS = 20
"""Drift and out-of-range events per span at most, worst features first."""


@dataclasses.dataclass
class FeatureFlag:
    """A feature flagged by drift or range checks."""

    name: str
    score: float = 0.0
    out_of_range: int = 0
    missing: int = 0
    statistic: str = "psi"
    threshold: float = 0.0


@dataclasses.dataclass(slots=True)
class PredictionFlags:
    """Everything a processor needs to flag one prediction call."""

    model_name: str
    model_version: str
    prediction_id: str
    threshold: float
    max_rows: int
    low_rows: IntArray | None = None
    low_confidence: FloatArray | None = None
    labels: Sequence[Any] | None = None
    captured: Sequence[dict[str, Any]] | None = None
    drifted: Sequence[FeatureFlag] = ()
    drift_threshold: float = 0.0
    drift_window_rows: int = 0
    out_of_range: Sequence[FeatureFlag] = ()

    def __bool__(self) -> bool:
        return bool(
            (self.low_rows is not None and len(self.low_rows))
            or self.drifted
            or self.out_of_range
        )


class MLSpanProcessor(SpanProcessor):
    """Flag drift, low confidence and out-of-range inputs on prediction spans.

    Add it to the tracer provider to choose where its log records go.
    Without one there, the instrumentation uses a default instance that
    logs through the global logger provider. ``on_start`` and ``on_end``
    do nothing: the work happens in :meth:`on_prediction`, on the caller's
    thread, and it never raises into the caller.

    Args:
        logger_provider: Where log records of flagged predictions go; the
            global logger provider by default.
        emit_logs: Whether to emit log records at all.
    """

    def __init__(
        self,
        logger_provider: LoggerProvider | None = None,
        emit_logs: bool = True,
    ) -> None:
        self._logs = (
            get_logger("otel_mlmon", __version__, logger_provider)
            if emit_logs
            else None
        )

    def on_start(
        self, span: Span, parent_context: Context | None = None
    ) -> None:
        """Do nothing: flags arrive through :meth:`on_prediction`."""

    def on_end(self, span: ReadableSpan) -> None:
        """Do nothing: the span is read-only by now."""

    def on_prediction(self, span: trace.Span, flags: PredictionFlags) -> None:
        """Add flag events to a live prediction span and emit log records.

        Args:
            span: The prediction's span, not yet ended.
            flags: What the instrumentation found in the call.
        """
        try:
            self._add_events(span, flags)
            if self._logs is not None:
                self._emit_logs(span, flags)
        except Exception:  # pylint: disable=broad-except
            _logger.exception("Failed to flag prediction %s", flags.prediction_id)

    def on_review(
        self, span: trace.Span, flags: PredictionFlags, rows: Sequence[int], reason: str
    ) -> None:
        """Emit a log record for each row queued for review.

        Low-confidence rows already get one from :meth:`on_prediction`, so
        this is for the other reasons, such as drift. Never raises.
        """
        if self._logs is None:
            return
        try:
            context = trace.set_span_in_context(span)
            now = time.time_ns()
            for row in rows:
                self._logs.emit(
                    context=context,
                    timestamp=now,
                    severity_number=SeverityNumber.INFO,
                    severity_text="INFO",
                    event_name=semconv.ML_PREDICTION_REVIEW,
                    body=f"Prediction queued for review: {reason}",
                    attributes={
                        semconv.ML_MODEL_NAME: flags.model_name,
                        semconv.ML_MODEL_VERSION: flags.model_version,
                        semconv.ML_PREDICTION_ID: f"{flags.prediction_id}-{row}",
                        semconv.ML_PREDICTION_ROW: row,
                        semconv.ML_REVIEW_REASON: reason,
                    },
                )
        except Exception:  # pylint: disable=broad-except
            _logger.exception("Failed to log review of prediction %s", flags.prediction_id)

    def _add_events(self, span: trace.Span, flags: PredictionFlags) -> None:
        for flag in flags.drifted[:MAX_FEATURE_EVENTS]:
            span.add_event(
                semconv.ML_DRIFT_DETECTED,
                {
                    semconv.ML_FEATURE_NAME: flag.name,
                    semconv.ML_DRIFT_STATISTIC: flag.statistic,
                    semconv.ML_DRIFT_SCORE: flag.score,
                    semconv.ML_DRIFT_THRESHOLD: flag.threshold
                    or flags.drift_threshold,
                    semconv.ML_DRIFT_WINDOW_ROWS: flags.drift_window_rows,
                },
            )
        if flags.drifted:
            span.set_attribute(
                semconv.ML_DRIFT_FEATURE_COUNT, len(flags.drifted)
            )
        if flags.low_rows is not None and len(flags.low_rows):
            assert flags.low_confidence is not None
            span.add_event(
                semconv.ML_PREDICTION_LOW_CONFIDENCE,
                {
                    semconv.ML_PREDICTION_ROWS: flags.low_rows[
                        : flags.max_rows
                    ].tolist(),
                    semconv.ML_PREDICTION_LOW_CONFIDENCE_COUNT: len(
                        flags.low_rows
                    ),
                    semconv.ML_PREDICTION_CONFIDENCE_MIN: float(
                        flags.low_confidence.min()
                    ),
                    semconv.ML_PREDICTION_CONFIDENCE_THRESHOLD: flags.threshold,
                },
            )
        for flag in flags.out_of_range[:MAX_FEATURE_EVENTS]:
            span.add_event(
                semconv.ML_INPUT_OUT_OF_RANGE,
                {
                    semconv.ML_FEATURE_NAME: flag.name,
                    semconv.ML_INPUT_OUT_OF_RANGE_COUNT: flag.out_of_range,
                    semconv.ML_INPUT_MISSING_COUNT: flag.missing,
                },
            )

    def _emit_logs(self, span: trace.Span, flags: PredictionFlags) -> None:
        assert self._logs is not None
        context = trace.set_span_in_context(span)
        now = time.time_ns()
        identity = {
            semconv.ML_MODEL_NAME: flags.model_name,
            semconv.ML_MODEL_VERSION: flags.model_version,
        }
        if flags.drifted:
            worst = flags.drifted[:5]
            names = [flag.name for flag in worst]
            described = ", ".join(
                f"{flag.name} ({flag.statistic} {flag.score:.4g})"
                for flag in worst
            )
            self._logs.emit(
                context=context,
                timestamp=now,
                severity_number=SeverityNumber.WARN,
                severity_text="WARN",
                event_name=semconv.ML_DRIFT_DETECTED,
                body=f"Drift detected in {len(flags.drifted)} features over "
                f"{flags.drift_window_rows} rows, worst first: {described}",
                attributes={
                    **identity,
                    semconv.ML_INPUT_FEATURE_NAMES: names,
                    semconv.ML_DRIFT_STATISTIC: worst[0].statistic,
                    semconv.ML_DRIFT_SCORES: [flag.score for flag in worst],
                    semconv.ML_DRIFT_THRESHOLD: flags.drift_threshold,
                    semconv.ML_DRIFT_WINDOW_ROWS: flags.drift_window_rows,
                },
            )
        if flags.low_rows is None or flags.low_confidence is None:
            return
        rows = flags.low_rows[: flags.max_rows].tolist()
        values = flags.low_confidence[: flags.max_rows].tolist()
        for position, (row, confidence) in enumerate(zip(rows, values)):
            attributes: dict[str, Any] = {
                **identity,
                semconv.ML_PREDICTION_ID: f"{flags.prediction_id}-{row}",
                semconv.ML_PREDICTION_ROW: row,
                semconv.ML_PREDICTION_CONFIDENCE: confidence,
                semconv.ML_PREDICTION_CONFIDENCE_THRESHOLD: flags.threshold,
            }
            if flags.labels is not None:
                attributes[semconv.ML_PREDICTION_LABEL] = str(flags.labels[position])
            if flags.captured is not None:
                attributes[semconv.ML_INPUT_VALUES] = json.dumps(
                    flags.captured[position], default=str
                )
            self._logs.emit(
                context=context,
                timestamp=now,
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
                event_name=semconv.ML_PREDICTION_LOW_CONFIDENCE,
                body="Low-confidence prediction",
                attributes=attributes,
            )
