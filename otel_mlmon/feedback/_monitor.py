"""The feedback loop of served models: predictions kept for later labels.

A :class:`FeedbackRecorder` owns one :class:`PredictionStore`. The
instrumentation hands it each traced call as one :class:`PendingCall`, which
costs the request a lock and a list append. A background thread writes the
queued calls in one transaction about every half second, or sooner once
enough rows are queued. The queue is bounded by rows: when it is full, new
calls are dropped and counted, so a slow disk never blocks a prediction.

Labels go through :func:`record_feedback` (or the Flask blueprint). A label
first flushes the queue, so a label sent right after its prediction still
finds it. Matched labels update a sliding :class:`QualityWindow` per model,
whose scores are recorded on the accuracy, precision, recall, MAE and RMSE
gauges.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from otel_mlmon import semconv
from otel_mlmon.feedback._codec import ModelKind
from otel_mlmon.feedback._instruments import (
    FeedbackInstruments,
    feedback_instruments_for,
)
from otel_mlmon.feedback.errors import (
    FeedbackStoreError,
    InvalidLabelError,
    InvalidRecordError,
)
from otel_mlmon.feedback.metrics import QualityWindow
from otel_mlmon.feedback.records import (
    LabelOutcome,
    LabelStatus,
    PredictionRecord,
    ReviewReason,
)
from otel_mlmon.feedback.store import PredictionStore

_logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.5
"""Maximum seconds a queued prediction waits for the background write."""

MAX_PENDING_ROWS = 100_000
"""Maximum rows in the queue. Calls that would exceed it are dropped and counted."""

_EARLY_FLUSH_ROWS = 2000
_DROP_LOG_INTERVAL_S = 60.0
INVALID_OUTCOME = "invalid"
"""``ml.feedback.outcome`` of a label rejected for its type."""


@dataclasses.dataclass(slots=True)
class PendingCall:
    """One traced call waiting to be written to the store.

    Attributes:
        prediction_id: Id of the call; row ``i`` is stored as ``{id}-{i}``.
        predicted: One prediction per row: a class, a number or a list.
        confidence: Confidence per row, or None when the output has none.
        reviews: Rows to put in the review queue, as (row, reason, input
            row or None).
    """

    prediction_id: str
    model_name: str
    model_version: str
    model_kind: ModelKind | None
    created_at: float
    predicted: Sequence[Any]
    confidence: Sequence[float] | None
    trace_id: str | None
    span_id: str | None
    reviews: Sequence[tuple[int, ReviewReason, Any]] = ()

    def records(self) -> list[PredictionRecord]:
        """Return one store record per row."""
        # NOTE: building, validating and inserting a row costs about 40 us of
        # CPU in the writer thread (measured on a 2-CPU build machine), so a
        # 10,000-row call costs about 0.4 s of background CPU and GIL time.
        inputs = {row: values for row, _, values in self.reviews if values}
        confidence = self.confidence
        return [
            PredictionRecord(
                prediction_id=f"{self.prediction_id}-{row}",
                model_name=self.model_name,
                model_version=self.model_version,
                predicted=value,
                confidence=_probability(confidence[row]) if confidence else None,
                trace_id=self.trace_id,
                span_id=self.span_id,
                created_at=self.created_at,
                input_row=inputs.get(row),
                model_kind=self.model_kind,
            )
            for row, value in enumerate(self.predicted)
        ]


def _probability(value: float) -> float | None:
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else None


def row_predictions(
    operation: str, result: Any, classes: Any, probabilities: Any, rows: int
) -> list[Any] | None:
    """Return one prediction per row of a call's output, or None.

    Probability outputs give the class of the highest probability, as the
    confidence does. Other outputs must have ``rows`` entries along their
    first axis.
    """
    if probabilities is not None and classes is not None:
        best = np.asarray(probabilities).argmax(axis=1)
        labels: list[Any] = np.asarray(classes)[best].tolist()
        return labels
    if operation in ("predict_proba", "predict_log_proba", "decision_function"):
        return None
    values = np.asarray(result)
    if values.ndim == 0 or values.shape[0] != rows:
        return None
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    predicted: list[Any] = values.tolist()
    return predicted


class _ModelQuality:
    """The label window and instruments of one model version."""

    def __init__(
        self,
        identity: dict[str, str],
        instruments: FeedbackInstruments,
        window_labels: int,
    ) -> None:
        self.identity = identity
        self.instruments = instruments
        self.window_labels = window_labels
        self.windows: dict[ModelKind, QualityWindow] = {}
        self._lock = threading.Lock()

    def window(self, kind: ModelKind) -> QualityWindow:
        with self._lock:
            found = self.windows.get(kind)
            if found is None:
                found = QualityWindow(kind, max_count=self.window_labels)
                self.windows[kind] = found
            return found

    def record_quality(self, kind: ModelKind) -> None:
        """Set the quality gauges from the window's current scores."""
        quality = self.window(kind).quality()
        instruments = self.instruments
        if kind == "regression":
            mae = getattr(quality, "mae", None)
            rmse = getattr(quality, "rmse", None)
            if mae is not None and rmse is not None:
                instruments.mae.set(mae, self.identity)
                instruments.rmse.set(rmse, self.identity)
            return
        accuracy = getattr(quality, "accuracy", None)
        if accuracy is not None:
            instruments.accuracy.set(accuracy, self.identity)
        for name, scores in getattr(quality, "classes", {}).items():
            attributes = {**self.identity, semconv.ML_CLASS_NAME: name}
            if scores.precision is not None:
                instruments.precision.set(scores.precision, attributes)
            if scores.recall is not None:
                instruments.recall.set(scores.recall, attributes)


class FeedbackRecorder:
    """Queues predictions for a store, and turns labels into metrics.

    Thread-safe. :meth:`submit` never blocks on the disk: it appends to a
    bounded queue that a daemon thread writes. Writes that fail are
    logged (at most once a minute) and counted on
    ``ml.feedback.dropped_predictions``; the predictions go on.

    Args:
        store: Where predictions and labels are kept.
        flush_interval_s: Maximum seconds a queued call waits for its write.
        max_pending_rows: Maximum rows queued; calls beyond it are dropped.
    """

    def __init__(
        self,
        store: PredictionStore,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        max_pending_rows: int = MAX_PENDING_ROWS,
    ) -> None:
        self.store = store
        self._flush_interval_s = flush_interval_s
        self._max_pending_rows = max_pending_rows
        self._models: dict[tuple[str, str], _ModelQuality] = {}
        self._models_lock = threading.Lock()
        self._default_instruments = feedback_instruments_for(None)
        self._reset_after_fork()
        self._closed = False
        self.dropped_rows = 0
        self.written_rows = 0
        self._last_drop_log = -math.inf
        os.register_at_fork(after_in_child=self._reset_after_fork)

    def _reset_after_fork(self) -> None:
        # A lock held by another thread at fork time stays held forever in
        # the child, and the writer thread does not exist there.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._pending: list[PendingCall] = []
        self._pending_rows = 0
        self._thread: threading.Thread | None = None

    def register_model(
        self,
        name: str,
        version: str,
        instruments: FeedbackInstruments,
        window_labels: int,
    ) -> None:
        """Set a model's instruments and window, seeded from stored labels."""
        quality = _ModelQuality(
            {semconv.ML_MODEL_NAME: name, semconv.ML_MODEL_VERSION: version},
            instruments,
            window_labels,
        )
        with self._models_lock:
            if not self._models:
                self._default_instruments = instruments
            self._models[(name, version)] = quality
        try:
            pairs = self.store.labelled_pairs(name, version, limit=window_labels)
        except FeedbackStoreError as error:
            _logger.warning(
                "Failed to read stored labels of model %s version %s; its "
                "quality window starts empty: %s",
                name,
                version,
                error,
            )
            return
        for kind in ("classification", "regression"):
            of_kind = [pair for pair in pairs if pair.model_kind == kind]
            if of_kind:
                quality.window(kind).add_pairs(of_kind)

    def submit(self, call: PendingCall) -> None:
        """Queue a call for the background write, or drop it if full."""
        rows = len(call.predicted)
        with self._lock:
            if self._closed or self._pending_rows + rows > self._max_pending_rows:
                self._count_dropped(call.model_name, call.model_version, rows)
                return
            self._pending.append(call)
            self._pending_rows += rows
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="otel_mlmon-feedback", daemon=True
                )
                self._thread.start()
            if self._pending_rows >= _EARLY_FLUSH_ROWS:
                self._wake.notify()

    @property
    def pending_rows(self) -> int:
        """Rows queued and not yet written."""
        return self._pending_rows

    def flush(self) -> None:
        """Write every queued call now, in the calling thread."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
                self._pending_rows = 0
            if batch:
                self._write(batch)

    def close(self) -> None:
        """Write what is queued, stop the thread and close the store."""
        with self._lock:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self.flush()
        self.store.close()

    def match(self, prediction_id: str, actual: object) -> LabelOutcome:
        """Join a label to its stored prediction, without recording metrics.

        Raises:
            InvalidLabelError: The label does not fit the prediction.
            FeedbackStoreError: SQLite failed.
        """
        # The writer thread zeroes the queue's row count before its
        # transaction commits, so an empty queue can still hide rows in
        # flight. flush() waits for that write on the write lock.
        self.flush()
        return self.store.record_label(prediction_id, actual)

    def observe(self, outcome: LabelOutcome | None) -> None:
        """Count a label by outcome and update the model's quality gauges.

        None stands for a label rejected as invalid.
        """
        if outcome is None or outcome.status is not LabelStatus.MATCHED:
            status = INVALID_OUTCOME if outcome is None else outcome.status.value
            self._default_instruments.labels.add(
                1, {semconv.ML_FEEDBACK_OUTCOME: status}
            )
            return
        quality = self._quality_of(outcome.model_name, outcome.model_version)
        attributes = {**quality.identity, semconv.ML_FEEDBACK_OUTCOME: "matched"}
        quality.instruments.labels.add(1, attributes)
        if outcome.delay_s is not None:
            quality.instruments.label_delay.record(outcome.delay_s, quality.identity)
        kind = outcome.model_kind
        if kind is None:
            return
        quality.window(kind).add(
            outcome.predicted, outcome.actual, prediction_id=outcome.prediction_id
        )
        quality.record_quality(kind)

    def quality(self, name: str, version: str, kind: ModelKind) -> Any:
        """Return the current scores of a model's window."""
        return self._quality_of(name, version).window(kind).quality()

    def _quality_of(self, name: str | None, version: str | None) -> _ModelQuality:
        key = (name or "unknown", version or "unknown")
        with self._models_lock:
            return self._models.get(key) or self._add_unregistered(key)

    def _add_unregistered(self, key: tuple[str, str]) -> _ModelQuality:
        # Labels of a model that this process never wrapped, such as one
        # served by another process on the same file. Called with the lock.
        found = _ModelQuality(
            {semconv.ML_MODEL_NAME: key[0], semconv.ML_MODEL_VERSION: key[1]},
            self._default_instruments,
            1000,
        )
        self._models[key] = found
        return found

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._closed and self._pending_rows < _EARLY_FLUSH_ROWS:
                    self._wake.wait(self._flush_interval_s)
                closed = self._closed
            try:
                self.flush()
            except Exception:  # pylint: disable=broad-except
                _logger.exception("Feedback writer failed; it keeps running")
            if closed:
                return

    def _write(self, batch: list[PendingCall]) -> None:
        try:
            records = [record for call in batch for record in call.records()]
            self.store.add_predictions(records)
        except InvalidRecordError:
            # One invalid output fails the whole transaction, so the calls
            # are retried one by one and only the invalid ones are dropped.
            for call in batch:
                self._write_one(call)
            return
        except FeedbackStoreError as error:
            for call in batch:
                self._count_dropped(
                    call.model_name, call.model_version, len(call.predicted), error
                )
            return
        self.written_rows += len(records)
        self._write_reviews(batch)

    def _write_one(self, call: PendingCall) -> None:
        try:
            self.store.add_predictions(call.records())
        except (InvalidRecordError, FeedbackStoreError) as error:
            self._count_dropped(
                call.model_name, call.model_version, len(call.predicted), error
            )
            return
        self.written_rows += len(call.predicted)
        self._write_reviews([call])

    def _write_reviews(self, batch: list[PendingCall]) -> None:
        for call in batch:
            for row, reason, _ in call.reviews:
                try:
                    self.store.review_add(
                        f"{call.prediction_id}-{row}",
                        reason,
                        created_at=call.created_at,
                    )
                except FeedbackStoreError as error:
                    self._log_drop(error)
                    return

    def _count_dropped(
        self,
        name: str,
        version: str,
        rows: int,
        error: BaseException | None = None,
    ) -> None:
        self.dropped_rows += rows
        quality = self._models.get((name, version))
        instruments = quality.instruments if quality else self._default_instruments
        identity = quality.identity if quality else {}
        instruments.dropped.add(rows, identity)
        self._log_drop(error)

    def _log_drop(self, error: BaseException | None) -> None:
        now = time.monotonic()
        if now - self._last_drop_log < _DROP_LOG_INTERVAL_S:
            return
        self._last_drop_log = now
        reason = str(error) if error is not None else (
            f"the queue holds {self._max_pending_rows} rows at most"
        )
        _logger.warning(
            "Predictions of %s were not stored for feedback, %d rows so far "
            "(logged at most once a minute): %s",
            self.store.path,
            self.dropped_rows,
            reason,
        )


_recorders: dict[str, FeedbackRecorder] = {}
_registry_lock = threading.Lock()


def open_recorder(
    store: PredictionStore | str | os.PathLike[str], model_name: str
) -> FeedbackRecorder | None:
    """Return the recorder of a store or path, opening it on first use.

    Models configured with the same path share one store and one writer
    thread. A file that cannot be used (read-only, corrupt, in a missing
    directory) is logged as an error naming the file and the fix, and
    None is returned: the model then serves predictions without feedback.
    """
    with _registry_lock:
        if isinstance(store, PredictionStore):
            key = str(store.path.resolve())
            found = _recorders.get(key)
            if found is None or found.store is not store:
                found = FeedbackRecorder(store)
                _recorders[key] = found
            return found
        key = str(Path(store).resolve())
        found = _recorders.get(key)
        if found is not None:
            return found
        try:
            opened = PredictionStore(store)
        except (FeedbackStoreError, ValueError) as error:
            _logger.error(
                "Feedback is off for model %s, which serves predictions "
                "without it: %s",
                model_name,
                error,
            )
            return None
        found = FeedbackRecorder(opened)
        _recorders[key] = found
        return found


def active_recorders() -> list[FeedbackRecorder]:
    """Return the recorders opened in this process, oldest first."""
    with _registry_lock:
        return list(_recorders.values())


def close_recorder(recorder: FeedbackRecorder) -> None:
    """Flush and close one recorder, so that its path opens afresh next time."""
    with _registry_lock:
        for key, found in list(_recorders.items()):
            if found is recorder:
                del _recorders[key]
    recorder.close()


def close_recorders() -> None:
    """Flush and close every recorder; models then store nothing more."""
    with _registry_lock:
        recorders = list(_recorders.values())
        _recorders.clear()
    for recorder in recorders:
        try:
            recorder.close()
        except FeedbackStoreError as error:
            _logger.warning("Failed to flush feedback store: %s", error)


atexit.register(close_recorders)


def record_feedback(prediction_id: str, actual: object) -> LabelOutcome:
    """Join a ground-truth label to the prediction it belongs to.

    Every feedback store opened in this process is searched. A label for an
    unknown or expired id is counted on ``ml.feedback.labels`` and its
    outcome returned; it is not an error.

    Args:
        prediction_id: A row's id, ``{ml.prediction.id}-{row}``, as
            :func:`otel_mlmon.last_prediction_ids` returns it.
        actual: The true class of a classifier, or value of a regressor.

    Raises:
        InvalidLabelError: The label's type does not fit the model (a
            string for a regressor, say); nothing is stored.
        FeedbackStoreError: No feedback store is configured, or SQLite
            failed.
    """
    recorders = active_recorders()
    if not recorders:
        raise FeedbackStoreError(
            "No feedback store is configured: pass feedback_store= to "
            "wrap_model or set OTEL_MLMON_FEEDBACK_DB to a SQLite file path"
        )
    outcome: LabelOutcome | None = None
    for recorder in recorders:
        try:
            outcome = recorder.match(prediction_id, actual)
        except InvalidLabelError:
            recorder.observe(None)
            raise
        if outcome.status is not LabelStatus.UNKNOWN:
            recorder.observe(outcome)
            return outcome
    assert outcome is not None
    recorders[0].observe(outcome)
    return outcome
