"""Windows over live inputs, compared with the baseline when they fill.

Live rows are counted into the baseline's bins (see
:mod:`otel_mlmon.stats.binning`). Windows tumble by row count: a batch that
crosses a window's end is split at the exact row, so the verdicts do not
depend on how traffic is batched. Memory is fixed by features x bins.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from otel_mlmon.baseline import Baseline
from otel_mlmon.stats.binning import (
    count_slots,
    drift_bins,
    slot_counts,
    slot_counts_sparse,
    slot_index,
)
from otel_mlmon.stats.divergence import psi

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_PENDING_ROWS = 64


@dataclasses.dataclass
class WindowVerdict:
    """PSI of every feature for one closed window."""

    rows: int
    scores: FloatArray
    drifted: list[int]


@dataclasses.dataclass(slots=True)
class Observation:
    """What one batch showed: its counting slots, and any windows it closed.

    ``slots`` has shape (features, bins + 3), laid out as in
    :mod:`otel_mlmon.stats.binning`.
    """

    slots: IntArray | None
    verdicts: list[WindowVerdict]
    unexpected_missing_mask: IntArray
    may_be_out_of_range: bool = True

    def range_counts(self) -> tuple[IntArray, IntArray] | None:
        """Return values outside the training range and unexpected nulls.

        Both are per feature. Returns None when every count is zero.
        """
        if not self.may_be_out_of_range or self.slots is None:
            return None
        outside = self.slots[:, 0] + self.slots[:, -2]
        missing = self.slots[:, -1] * self.unexpected_missing_mask
        if not (outside.any() or missing.any()):
            return None
        return outside, missing


class DriftMonitor:
    """Drift windows of one model against its baseline; thread-safe."""

    def __init__(
        self, baseline: Baseline, threshold: float, window_rows: int
    ) -> None:
        self.baseline = baseline
        self.threshold = threshold
        self.window_rows = window_rows
        self._edges = baseline.counting_edges()
        self._expected = baseline.counts
        self._no_train_nulls = (baseline.counts[:, -1] == 0).astype(np.int64)
        self._lock = threading.Lock()
        self._window = np.zeros(
            (len(baseline.feature_names), self._edges.shape[1] + 2),
            dtype=np.int64,
        )
        self._rows = 0
        # Single rows inside the training range wait here and are counted
        # in bulk, which costs far less than counting each on its own.
        self._pending = np.empty((_PENDING_ROWS, len(baseline.feature_names)))
        self._pending_rows = 0
        self._low = baseline.low.tolist()
        self._high = baseline.high.tolist()
        self._columns: dict[tuple[str, ...], IntArray | None] = {}
        self._identity = np.arange(len(baseline.feature_names), dtype=np.int64)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the baseline's features, in the order of the scores."""
        return self.baseline.feature_names

    def columns_for(self, names: Sequence[str]) -> IntArray | None:
        """Map input columns to baseline features, or None if they differ.

        Inputs with the baseline's names map by name; unnamed inputs (names
        ``x0``...) of the baseline's width map by position.
        """
        key = tuple(names)
        if key in self._columns:
            return self._columns[key]
        wanted = self.baseline.feature_names
        index: IntArray | None = None
        position = {name: i for i, name in enumerate(key)}
        if all(name in position for name in wanted):
            index = np.array([position[name] for name in wanted], np.int64)
        elif len(key) == len(wanted) and all(
            name == f"x{i}" for i, name in enumerate(key)
        ):
            index = np.arange(len(wanted), dtype=np.int64)
        if index is not None and np.array_equal(index, np.arange(len(key))):
            index = self._identity
        if len(self._columns) < 32:
            self._columns[key] = index
        return index

    def observe(self, values: Any, columns: IntArray) -> Observation:
        """Count a batch into the windows; close each window it fills.

        Args:
            values: Shape (rows, input features), dense or scipy.sparse.
            columns: Input column of each baseline feature, from
                :meth:`columns_for`.
        """
        if columns is not self._identity or values.shape[1] != len(columns):
            values = values[:, columns]
        rows = values.shape[0]
        if rows == 1 and isinstance(values, np.ndarray):
            observation = self._observe_row(values)
            if observation is not None:
                return observation
        slot_count = self._edges.shape[1] + 2
        index = None
        if isinstance(values, np.ndarray):
            index = slot_index(values, self._edges)
            slots = count_slots(index, slot_count)
            # Slot 0 is below the training minimum; the last two slots are
            # above the maximum and missing.
            if rows == 1:
                row = index[0].tolist()
                flagged = 0 in row or max(row) >= slot_count - 2
            else:
                flagged = bool(index.min() == 0) or bool(
                    index.max() >= slot_count - 2
                )
        else:
            slots = slot_counts_sparse(values, self._edges)
            flagged = True
        with self._lock:
            if self._rows + rows < self.window_rows:
                self._window += slots
                self._rows += rows
                verdicts = []
            else:
                verdicts = self._close_windows(values, index, slots)
        return Observation(slots, verdicts, self._no_train_nulls, flagged)

    def _observe_row(self, values: FloatArray) -> Observation | None:
        """Queue one in-range, finite row; None if it needs a full count."""
        row = values[0].tolist()
        if not math.isfinite(sum(row)):
            return None
        if any(map(operator.lt, row, self._low)) or any(
            map(operator.gt, row, self._high)
        ):
            return None
        with self._lock:
            self._pending[self._pending_rows] = values[0]
            self._pending_rows += 1
            self._rows += 1
            if self._pending_rows == _PENDING_ROWS:
                self._count_pending()
            verdicts = (
                [self._close()] if self._rows >= self.window_rows else []
            )
        return Observation(None, verdicts, self._no_train_nulls, False)

    def _count_pending(self) -> None:
        if self._pending_rows:
            pending = self._pending[: self._pending_rows]
            self._window += slot_counts(pending, self._edges)
            self._pending_rows = 0

    def _close_windows(
        self, values: Any, index: IntArray | None, slots: IntArray
    ) -> list[WindowVerdict]:
        # Runs under the lock, once per window: the batch is cut at each
        # window's last row and the parts counted apart, so windows hold
        # exactly window_rows rows however traffic is batched.
        cuts = _window_cuts(self._rows, values.shape[0], self.window_rows)
        verdicts = []
        for start, end in zip(cuts, cuts[1:]):
            if len(cuts) == 2:
                part = slots
            elif index is not None:
                part = count_slots(index[start:end], slots.shape[1])
            else:
                part = slot_counts_sparse(values[start:end], self._edges)
            self._window += part
            self._rows += end - start
            if self._rows >= self.window_rows:
                verdicts.append(self._close())
        return verdicts

    def _close(self) -> WindowVerdict:
        self._count_pending()
        scores = psi(self._expected, drift_bins(self._window))
        order = np.argsort(-scores, kind="stable")
        drifted = [int(i) for i in order if scores[i] > self.threshold]
        verdict = WindowVerdict(rows=self._rows, scores=scores, drifted=drifted)
        self._window[:] = 0
        self._rows = 0
        return verdict


def _window_cuts(start: int, rows: int, window: int) -> list[int]:
    cuts = [0]
    position = window - start
    while position < rows:
        cuts.append(position)
        position += window
    cuts.append(rows)
    return cuts
