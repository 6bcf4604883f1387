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
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from otel_mlmon import semconv
from otel_mlmon.stats.tensor import is_tensor, tensor_output

FloatArray = npt.NDArray[np.float64]

MAX_CLASSES = 10
"""Labels listed in an output summary at most, most frequent first."""

PROBABILITY_OPERATIONS = frozenset({"predict_proba", "predict_log_proba"})

# Rounding slack outside [0, 1] (above 0 for log-probabilities), about
# eight float32 ulps at 1.0, so a softmax or a calibration computed in
# float32 still counts.
_PROBABILITY_SLACK = 1e-6


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
    if operation == "run":
        return _read_session_outputs(result)
    if is_tensor(result):
        return _read_tensor_output(result)
    classes = getattr(model, "classes_", None)
    if operation in PROBABILITY_OPERATIONS:
        return _read_probabilities(result, operation, classes)
    if operation == "decision_function":
        return OutputView(
            skipped="decision_function returns scores, not probabilities"
        )
    if is_label_output(result, classes):
        return OutputView(
            skipped="predict returns labels; call predict_proba for "
            "confidence",
            summary=_label_counts(result),
        )
    return OutputView(
        skipped="the model returns values, not class probabilities",
        summary=_value_summary(result),
    )


def is_label_output(result: Any, classes: Any) -> bool:
    """Tell whether ``result``, from ``predict`` of a classifier, is labels.

    A classifier's ``predict`` returns margins, leaf indices or feature
    contributions instead when called with XGBoost's ``output_margin=True``
    or LightGBM's ``raw_score``, ``pred_leaf`` or ``pred_contrib``. Such an
    output is not 1-D, or is float while the ``classes`` are not.
    """
    if classes is None:
        return False
    if not isinstance(result, np.ndarray) or not isinstance(classes, np.ndarray):
        return True
    if result.ndim != 1:
        return False
    return bool(result.dtype.kind != "f" or classes.dtype.kind == "f")


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
    if result.shape[0] == 1:
        # One row, the usual web call: Python's max over the row costs less
        # than a numpy reduction. A NaN would hide from max(), so a row with
        # one goes through numpy, which propagates it.
        row = result[0].tolist()
        if math.isfinite(sum(row)):
            if not _in_probability_range(min(row), max(row), operation):
                return _not_probabilities(operation)
            best = max(row)
            if operation == "predict_log_proba":
                best = math.exp(best)
            return OutputView(
                confidence=np.array((best,)),
                classes=classes,
                probabilities=result,
            )
    # fmin and fmax skip NaN, so a row with one still gets a NaN confidence,
    # which the span reports as not finite.
    low = float(np.fmin.reduce(result, axis=None))
    high = float(np.fmax.reduce(result, axis=None))
    if not _in_probability_range(low, high, operation):
        return _not_probabilities(operation)
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


def _in_probability_range(low: float, high: float, operation: str) -> bool:
    """Tell whether values from ``low`` to ``high`` can be probabilities.

    LightGBM's ``predict_proba`` returns raw scores or feature contributions
    when called with ``raw_score=True`` or ``pred_contrib=True``, and those
    must not be read as confidence.
    """
    # Written with negated comparisons so that NaN (all values NaN) passes.
    if operation == "predict_log_proba":
        return not high > _PROBABILITY_SLACK
    return not (low < -_PROBABILITY_SLACK or high > 1.0 + _PROBABILITY_SLACK)


def _not_probabilities(operation: str) -> OutputView:
    return OutputView(
        skipped=f"{operation} returned values outside the range of "
        "probabilities"
    )


def _read_tensor_output(result: Any) -> OutputView:
    confidence, values = tensor_output(result)
    if confidence is not None:
        return OutputView(confidence=confidence)
    summary = {}
    if values:
        summary = {
            semconv.ML_OUTPUT_MEAN: values["mean"],
            semconv.ML_OUTPUT_STD: values["std"],
            semconv.ML_OUTPUT_MIN: values["min"],
            semconv.ML_OUTPUT_MAX: values["max"],
        }
    return OutputView(
        skipped="the output is not a tensor of class probabilities",
        summary=summary,
    )


def _read_session_outputs(result: Any) -> OutputView:
    """Read the list of outputs of an ONNX Runtime session's ``run``.

    An output counts as class probabilities when it is a 2-D float array
    with values in [0, 1] whose rows sum to 1, or a list of dicts from
    label to probability (what skl2onnx's ZipMap gives). The first 1-D
    output is taken as the predicted labels.
    """
    if not isinstance(result, (list, tuple)):
        return OutputView(skipped="session output is not a list")
    labels = None
    probabilities = None
    classes = None
    for output in result:
        if isinstance(output, list) and output and isinstance(output[0], dict):
            if probabilities is None:
                classes = list(output[0])
                probabilities = np.array(
                    [[row[key] for key in classes] for row in output],
                    dtype=np.float64,
                )
        elif isinstance(output, np.ndarray):
            if output.ndim == 1 and labels is None:
                labels = output
            elif probabilities is None and _are_probabilities(output):
                probabilities = output
    summary = _label_counts(labels) if labels is not None else {}
    if probabilities is None or probabilities.shape[0] == 0:
        if not summary and result and isinstance(result[0], np.ndarray):
            summary = _value_summary(result[0])
        return OutputView(
            skipped="the session has no class probability output",
            summary=summary,
        )
    confidence = probabilities.max(axis=1).astype(np.float64, copy=False)
    return OutputView(
        confidence=confidence,
        summary=summary,
        classes=classes,
        probabilities=probabilities,
    )


def _are_probabilities(output: npt.NDArray[Any]) -> bool:
    if output.ndim != 2 or output.dtype.kind != "f" or output.size == 0:
        return False
    with np.errstate(invalid="ignore"):
        in_range = bool(((output >= 0.0) & (output <= 1.0)).all())
        return in_range and bool(np.allclose(output.sum(axis=1), 1.0, atol=1e-3))


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
    # Scaled to [-1, 1] first, because values near 1e308 overflow a plain
    # sum or square; the mean and std then stay within the largest value.
    scale = float(np.abs(finite).max()) or 1.0
    scaled = finite / scale
    mean = scaled.mean()
    return {
        semconv.ML_OUTPUT_MEAN: float(mean * scale),
        semconv.ML_OUTPUT_STD: float(np.sqrt(np.square(scaled - mean).mean()) * scale),
        semconv.ML_OUTPUT_MIN: float(finite.min()),
        semconv.ML_OUTPUT_MAX: float(finite.max()),
    }
