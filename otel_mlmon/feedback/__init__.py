"""Ground truth for served models: predictions joined to later labels.

:class:`PredictionStore` keeps recent predictions in a bounded SQLite file,
joins labels to them as they arrive, and keeps a review queue of flagged
predictions. :mod:`otel_mlmon.feedback.metrics` turns the joined pairs into
accuracy, precision, recall, MAE and RMSE.
"""

from otel_mlmon.feedback._export import read_review_export
from otel_mlmon.feedback.errors import (
    FeedbackStoreError,
    InvalidLabelError,
    InvalidRecordError,
    ReviewNotFoundError,
)
from otel_mlmon.feedback.metrics import (
    ClassificationQuality,
    ClassScores,
    QualityWindow,
    RegressionQuality,
)
from otel_mlmon.feedback.records import (
    LabelledPair,
    LabelOutcome,
    LabelStatus,
    PredictionRecord,
    ReviewItem,
    ReviewReason,
    ReviewStatus,
    StoreCounts,
)
from otel_mlmon.feedback.store import PredictionStore

__all__ = [
    "ClassScores",
    "ClassificationQuality",
    "FeedbackStoreError",
    "InvalidLabelError",
    "InvalidRecordError",
    "LabelOutcome",
    "LabelStatus",
    "LabelledPair",
    "PredictionRecord",
    "PredictionStore",
    "QualityWindow",
    "RegressionQuality",
    "ReviewItem",
    "ReviewNotFoundError",
    "ReviewReason",
    "ReviewStatus",
    "StoreCounts",
    "read_review_export",
]
