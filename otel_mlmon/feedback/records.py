"""Records passed to and returned by the feedback store.

Times are seconds since the Unix epoch, as returned by :func:`time.time`.
Fields typed ``Any`` contain JSON values: None, bool, int, float, str, list
or dict.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from otel_mlmon.feedback._codec import ModelKind


class LabelStatus(str, enum.Enum):
    """Result of matching a label to a stored prediction.

    The values are the ``outcome`` attribute of the ``ml.feedback.labels``
    counter.
    """

    MATCHED = "matched"
    """The prediction is stored and the label was recorded."""
    UNKNOWN = "unknown"
    """No prediction with this id is stored or remembered as pruned."""
    EXPIRED = "expired"
    """The prediction was stored but is older than the retention window,
    or was pruned; the label was not recorded."""


class ReviewReason(str, enum.Enum):
    """Reason a prediction was put in the review queue."""

    LOW_CONFIDENCE = "low_confidence"
    DRIFT = "drift"


class ReviewStatus(str, enum.Enum):
    """State of a review item."""

    OPEN = "open"
    RESOLVED = "resolved"


@dataclasses.dataclass(frozen=True)
class PredictionRecord:
    """One prediction to store, so that a later label can be joined to it.

    Attributes:
        prediction_id: Unique id; the key a label refers to.
        model_name: Name of the model, as on the prediction span.
        model_version: Version of the model, as on the prediction span.
        predicted: The model's output for one row: a class, a number, or
            any value that :func:`json.dumps` accepts after numpy values
            are converted. NaN is stored as null.
        confidence: Highest class probability, in [0, 1], or None when the
            model has none.
        trace_id: Trace id of the prediction span, 32 lowercase hex digits.
        span_id: Span id of the prediction span, 16 lowercase hex digits.
        created_at: Time of the prediction; None means the time of the
            insert.
        input_row: The input row as a JSON object or list. Give it only
            when input capture is on; NaN is stored as null.
        model_kind: "classification" or "regression". None infers it from
            ``predicted``: a str, bool or int is a class, a float a value.
    """

    prediction_id: str
    model_name: str
    model_version: str
    predicted: Any
    confidence: float | None = None
    trace_id: str | None = None
    span_id: str | None = None
    created_at: float | None = None
    input_row: Any = None
    model_kind: ModelKind | None = None


@dataclasses.dataclass(frozen=True)
class LabelOutcome:
    """Result of :meth:`PredictionStore.record_label`.

    Attributes:
        status: Whether the label matched a stored prediction.
        prediction_id: The id the label referred to.
        model_name: Model of the matched prediction; None unless matched.
        model_version: Version of the matched prediction; None unless
            matched.
        model_kind: Kind of the matched prediction's model, if known.
        predicted: The matched prediction as JSON; None unless matched.
        actual: The label as stored; None unless matched.
        delay_s: Seconds from the prediction to the label, at least 0;
            None unless matched.
    """

    status: LabelStatus
    prediction_id: str
    model_name: str | None = None
    model_version: str | None = None
    model_kind: ModelKind | None = None
    predicted: Any = None
    actual: Any = None
    delay_s: float | None = None


@dataclasses.dataclass(frozen=True)
class LabelledPair:
    """A stored prediction joined with its label."""

    prediction_id: str
    model_kind: ModelKind | None
    predicted: Any
    actual: Any
    received_at: float
    delay_s: float


@dataclasses.dataclass(frozen=True)
class ReviewItem:
    """A review-queue entry with the prediction it refers to.

    The prediction fields are None when the prediction was never stored or
    has been pruned.
    """

    review_id: int
    prediction_id: str
    reason: ReviewReason
    status: ReviewStatus
    created_at: float
    resolved_at: float | None
    resolved_label: Any
    model_name: str | None
    model_version: str | None
    predicted: Any
    confidence: float | None
    trace_id: str | None
    span_id: str | None
    input_row: Any
    prediction_created_at: float | None


@dataclasses.dataclass(frozen=True)
class StoreCounts:
    """Row counts of the store's tables."""

    predictions: int
    labels: int
    open_reviews: int
    resolved_reviews: int
    pruned_ids: int
