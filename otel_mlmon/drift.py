"""Windows over live inputs and outputs, judged against the baseline.

Live rows are counted into the baseline's bins (see
:mod:`otel_mlmon.stats.binning`): numeric features, categorical features,
the model's predictions and its confidence. Windows tumble by row count
and, when ``window_seconds`` is set, by time: a window closes when it
reaches ``window_rows`` rows, or on the first call after its time slot
ends, whichever comes first. A batch that crosses a window's row limit is
split at the exact row, so verdicts do not depend on how traffic is
batched. Counting is the only work per call; the statistics run when a
window closes (see :mod:`otel_mlmon.drift_report`).

Memory is fixed by features x bins: the current window's counts, the
counts since the monitor started (read by the per-bin metric), and a
buffer of 64 pending single rows.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import operator
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from otel_mlmon.baseline import Baseline, CategoricalProfile
from otel_mlmon.drift_report import (
    CONFIDENCE_FEATURE,
    PREDICTION_FEATURE,
    DriftReport,
    DriftSettings,
    ScoreGroup,
    categorical_scores,
    judge,
    numeric_scores,
    thresholds_for,
    verdict_statistic,
)
from otel_mlmon.stats.binning import (
    SlotIndex,
    count_slots,
    drift_bins,
    slot_counts,
    slot_counts_sparse,
    slot_index,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_PENDING_ROWS = 64


@dataclasses.dataclass(slots=True)
class Observation:
    """What one batch showed: its counting slots, and any windows it closed.

    ``slots`` has shape (features, bins + 3), laid out as in
    :mod:`otel_mlmon.stats.binning`.
    """

    slots: IntArray | None
    reports: list[DriftReport]
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


@dataclasses.dataclass(slots=True)
class OutputBins:
    """Bin of each row's prediction and confidence, -1 where unknown."""

    prediction: IntArray | None = None
    confidence: IntArray | None = None


class _NumericOutput:
    """Bins of one numeric model output: quantile edges, open outer bins."""

    def __init__(self, profile: dict[str, Any]) -> None:
        self.edges = np.asarray(profile["edges"], dtype=np.float64)
        self.edge_list = self.edges.tolist()
        self.expected = np.array(
            [*profile["counts"], profile["missing"]], dtype=np.int64
        )
        self.low = float(profile["min"])
        self.high = float(profile["max"])
        self.std = float(profile["std"])

    @property
    def width(self) -> int:
        return int(self.expected.shape[0])

    def index(self, values: FloatArray) -> IntArray:
        """Return each value's bin; the last bin counts missing values."""
        index = np.searchsorted(self.edges, values, side="right")
        return np.where(np.isfinite(values), index, self.width - 1)

    def index_one(self, value: float) -> int:
        if not math.isfinite(value):
            return self.width - 1
        return bisect.bisect_right(self.edge_list, value)


class _LabelOutput:
    """Bins of label predictions: top labels, "other", unseen, missing."""

    def __init__(self, profile: dict[str, Any]) -> None:
        labels = [str(label) for label in profile["labels"]]
        self.position = {label: i for i, label in enumerate(labels)}
        self.expected = np.array(
            [*profile["counts"], profile.get("other", 0), 0, 0], dtype=np.int64
        )
        # Labels beyond the top ones were training labels: "other".
        self.other = len(labels)
        self.has_more = int(profile.get("other", 0)) > 0
        self._class_bins: tuple[Any, IntArray] | None = None

    @property
    def width(self) -> int:
        return int(self.expected.shape[0])

    def label_bin(self, label: Any) -> int:
        found = self.position.get(str(label))
        if found is not None:
            return found
        return self.other if self.has_more else self.other + 1

    def index(self, labels: Any) -> IntArray:
        array = np.asarray(labels)
        values, inverse = np.unique(array.astype(str), return_inverse=True)
        lookup = np.array([self.label_bin(v) for v in values], dtype=np.int64)
        return lookup[inverse.ravel()]

    def class_bins(self, classes: Any) -> IntArray:
        """Return the bin of each of a classifier's ``classes_``."""
        cached = self._class_bins
        if cached is None or cached[0] is not classes:
            bins = np.array([self.label_bin(c) for c in classes], np.int64)
            cached = (classes, bins)
            self._class_bins = cached
        return cached[1]


class _Categories:
    """Bins of the categorical features, padded to one width."""

    def __init__(self, profiles: tuple[CategoricalProfile, ...]) -> None:
        self.profiles = profiles
        self.names = tuple(p.name for p in profiles)
        self.width = max((len(p.counts) for p in profiles), default=0)
        self.expected = np.zeros((len(profiles), self.width), dtype=np.int64)
        for row, profile in enumerate(profiles):
            self.expected[row, : len(profile.counts)] = profile.counts
        self._lookups: list[tuple[Any, IntArray, int, int]] = []

    def index(self, frame: Any) -> IntArray | None:
        """Return the bin of every value, shape (rows, features).

        None when the frame lacks one of the categorical columns.
        """
        import pandas as pd

        if not self._lookups:
            # Built apart and published in one assignment, so that threads
            # making their first call at once never read a partial list.
            lookups = []
            for profile in self.profiles:
                known = list(profile.categories) + list(profile.known_other or ())
                bins = np.arange(len(known), dtype=np.int64)
                top = len(profile.categories)
                bins[top:] = top
                unseen = top + (1 if profile.known_other is not None else 0)
                lookups.append((pd.Index(known), bins, unseen, top + 2))
            self._lookups = lookups
        columns = {str(c): c for c in frame.columns}
        if not all(name in columns for name in self.names):
            return None
        index = np.empty((len(frame), len(self.profiles)), dtype=np.int64)
        for position, name in enumerate(self.names):
            known, bins, unseen, missing = self._lookups[position]
            column = frame[columns[name]]
            found = known.get_indexer(column.astype(str))
            index[:, position] = np.where(found >= 0, bins[found], unseen)
            index[column.isna().to_numpy(), position] = missing
        return index


class DriftMonitor:
    """Drift windows of one model against its baseline; thread-safe."""

    def __init__(
        self,
        baseline: Baseline,
        settings: DriftSettings | None = None,
        clock: Any = time.time,
    ) -> None:
        self.baseline = baseline
        self.settings = settings if settings is not None else DriftSettings()
        self.window_rows = self.settings.window_rows
        self._clock = clock

        self._edges = baseline.counting_edges()
        self._expected = baseline.counts
        self._no_train_nulls = (baseline.counts[:, -1] == 0).astype(np.int64)
        self._lock = threading.Lock()
        features = len(baseline.feature_names)
        self._window = np.zeros((features, self._edges.shape[1] + 2), np.int64)
        self._rows = 0
        # Single rows inside the training range wait here and are counted
        # in bulk, which costs far less than counting each on its own.
        self._pending = np.empty((_PENDING_ROWS, features))
        self._pending_rows = 0
        self._low = baseline.low.tolist()
        self._high = baseline.high.tolist()
        self._columns: dict[tuple[str, ...], IntArray | None] = {}
        self._identity = np.arange(features, dtype=np.int64)

        self.categories = _Categories(baseline.categorical)
        self._category_window = np.zeros_like(self.categories.expected)
        self.prediction = _output(baseline.predictions)
        self.confidence = _output(baseline.confidence)
        self._output_windows = [
            np.zeros(output.width if output is not None else 0, np.int64)
            for output in (self.prediction, self.confidence)
        ]
        self._totals = self._empty_totals()

        self._started = self._clock()
        seconds = self.settings.window_seconds
        self._grid_start = self._started
        self._window_end = self._started + seconds if seconds > 0 else math.inf
        self.last_report: DriftReport | None = None
        self.last_judged_report: DriftReport | None = None
        # Windows are numbered as they close, under the lock. The kept
        # reports are chosen by number, because the clock (wall time by
        # default) can step back.
        self._closed_windows = 0
        self._kept_number = 0
        self._kept_judged_number = 0
        self._thresholds: dict[tuple[tuple[str, ...], str], tuple[str, FloatArray]] = {}

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the baseline's numeric features, in slot order."""
        return self.baseline.feature_names

    @property
    def threshold(self) -> float:
        """PSI threshold, kept for callers of the PSI-only monitor."""
        return self.settings.psi_threshold

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

    def category_index(self, frame: Any) -> IntArray | None:
        """Return the categorical bins of a DataFrame's rows, if it has them."""
        if not self.categories.names:
            return None
        return self.categories.index(frame)

    def output_bins(
        self,
        labels: Any = None,
        values: Any = None,
        confidence: FloatArray | None = None,
        classes: Any = None,
        probabilities: Any = None,
    ) -> OutputBins:
        """Bin one call's outputs against the baseline's output profiles.

        Pass labels (``predict`` of a classifier), values (a regressor), or
        probabilities with the model's ``classes_`` (``predict_proba``).
        """
        bins = OutputBins()
        prediction = self.prediction
        if isinstance(prediction, _LabelOutput):
            if probabilities is not None and classes is not None:
                lookup = prediction.class_bins(classes)
                bins.prediction = lookup[np.asarray(probabilities).argmax(axis=1)]
            elif labels is not None:
                bins.prediction = prediction.index(labels)
        elif isinstance(prediction, _NumericOutput) and values is not None:
            array = np.asarray(values, dtype=np.float64).ravel()
            bins.prediction = prediction.index(array)
        if isinstance(self.confidence, _NumericOutput) and confidence is not None:
            if len(confidence) == 1:
                one = self.confidence.index_one(float(confidence[0]))
                bins.confidence = np.array([one], dtype=np.int64)
            else:
                bins.confidence = self.confidence.index(confidence)
        return bins

    def observe(
        self,
        values: Any,
        columns: IntArray,
        categories: IntArray | None = None,
        outputs: OutputBins | None = None,
    ) -> Observation:
        """Count a batch into the windows; close each window it ends.

        Args:
            values: Shape (rows, input features), dense or scipy.sparse.
            columns: Input column of each baseline feature, from
                :meth:`columns_for`.
            categories: Categorical bins, from :meth:`category_index`.
            outputs: Output bins, from :meth:`output_bins`.
        """
        if columns is not self._identity or values.shape[1] != len(columns):
            values = values[:, columns]
        rows = values.shape[0]
        timed = self._window_end != math.inf
        if rows == 1 and categories is None and not timed:
            if isinstance(values, np.ndarray):
                observation = self._observe_row(values, outputs)
                if observation is not None:
                    return observation
        slot_count = self._edges.shape[1] + 2
        index = None
        slots: IntArray | None = None
        if isinstance(values, np.ndarray):
            index = slot_index(values, self._edges)
            # A batch that closes windows is counted per window under the
            # lock, and its total is the sum of those counts, so counting
            # it here too would bin every row twice. The unlocked read of
            # the row count only picks the path, so a race costs time, not
            # counts.
            if self._rows + rows < self.window_rows:
                slots = count_slots(index, slot_count)
            flagged = bool(rows) and (
                bool(index.min() == 0) or bool(index.max() >= slot_count - 2)
            )
        else:
            slots = slot_counts_sparse(values, self._edges)
            flagged = True
        parts = _BatchParts(values, index, slots, categories, outputs)
        with self._lock:
            closed = self._close_on_time() if timed else []
            closed += self._add_batch(parts, rows)
        slots = parts.slots
        reports = self._judge(closed)
        if reports:
            self._keep(closed, reports)
        return Observation(slots, reports, self._no_train_nulls, flagged)

    def _observe_row(
        self, values: FloatArray, outputs: OutputBins | None
    ) -> Observation | None:
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
            if outputs is not None:
                self._count_outputs(outputs, 0, 1)
            if self._pending_rows == _PENDING_ROWS:
                self._count_pending()
            closed = (
                [self._close("rows")] if self._rows >= self.window_rows else []
            )
        reports = self._judge(closed) if closed else []
        if reports:
            self._keep(closed, reports)
        return Observation(None, reports, self._no_train_nulls, False)

    def _count_pending(self) -> None:
        if self._pending_rows:
            pending = self._pending[: self._pending_rows]
            self._window += slot_counts(pending, self._edges)
            self._pending_rows = 0

    def _count_outputs(self, outputs: OutputBins, start: int, end: int) -> None:
        for window, index in zip(
            self._output_windows, (outputs.prediction, outputs.confidence)
        ):
            if index is None or not len(window):
                continue
            if end - start == 1:
                position = int(index[start])
                if position >= 0:
                    window[position] += 1
            else:
                part = index[start:end]
                window += np.bincount(part[part >= 0], minlength=len(window))

    def _add_batch(self, parts: _BatchParts, rows: int) -> list[_ClosedWindow]:
        # Runs under the lock. The batch is cut at each window's last row
        # and the parts counted apart, so windows hold exactly window_rows
        # rows however traffic is batched.
        cuts = _window_cuts(self._rows, rows, self.window_rows)
        slot_count = self._edges.shape[1] + 2
        if len(cuts) > 2 and parts.index is not None:
            parts.by_window = _count_by_window(parts.index, cuts, slot_count)
            if parts.slots is None:
                parts.slots = parts.by_window.sum(axis=0)
        elif parts.slots is None:
            assert parts.index is not None
            parts.slots = count_slots(parts.index, slot_count)
        reports = []
        for number, (start, end) in enumerate(zip(cuts, cuts[1:])):
            self._window += parts.numeric(number, start, end, self._edges)
            if parts.categories is not None:
                self._category_window += _count_categories(
                    parts.categories[start:end], self.categories.width
                )
            if parts.outputs is not None:
                self._count_outputs(parts.outputs, start, end)
            self._rows += end - start
            if self._rows >= self.window_rows:
                reports.append(self._close("rows"))
        return reports

    def _close_on_time(self) -> list[_ClosedWindow]:
        now = self._clock()
        if now < self._window_end:
            return []
        seconds = self.settings.window_seconds
        slots = math.floor((now - self._grid_start) / seconds) + 1
        self._window_end = self._grid_start + slots * seconds
        if self._rows == 0 and self._pending_rows == 0:
            return []
        return [self._close("time")]

    def _close(self, closed_by: str) -> _ClosedWindow:
        """Take the window's counts and start a new window; runs locked."""
        self._count_pending()
        now = self._clock()
        self._closed_windows += 1
        closed = _ClosedWindow(
            number=self._closed_windows,
            numeric=drift_bins(self._window),
            categorical=self._category_window.copy(),
            outputs=[window.copy() for window in self._output_windows],
            rows=self._rows,
            started=self._started,
            ended=now,
            closed_by=closed_by,
        )
        self._totals = self._current_totals()
        self._window[:] = 0
        self._category_window[:] = 0
        for window in self._output_windows:
            window[:] = 0
        self._rows = 0
        self._started = now
        return closed

    def _judge(self, closed: list[_ClosedWindow]) -> list[DriftReport]:
        """Compute every statistic of closed windows and judge them.

        Runs outside the lock. The windows that one call closes are
        stacked, so the statistics run once over all of them.
        """
        if not closed:
            return []
        baseline = self.baseline
        groups: list[list[ScoreGroup]] = [[] for _ in closed]
        judged = [window.rows >= self.settings.min_rows for window in closed]
        if baseline.feature_names:
            scores = numeric_scores(
                self._expected,
                np.stack([window.numeric for window in closed]),
                baseline.inner_edges,
                baseline.low,
                baseline.high,
                baseline.std,
            )
            self._add_groups(groups, baseline.feature_names, "numeric", scores, judged)
        if self.categories.names:
            scores = categorical_scores(
                self.categories.expected,
                np.stack([window.categorical for window in closed]),
            )
            self._add_groups(groups, self.categories.names, "categorical", scores, judged)
        outputs = ((PREDICTION_FEATURE, self.prediction), (CONFIDENCE_FEATURE, self.confidence))
        for position, (name, output) in enumerate(outputs):
            if output is None:
                continue
            counts = np.stack([window.outputs[position] for window in closed])
            kind = "prediction" if name == PREDICTION_FEATURE else "confidence"
            seen = counts.any(axis=1)
            self._add_groups(
                groups, (name,), kind, _output_scores(output, counts), judged, seen
            )
        return [
            DriftReport(
                rows=window.rows,
                started=window.started,
                ended=window.ended,
                closed_by=window.closed_by,
                judged=judged[index],
                min_rows=self.settings.min_rows,
                groups=tuple(groups[index]),
            )
            for index, window in enumerate(closed)
        ]

    def _add_groups(
        self,
        groups: list[list[ScoreGroup]],
        names: tuple[str, ...],
        kind: str,
        scores: dict[str, FloatArray],
        judged: list[bool],
        seen: Any = None,
    ) -> None:
        key = (names, kind)
        cached = self._thresholds.get(key)
        if cached is None:
            statistic = verdict_statistic(self.settings, scores)
            cached = (statistic, thresholds_for(names, statistic, self.settings))
            self._thresholds[key] = cached
        statistic, thresholds = cached
        for index, window_groups in enumerate(groups):
            if seen is not None and not seen[index]:
                continue
            one = {key: value[index] for key, value in scores.items()}
            window_groups.append(
                judge(names, kind, one, thresholds, statistic, judged[index])
            )

    def close_window(self) -> DriftReport | None:
        """Close the current window now, as at the end of an offline check.

        Returns None when the window has no rows.
        """
        with self._lock:
            if self._rows == 0 and self._pending_rows == 0:
                return None
            closed = self._close("end")
        (report,) = self._judge([closed])
        self._keep([closed], [report])
        return report

    def _keep(
        self, closed: list[_ClosedWindow], reports: list[DriftReport]
    ) -> None:
        # Threads judge the windows they closed outside the lock, so an
        # older window's report can arrive last. It must not replace a newer.
        judged = [
            (window.number, report)
            for window, report in zip(closed, reports)
            if report.judged
        ]
        with self._lock:
            if closed[-1].number > self._kept_number:
                self._kept_number = closed[-1].number
                self.last_report = reports[-1]
            if judged and judged[-1][0] > self._kept_judged_number:
                self._kept_judged_number = judged[-1][0]
                self.last_judged_report = judged[-1][1]

    def _empty_totals(self) -> list[IntArray]:
        return [
            np.zeros((len(self.feature_names), self._edges.shape[1]), np.int64),
            np.zeros_like(self.categories.expected),
        ]

    def _current_totals(self) -> list[IntArray]:
        return [
            self._totals[0] + drift_bins(self._window),
            self._totals[1] + self._category_window,
        ]

    def cumulative_counts(self) -> tuple[IntArray, IntArray]:
        """Return live counts per bin since the monitor started.

        Numeric features have shape (features, bins + 1), the missing bin
        last; categorical ones the padded layout of the baseline profiles.
        The pending single rows are counted first, so the result is exact.
        """
        with self._lock:
            self._count_pending()
            numeric, categorical = self._current_totals()
        return numeric, categorical


@dataclasses.dataclass(slots=True)
class _ClosedWindow:
    """Counts of a window just closed, waiting for its statistics."""

    number: int
    numeric: IntArray
    categorical: IntArray
    outputs: list[IntArray]
    rows: int
    started: float
    ended: float
    closed_by: str


@dataclasses.dataclass(slots=True)
class _BatchParts:
    values: Any
    index: SlotIndex | None
    slots: IntArray | None
    categories: IntArray | None
    outputs: OutputBins | None
    by_window: IntArray | None = None

    def numeric(
        self, number: int, start: int, end: int, edges: FloatArray
    ) -> IntArray:
        """Return the counting slots of rows ``start:end``, window ``number``."""
        if start == 0 and end == self.slots_rows and self.slots is not None:
            return self.slots
        if self.by_window is not None:
            window: IntArray = self.by_window[number]
            return window
        return slot_counts_sparse(self.values[start:end], edges)

    @property
    def slots_rows(self) -> int:
        return int(self.values.shape[0])


def _count_by_window(index: SlotIndex, cuts: list[int], slots: int) -> IntArray:
    """Count slot numbers per window in one pass: shape (windows, features, slots)."""
    rows, features = index.shape
    windows = len(cuts) - 1
    window_of_row = np.repeat(np.arange(windows, dtype=np.int64), np.diff(cuts))
    flat = index + (np.arange(features, dtype=np.int64) * slots)[None, :]
    flat += (window_of_row * (features * slots))[:, None]
    counts = np.bincount(flat.ravel(), minlength=windows * features * slots)
    shaped: IntArray = counts.reshape(windows, features, slots)
    return shaped


def _count_categories(index: IntArray, width: int) -> IntArray:
    features = index.shape[1]
    flat = index + np.arange(features, dtype=np.int64) * width
    counts = np.bincount(flat.ravel(), minlength=features * width)
    shaped: IntArray = counts.reshape(features, width)
    return shaped


def _output(profile: dict[str, Any] | None) -> _NumericOutput | _LabelOutput | None:
    if profile is None:
        return None
    if profile.get("kind") == "numeric":
        return _NumericOutput(profile)
    return _LabelOutput(profile)


def _output_scores(
    output: _NumericOutput | _LabelOutput, counts: IntArray
) -> dict[str, FloatArray]:
    """Score stacked windows of one output; each score has shape (windows, 1)."""
    expected = output.expected[None, :]
    actual = counts[:, None, :]
    if isinstance(output, _LabelOutput):
        scores = categorical_scores(expected, actual)
    else:
        scores = numeric_scores(
            expected,
            actual,
            output.edges[None, :],
            np.array([output.low]),
            np.array([output.high]),
            np.array([output.std]),
        )
    return scores


def _window_cuts(start: int, rows: int, window: int) -> list[int]:
    cuts = [0]
    position = window - start
    while position < rows:
        cuts.append(position)
        position += window
    cuts.append(rows)
    return cuts
