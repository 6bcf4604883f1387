"""Score computations shared by the metric functions and QualityWindow.

Classes are handled as integer codes into a list of class names, with -1
for a missing value.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

OTHER_CLASS = "other"
DEFAULT_MAX_CLASSES = 20


@dataclasses.dataclass(frozen=True)
class ClassScores:
    """Precision and recall of one class.

    Attributes:
        precision: Share of predictions of the class that were right; None
            when the class was never predicted.
        recall: Share of labels of the class that were predicted; None when
            no label has the class.
        support: Labels of the class.
        predicted: Predictions of the class.
    """

    precision: float | None
    recall: float | None
    support: int
    predicted: int


@dataclasses.dataclass(frozen=True)
class ClassificationQuality:
    """Accuracy and per-class scores of a classifier.

    Attributes:
        count: Pairs scored; pairs with a missing value are left out.
        accuracy: Share of pairs whose prediction equals the label; None
            when ``count`` is 0.
        classes: Scores by class name, with :data:`OTHER_CLASS` for the
            folded classes when there are more than ``max_classes``.
    """

    count: int
    accuracy: float | None
    classes: dict[str, ClassScores]


@dataclasses.dataclass(frozen=True)
class RegressionQuality:
    """Errors of a regressor, in the unit of its predictions.

    Attributes:
        count: Pairs scored; pairs with a non-finite value are left out.
        mae: Mean absolute error; None when ``count`` is 0.
        rmse: Root mean squared error; None when ``count`` is 0.
    """

    count: int
    mae: float | None
    rmse: float | None


Quality = ClassificationQuality | RegressionQuality


def class_name(value: object) -> str:
    """Return the name under which a class is reported.

    Booleans are spelled as in JSON ("true", "false"), so that they match
    labels stored as JSON. numpy scalars are named by their Python value,
    and a whole float by its integer, so that 1.0 and 1 are one class.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check_max_classes(max_classes: int) -> None:
    if max_classes < 1:
        raise ValueError(f"max_classes must be at least 1, got {max_classes}")


def check_same_length(predicted: npt.NDArray[Any], actual: npt.NDArray[Any]) -> None:
    if predicted.ndim != 1 or actual.ndim != 1:
        raise ValueError(
            f"predicted and actual must be 1-D, got shapes {predicted.shape} "
            f"and {actual.shape}"
        )
    if len(predicted) != len(actual):
        raise ValueError(
            f"predicted has {len(predicted)} values but actual has {len(actual)}"
        )


def as_floats(values: Any, name: str) -> FloatArray:
    """Convert regression values to float64, with None as NaN.

    Raises:
        ValueError: A value is a string, a boolean or another non-number.
    """
    array = np.asarray(values, dtype=object if _has_none(values) else None)
    if array.dtype == object:
        array = np.array([np.nan if v is None else v for v in array.ravel()])
    if array.dtype.kind not in "biuf" or array.dtype.kind == "b":
        raise ValueError(
            f"{name} must contain numbers for a regressor, got dtype {array.dtype}"
        )
    return array.astype(np.float64)


def regression_from_arrays(
    predicted: FloatArray, actual: FloatArray
) -> RegressionQuality:
    count = len(actual)
    if count == 0:
        return RegressionQuality(count=0, mae=None, rmse=None)
    error = predicted - actual
    return RegressionQuality(
        count=count,
        mae=float(np.mean(np.abs(error))),
        rmse=float(np.sqrt(np.mean(error * error))),
    )


def _has_none(values: Any) -> bool:
    return isinstance(values, (list, tuple)) and any(v is None for v in values)


def encode_classes(
    predicted: npt.ArrayLike, actual: npt.ArrayLike
) -> tuple[IntArray, IntArray, list[str]]:
    """Return class codes of the pairs with no missing value, and the names.

    Numeric inputs are compared by value, and any other inputs by
    :func:`class_name`.

    Raises:
        ValueError: The inputs are not 1-D of the same length.
    """
    predicted_array = np.asarray(predicted)
    actual_array = np.asarray(actual)
    check_same_length(predicted_array, actual_array)
    numeric = predicted_array.dtype.kind in "biuf" and actual_array.dtype.kind in "biuf"
    if numeric:
        both: npt.NDArray[Any] = np.concatenate([predicted_array, actual_array])
        missing = (
            np.isnan(both) if both.dtype.kind == "f" else np.zeros(len(both), bool)
        )
    else:
        raw = np.concatenate(
            [predicted_array.astype(object), actual_array.astype(object)]
        )
        missing = np.array([is_missing(value) for value in raw], dtype=bool)
        both = np.array([class_name(value) for value in raw], dtype=str)
    values, inverse = np.unique(both[~missing], return_inverse=True)
    codes = np.full(len(both), -1, dtype=np.int64)
    codes[~missing] = inverse.reshape(-1)
    half = len(predicted_array)
    valid = (codes[:half] >= 0) & (codes[half:] >= 0)
    names = [class_name(value) for value in values.tolist()]
    return codes[:half][valid], codes[half:][valid], names


def is_missing(value: object) -> bool:
    """Return whether a class value is None or a NaN of any float type."""
    if isinstance(value, np.generic):
        value = value.item()
    return value is None or (isinstance(value, float) and math.isnan(value))


def classification_from_codes(
    predicted: IntArray, actual: IntArray, names: list[str], max_classes: int
) -> ClassificationQuality:
    """Score pairs of class codes, none of them missing."""
    count = len(actual)
    if count == 0:
        return ClassificationQuality(count=0, accuracy=None, classes={})
    correct = float(np.mean(predicted == actual))
    folded_names, remap = _fold_classes(predicted, actual, names, max_classes)
    size = len(folded_names)
    confusion = np.bincount(
        remap[actual] * size + remap[predicted], minlength=size * size
    ).reshape(size, size)
    true_positive = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    classes = {
        name: ClassScores(
            precision=_ratio(true_positive[i], predicted_count[i]),
            recall=_ratio(true_positive[i], support[i]),
            support=int(support[i]),
            predicted=int(predicted_count[i]),
        )
        for i, name in enumerate(folded_names)
        if support[i] or predicted_count[i]
    }
    return ClassificationQuality(count=count, accuracy=correct, classes=classes)


def _fold_classes(
    predicted: IntArray, actual: IntArray, names: list[str], max_classes: int
) -> tuple[list[str], IntArray]:
    """Return the reported class names and a map from class code to slot.

    Keeps the ``max_classes`` classes with the most labels plus predictions
    (ties by name) and maps the rest, and any class named "other", to one
    slot named :data:`OTHER_CLASS`.
    """
    frequency = np.bincount(actual, minlength=len(names)) + np.bincount(
        predicted, minlength=len(names)
    )
    candidates = [
        code
        for code in np.flatnonzero(frequency).tolist()
        if names[code] != OTHER_CLASS
    ]
    candidates.sort(key=lambda code: (-int(frequency[code]), names[code]))
    kept_codes = candidates[:max_classes]
    folded = len(kept_codes) < int(np.count_nonzero(frequency))
    remap = np.full(len(names), len(kept_codes), dtype=np.int64)
    remap[np.asarray(kept_codes, dtype=np.int64)] = np.arange(len(kept_codes))
    reported_names = [names[code] for code in kept_codes]
    if folded:
        reported_names.append(OTHER_CLASS)
    return reported_names, remap


def _ratio(numerator: np.integer[Any], denominator: np.integer[Any]) -> float | None:
    if denominator == 0:
        return None
    return float(numerator) / float(denominator)
