"""Read a model's output: per-row confidence, labels, or value summaries.

Confidence is the highest class probability of a row. It is read only from
outputs that are probabilities (``predict_proba``, ``predict_log_proba``).
For ``predict`` the package does not call ``predict_proba`` behind the
caller's back: that would double the model's cost, and some models'
``predict`` does not agree with the argmax of their probabilities. A span of
a ``predict`` call therefore says why it has no confidence.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from otel_mlmon import semconv

FloatArray = npt.NDArray[np.float64]

MAX_CLASSES = 10
"""Labels listed in an output summary at most, most frequent first."""

PROBABILITY_OPERATIONS = frozenset({"predict_proba", "predict_log_proba"})


@dataclasses.dataclass(slots=True)
class OutputView:
    """Confidence per row where the output has it, and summary attributes."""

    confidence: FloatArray | None = None
    skipped: str | None = None
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    classes: Any = None
    probabilities: Any = None


def read_output(operation: str, result: Any, model: Any) -> OutputView:
    """Read the output of ``operation`` on ``model``.

    Args:
        operation: The method called.
        result: What it returned.
        model: The model, for ``classes_`` where it has them.
    """
    classes = getattr(model, "classes_", None)
    if operation in PROBABILITY_OPERATIONS:
        return _read_probabilities(result, operation, classes)
    if operation == "decision_function":
        return OutputView(
            skipped="decision_function returns scores, not probabilities"
        )
    if classes is not None:
        return OutputView(
            skipped="predict returns labels; call predict_proba for "
            "confidence",
            summary=_label_counts(result),
        )
    return OutputView(
        skipped="the model returns values, not class probabilities",
        summary=_value_summary(result),
    )


def _read_probabilities(
    result: Any, operation: str, classes: Any
) -> OutputView:
    if not isinstance(result, np.ndarray):
        if isinstance(result, list):
            return OutputView(skipped="multi-output probabilities")
        result = np.asarray(result)
    if result.ndim != 2 or result.dtype.kind != "f":
        return OutputView(skipped="probabilities are not a 2-D float array")
    if result.shape[0] == 0 or result.shape[1] == 0:
        return OutputView(skipped="empty output")
    confidence = result.max(axis=1)
    if operation == "predict_log_proba":
        confidence = np.exp(confidence)
    if confidence.dtype != np.float64:
        confidence = confidence.astype(np.float64)
    return OutputView(
        confidence=confidence,
        classes=classes,
        probabilities=result,
    )


def _label_counts(result: Any) -> dict[str, Any]:
    labels = np.asarray(result)
    if labels.ndim != 1 or labels.size == 0:
        return {}
    try:
        values, counts = np.unique(labels, return_counts=True)
    except TypeError:
        return {}
    order = np.argsort(-counts, kind="stable")[:MAX_CLASSES]
    return {
        semconv.ML_OUTPUT_CLASSES: [str(value) for value in values[order]],
        semconv.ML_OUTPUT_CLASS_COUNTS: counts[order].tolist(),
    }


def _value_summary(result: Any) -> dict[str, Any]:
    values = np.asarray(result)
    if values.dtype.kind not in "biuf" or values.size == 0:
        return {}
    values = values.astype(np.float64, copy=False).ravel()
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {}
    mean = finite.mean()
    return {
        semconv.ML_OUTPUT_MEAN: float(mean),
        semconv.ML_OUTPUT_STD: float(np.sqrt(np.square(finite - mean).mean())),
        semconv.ML_OUTPUT_MIN: float(finite.min()),
        semconv.ML_OUTPUT_MAX: float(finite.max()),
    }
