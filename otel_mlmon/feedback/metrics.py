"""Model quality from labelled predictions, over all pairs or a sliding window.

Classifiers get accuracy and per-class precision and recall; regressors get
the mean absolute error (MAE) and root mean squared error (RMSE). Values are
plain floats, with None where a score is undefined (no pairs, or a class
never predicted), so a caller can skip them instead of recording NaN.

Per-class scores are capped at ``max_classes`` classes, those with the most
labels plus predictions; the rest are folded into one class named
:data:`OTHER_CLASS`. Folding leaves the scores of the kept classes
unchanged. The scores of "other" treat its classes as one: a prediction of
one folded class for a label of another counts as correct for "other", but
not for accuracy, which always compares the real classes. A real class
named "other" is folded into that bucket too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from otel_mlmon.feedback._codec import MODEL_KINDS, ModelKind
from otel_mlmon.feedback._scoring import (
    DEFAULT_MAX_CLASSES,
    OTHER_CLASS,
    ClassificationQuality,
    ClassScores,
    FloatArray,
    IntArray,
    Quality,
    RegressionQuality,
    as_floats,
    check_max_classes,
    check_same_length,
    class_name,
    classification_from_codes,
    encode_classes,
    is_missing,
    regression_from_arrays,
)
from otel_mlmon.feedback.records import LabelledPair

__all__ = [
    "DEFAULT_MAX_CLASSES",
    "OTHER_CLASS",
    "ClassScores",
    "ClassificationQuality",
    "Quality",
    "QualityWindow",
    "RegressionQuality",
    "accuracy",
    "class_name",
    "classification_quality",
    "mean_absolute_error",
    "regression_quality",
    "root_mean_squared_error",
]


def accuracy(predicted: npt.ArrayLike, actual: npt.ArrayLike) -> float | None:
    """Return the share of predictions equal to their labels, or None if empty."""
    return classification_quality(predicted, actual, max_classes=1).accuracy


def mean_absolute_error(
    predicted: npt.ArrayLike, actual: npt.ArrayLike
) -> float | None:
    """Return the MAE over the finite pairs, or None if there are none."""
    return regression_quality(predicted, actual).mae


def root_mean_squared_error(
    predicted: npt.ArrayLike, actual: npt.ArrayLike
) -> float | None:
    """Return the RMSE over the finite pairs, or None if there are none."""
    return regression_quality(predicted, actual).rmse


def regression_quality(
    predicted: npt.ArrayLike, actual: npt.ArrayLike
) -> RegressionQuality:
    """Compute MAE and RMSE of matched pairs.

    Pairs where either value is NaN, infinite or None are left out.

    Raises:
        ValueError: The inputs are not 1-D of the same length, or not
            numeric.
    """
    predicted_array = as_floats(predicted, "predicted")
    actual_array = as_floats(actual, "actual")
    check_same_length(predicted_array, actual_array)
    finite = np.isfinite(predicted_array) & np.isfinite(actual_array)
    return regression_from_arrays(predicted_array[finite], actual_array[finite])


def classification_quality(
    predicted: npt.ArrayLike,
    actual: npt.ArrayLike,
    *,
    max_classes: int = DEFAULT_MAX_CLASSES,
) -> ClassificationQuality:
    """Compute accuracy and per-class precision and recall of matched pairs.

    Pairs where either value is None or NaN are left out. Classes are
    compared by value within numeric inputs; when either input has strings
    or other objects, both are compared by :func:`class_name`.

    Raises:
        ValueError: The inputs are not 1-D of the same length, or
            ``max_classes`` is below 1.
    """
    check_max_classes(max_classes)
    predicted_codes, actual_codes, names = encode_classes(predicted, actual)
    return classification_from_codes(predicted_codes, actual_codes, names, max_classes)


class QualityWindow:
    """Quality over the most recent labelled predictions of one model.

    The window keeps at most ``max_count`` pairs and, if ``max_age_s`` is
    set, scores only pairs labelled within that many seconds of now.
    Memory is fixed by ``max_count``. Safe to share between threads.

    Args:
        kind: "classification" or "regression".
        max_count: Maximum pairs in the window.
        max_age_s: Maximum age of a pair at scoring time, or None.
        max_classes: Cap on per-class scores; see :data:`OTHER_CLASS`.
        clock: Source of the current time in seconds since the Unix epoch.
    """

    def __init__(
        self,
        kind: ModelKind,
        *,
        max_count: int = 1000,
        max_age_s: float | None = None,
        max_classes: int = DEFAULT_MAX_CLASSES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if kind not in MODEL_KINDS:
            raise ValueError(
                f"kind must be 'classification' or 'regression', got {kind!r}"
            )
        if max_count < 1:
            raise ValueError(f"max_count must be at least 1, got {max_count}")
        if max_age_s is not None and not max_age_s > 0:
            raise ValueError(
                f"max_age_s must be a positive number of seconds or None, "
                f"got {max_age_s}"
            )
        check_max_classes(max_classes)
        self.kind: ModelKind = kind
        self._max_age_s = max_age_s
        self._max_classes = max_classes
        self._clock = clock
        self._lock = threading.Lock()
        dtype = np.int64 if kind == "classification" else np.float64
        self._predicted: npt.NDArray[Any] = np.zeros(max_count, dtype=dtype)
        self._actual: npt.NDArray[Any] = np.zeros(max_count, dtype=dtype)
        self._times: FloatArray = np.zeros(max_count, dtype=np.float64)
        self._next = 0
        self._size = 0
        self._class_codes: dict[str, int] = {}
        self._class_names: list[str] = []
        # Prediction id of each slot's pair, where known, and its inverse,
        # so that a second label for one prediction replaces the first.
        self._slot_ids: list[str | None] = [None] * max_count
        self._slot_of: dict[str, int] = {}

    def __len__(self) -> int:
        with self._lock:
            return self._size

    def add(
        self,
        predicted: object,
        actual: object,
        at: float | None = None,
        prediction_id: str | None = None,
    ) -> None:
        """Add one pair, labelled at ``at`` (now by default).

        A pair with the ``prediction_id`` of a pair still in the window
        replaces that pair, so a label sent twice is scored once.
        """
        if prediction_id is None:
            self.extend([predicted], [actual], at)
            return
        when = np.array([self._clock() if at is None else at], dtype=np.float64)
        with self._lock:
            predicted_value, actual_value = self._encoded([predicted], [actual])
            slot = self._slot_of.get(prediction_id)
            if slot is not None:
                self._predicted[slot] = predicted_value[0]
                self._actual[slot] = actual_value[0]
                self._times[slot] = when[0]
                return
            slot = self._next
            self._write(predicted_value, actual_value, when)
            self._slot_ids[slot] = prediction_id
            self._slot_of[prediction_id] = slot

    def add_pairs(self, pairs: Iterable[LabelledPair]) -> None:
        """Add pairs read from the store, labelled at their receive times."""
        pair_list = list(pairs)
        self.extend(
            [pair.predicted for pair in pair_list],
            [pair.actual for pair in pair_list],
            [pair.received_at for pair in pair_list],
        )

    def extend(
        self,
        predicted: Sequence[Any],
        actual: Sequence[Any],
        at: float | Sequence[float] | None = None,
    ) -> None:
        """Add pairs; ``at`` is one time for all, one per pair, or now.

        Pairs beyond ``max_count`` push out the oldest. Missing values are
        kept and left out at scoring time.

        Raises:
            ValueError: The sequences differ in length, or a regressor's
                value is not numeric.
        """
        if len(predicted) != len(actual):
            raise ValueError(
                f"predicted has {len(predicted)} values but actual has {len(actual)}"
            )
        times = np.broadcast_to(
            np.asarray(self._clock() if at is None else at, dtype=np.float64),
            (len(predicted),),
        )
        with self._lock:
            self._write(*self._encoded(predicted, actual), times)

    def _encoded(
        self, predicted: Sequence[Any], actual: Sequence[Any]
    ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """Return the pairs as stored, floats or class codes. Runs under the lock."""
        if self.kind == "regression":
            return as_floats(predicted, "predicted"), as_floats(actual, "actual")
        return self._codes_of(predicted), self._codes_of(actual)

    def quality(self, now: float | None = None) -> Quality:
        """Score the pairs in the window at time ``now`` (now by default).

        Returns:
            :class:`ClassificationQuality` or :class:`RegressionQuality`,
            by the window's kind.
        """
        current = self._clock() if now is None else now
        with self._lock:
            live = np.arange(self._size)
            if self._max_age_s is not None:
                live = live[self._times[: self._size] >= current - self._max_age_s]
            predicted = self._predicted[live].copy()
            actual = self._actual[live].copy()
            names = list(self._class_names)
        if self.kind == "regression":
            finite = np.isfinite(predicted) & np.isfinite(actual)
            return regression_from_arrays(predicted[finite], actual[finite])
        valid = (predicted >= 0) & (actual >= 0)
        return classification_from_codes(
            predicted[valid], actual[valid], names, self._max_classes
        )

    def _codes_of(self, values: Sequence[Any]) -> IntArray:
        codes = np.empty(len(values), dtype=np.int64)
        for index, value in enumerate(values):
            if is_missing(value):
                codes[index] = -1
                continue
            name = class_name(value)
            code = self._class_codes.get(name)
            if code is None:
                code = len(self._class_names)
                self._class_codes[name] = code
                self._class_names.append(name)
            codes[index] = code
        return codes

    def _write(
        self, predicted: npt.NDArray[Any], actual: npt.NDArray[Any], times: FloatArray
    ) -> None:
        capacity = len(self._times)
        if len(predicted) > capacity:
            predicted = predicted[-capacity:]
            actual = actual[-capacity:]
            times = times[-capacity:]
        slots = (self._next + np.arange(len(predicted))) % capacity
        if self._slot_of:
            for slot in slots.tolist():
                replaced = self._slot_ids[slot]
                if replaced is not None:
                    del self._slot_of[replaced]
                    self._slot_ids[slot] = None
        self._predicted[slots] = predicted
        self._actual[slots] = actual
        self._times[slots] = times
        self._next = (self._next + len(predicted)) % capacity
        self._size = min(capacity, self._size + len(predicted))
        if len(self._class_names) > 2 * capacity + DEFAULT_MAX_CLASSES:
            self._forget_unused_classes()

    def _forget_unused_classes(self) -> None:
        # Classes that left the window keep their code until here, so the
        # table of names is bounded by about twice the window, not by the
        # stream of classes.
        size = self._size
        used = np.unique(np.concatenate([self._predicted[:size], self._actual[:size]]))
        used = used[used >= 0]
        # The extra last slot is read for code -1 and keeps it missing.
        remap = np.full(len(self._class_names) + 1, -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        self._predicted[:size] = remap[self._predicted[:size]]
        self._actual[:size] = remap[self._actual[:size]]
        self._class_names = [self._class_names[code] for code in used.tolist()]
        self._class_codes = {name: i for i, name in enumerate(self._class_names)}
