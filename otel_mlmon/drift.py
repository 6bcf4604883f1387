"""Windows over live inputs, compared with the baseline when they fill.

Live rows are counted into the baseline's bins (see
:mod:`otel_mlmon.stats.binning`). Windows tumble by row count: a batch that
crosses a window's end is split at the exact row, so the verdicts do not
depend on how traffic is batched. Memory is fixed by features x bins.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from otel_mlmon.baseline import Baseline
from otel_mlmon.stats.binning import drift_bins, slot_counts, slot_counts_sparse

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Share given to a bin that is empty on one side, so that PSI stays finite;
# the common choice of PSI implementations (about 1 in 10,000 rows).
PSI_SMOOTHING = 1e-4


def psi(expected: FloatArray, actual: FloatArray) -> FloatArray:
    """Return the Population Stability Index per row of two share arrays.

    Both arrays have shape (features, bins) and rows summing to 1. Empty
    bins get the share :data:`PSI_SMOOTHING` before the logarithm.
    """
    expected = np.maximum(expected, PSI_SMOOTHING)
    actual = np.maximum(actual, PSI_SMOOTHING)
    result: FloatArray = ((actual - expected) * np.log(actual / expected)).sum(
        axis=1
    )
    return result


@dataclasses.dataclass
class WindowVerdict:
    """PSI of every feature for one closed window."""

    rows: int
    scores: FloatArray
    drifted: list[int]


@dataclasses.dataclass
class Observation:
    """What one batch showed: range checks, and any windows it closed."""

    out_of_range: IntArray
    unexpected_missing: IntArray
    verdicts: list[WindowVerdict]


class DriftMonitor:
    """Drift windows of one model against its baseline; thread-safe."""

    def __init__(
        self, baseline: Baseline, threshold: float, window_rows: int
    ) -> None:
        self.baseline = baseline
        self.threshold = threshold
        self.window_rows = window_rows
        self._edges = baseline.counting_edges()
        self._expected = baseline.fractions
        self._train_has_nulls = baseline.counts[:, -1] > 0
        self._lock = threading.Lock()
        self._window = np.zeros_like(baseline.counts)
        self._rows = 0
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
        with self._lock:
            start = self._rows
        cuts = _window_cuts(start, rows, self.window_rows)
        parts = [self._slots(values[a:b]) for a, b in zip(cuts, cuts[1:])]
        slots = parts[0] if len(parts) == 1 else np.sum(parts, axis=0)
        verdicts = self._advance([drift_bins(part) for part in parts])
        missing = np.where(self._train_has_nulls, 0, slots[:, -1])
        return Observation(
            out_of_range=slots[:, 0] + slots[:, -2],
            unexpected_missing=missing,
            verdicts=verdicts,
        )

    def _slots(self, values: Any) -> IntArray:
        if isinstance(values, np.ndarray):
            return slot_counts(values, self._edges)
        return slot_counts_sparse(values, self._edges)

    def _advance(self, parts: list[IntArray]) -> list[WindowVerdict]:
        # Parts were cut against the row count read before binning; another
        # thread may have added rows since, so windows are closed by the
        # count under the lock, and a verdict can cover a few more rows.
        verdicts = []
        with self._lock:
            for part in parts:
                self._window += part
                self._rows += int(part[0].sum())
                if self._rows >= self.window_rows:
                    verdicts.append(self._close())
        return verdicts

    def _close(self) -> WindowVerdict:
        actual = self._window / self._rows
        scores = psi(self._expected, actual)
        order = np.argsort(-scores, kind="stable")
        drifted = [int(i) for i in order if scores[i] > self.threshold]
        verdict = WindowVerdict(rows=self._rows, scores=scores, drifted=drifted)
        self._window = np.zeros_like(self._window)
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
