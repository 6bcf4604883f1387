"""Conversion between the store's records and SQLite rows, with validation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from otel_mlmon.feedback._codec import (
    MODEL_KINDS,
    dump_json,
    infer_model_kind,
    load_json,
    normalize_hex_id,
    to_json_value,
)
from otel_mlmon.feedback.errors import InvalidRecordError
from otel_mlmon.feedback.records import (
    PredictionRecord,
    ReviewItem,
    ReviewReason,
    ReviewStatus,
)

PredictionRow = tuple[
    str,
    str,
    str,
    float,
    str,
    str | None,
    float | None,
    str | None,
    str | None,
    str | None,
]


def prediction_row(record: PredictionRecord, now: float) -> PredictionRow:
    """Validate a record and return its row for the predictions table.

    Raises:
        InvalidRecordError: A field is invalid; the message names the
            prediction id and the field.
    """
    prediction_id = record.prediction_id
    if not isinstance(prediction_id, str) or not prediction_id:
        raise InvalidRecordError(
            f"prediction_id must be a non-empty string, got "
            f"{type(prediction_id).__name__}"
        )
    try:
        return _checked_row(record, now)
    except (TypeError, ValueError) as error:
        raise InvalidRecordError(
            f"Prediction {prediction_id!r} is invalid: {error}"
        ) from None


def _checked_row(record: PredictionRecord, now: float) -> PredictionRow:
    _require_text(record.model_name, "model_name")
    _require_text(record.model_version, "model_version")
    predicted = to_json_value(record.predicted)
    kind = record.model_kind
    if kind is None:
        kind = infer_model_kind(predicted)
    elif kind not in MODEL_KINDS:
        raise ValueError(
            f"model_kind must be 'classification', 'regression' or None, got {kind!r}"
        )
    input_row = None
    if record.input_row is not None:
        input_row = dump_json(to_json_value(record.input_row))
    created_at = now if record.created_at is None else record.created_at
    return (
        record.prediction_id,
        record.model_name,
        record.model_version,
        validate_time(created_at, "created_at"),
        dump_json(predicted),
        kind,
        _checked_confidence(record.confidence),
        normalize_hex_id(record.trace_id, 32, "trace_id"),
        normalize_hex_id(record.span_id, 16, "span_id"),
        input_row,
    )


def _require_text(value: object, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"{name} must be a non-empty string, got {type(value).__name__}"
        )


def _checked_confidence(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, bool)):
        raise TypeError(
            f"confidence must be a float or None, got {type(value).__name__}"
        )
    confidence = float(value)
    if not 0.0 <= confidence <= 1.0:
        raise ValueError("confidence must be a probability in [0, 1] or None")
    return confidence


def validate_time(value: float, name: str = "time") -> float:
    """Return a time in seconds since the epoch as a float.

    Raises:
        TypeError: The value is not a number.
        ValueError: The value is NaN or infinite.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be seconds since the Unix epoch, got {type(value).__name__}"
        )
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds")
    return float(value)


def validate_reason(reason: ReviewReason | str) -> str:
    """Return the stored text of a review reason.

    Raises:
        ValueError: The reason is not "low_confidence" or "drift".
    """
    try:
        return ReviewReason(reason).value
    except ValueError:
        raise ValueError(
            f"Review reason must be 'low_confidence' or 'drift', got {reason!r}"
        ) from None


def validate_status(status: ReviewStatus | str) -> str:
    """Return the stored text of a review status.

    Raises:
        ValueError: The status is not "open" or "resolved".
    """
    try:
        return ReviewStatus(status).value
    except ValueError:
        raise ValueError(
            f"Review status must be 'open', 'resolved' or None, got {status!r}"
        ) from None


def review_item(row: Sequence[Any]) -> ReviewItem:
    """Build a review item from a row of the review query."""
    return ReviewItem(
        review_id=int(row[0]),
        prediction_id=row[1],
        reason=ReviewReason(row[2]),
        status=ReviewStatus(row[3]),
        created_at=row[4],
        resolved_at=row[5],
        resolved_label=load_json(row[6]),
        model_name=row[7],
        model_version=row[8],
        predicted=load_json(row[9]),
        confidence=row[10],
        trace_id=row[11],
        span_id=row[12],
        input_row=load_json(row[13]),
        prediction_created_at=row[14],
    )
