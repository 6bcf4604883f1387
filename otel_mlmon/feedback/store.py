"""A bounded store of predictions, their ground-truth labels and a review queue.

The store is one SQLite file in WAL mode, and any number of threads and
processes may write to it at once. Each write is one ``BEGIN IMMEDIATE``
transaction, so writers queue on SQLite's lock for up to the busy timeout.
A committed batch survives a crash of the process that wrote it.

Retention keeps the file bounded. Every ``prune_interval`` inserted rows, a
process deletes predictions older than ``max_age_s``, the oldest beyond
``max_rows``, and the oldest beyond ``max_bytes`` of pages in use. Deleted
pages are reused by later inserts, so the file stops growing once the
limits are reached. Between prunes, each writing process can add up to
``prune_interval`` rows beyond the limits.

A label for a pruned prediction is reported as expired, not unknown: the
store remembers a 64-bit hash of each of the most recently pruned ids, up
to ``max_pruned_ids``. Older pruned ids are forgotten, and their labels
count as unknown.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from otel_mlmon.feedback import _export, _sqlite
from otel_mlmon.feedback._labels import match_label, select_labelled_pairs
from otel_mlmon.feedback._retention import Retention, prune, used_bytes
from otel_mlmon.feedback._reviews import insert_review, resolve_review, select_reviews
from otel_mlmon.feedback._rows import (
    prediction_row,
    validate_reason,
    validate_status,
    validate_time,
)
from otel_mlmon.feedback.errors import FeedbackStoreError
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

if TYPE_CHECKING:
    from typing_extensions import Self

_logger = logging.getLogger(__name__)

_INSERT_PREDICTION = (
    "INSERT INTO predictions (prediction_id, model_name, model_version,"
    " created_at, predicted, model_kind, confidence, trace_id, span_id,"
    " input_row) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (prediction_id) DO NOTHING"
)
_EXPORT_PAGE_ROWS = 1000


class PredictionStore:
    """Predictions joined to later labels, with retention and a review queue.

    Safe to share between threads. Each process opens its own store on the
    same path; a store inherited across ``fork`` opens new connections in
    the child. Methods raise :class:`FeedbackStoreError` when SQLite fails,
    for example when a lock is not granted within the busy timeout.

    Args:
        path: The SQLite file; it and its directory must be writable.
        max_rows: Maximum predictions kept, and separately review items.
        max_age_s: Maximum age of a prediction, in seconds. A label for an
            older prediction is reported as expired.
        max_bytes: Maximum bytes of database pages in use, or None for no
            limit beyond ``max_rows``. The WAL file adds a quarter of it,
            between 256 KiB and 4 MiB (4 MiB when None).
        max_pruned_ids: Maximum pruned ids remembered to report late labels
            as expired; ``max_rows`` by default. They take at most an
            eighth of ``max_bytes``, which may lower the number.
        prune_interval: Rows a process inserts between two prunes.
        busy_timeout_s: Maximum time a call waits for SQLite's write lock.
        verify: Run SQLite's ``quick_check`` at open, which reads the whole
            file, to find corruption before a write hits it.
        clock: Source of the current time in seconds since the Unix epoch.

    Raises:
        FeedbackStoreError: The file is read-only, cannot be created, is
            corrupt, or belongs to another application.
        ValueError: A limit is out of range.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_rows: int = 100_000,
        max_age_s: float = 30 * 24 * 3600.0,
        max_bytes: int | None = 256 * 1024 * 1024,
        max_pruned_ids: int | None = None,
        prune_interval: int = 1000,
        busy_timeout_s: float = 10.0,
        verify: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = _validate_path(path)
        self._retention = Retention(
            max_rows=max_rows,
            max_age_s=max_age_s,
            max_bytes=max_bytes,
            max_pruned_ids=max_rows if max_pruned_ids is None else max_pruned_ids,
        )
        if prune_interval < 1:
            raise ValueError(f"prune_interval must be at least 1, got {prune_interval}")
        if not math.isfinite(busy_timeout_s) or busy_timeout_s < 0:
            raise ValueError(
                f"busy_timeout_s must be 0 or more seconds, got {busy_timeout_s}"
            )
        self._prune_interval = prune_interval
        self._clock = clock
        wal_limit_bytes = self._retention.wal_limit_bytes
        _sqlite.initialize(self._path, busy_timeout_s, wal_limit_bytes, verify)
        self._pool = _sqlite.ConnectionPool(self._path, busy_timeout_s, wal_limit_bytes)
        self._prune_lock = threading.Lock()
        self._inserted_since_prune = 0
        self._prune_quietly()
        _logger.debug("Opened feedback store %s", self._path)

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._path

    def close(self) -> None:
        """Close the store's connections; later calls raise."""
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PredictionStore({str(self._path)!r})"

    def add_predictions(self, records: Iterable[PredictionRecord]) -> int:
        """Insert predictions in one transaction and return rows inserted.

        A record whose ``prediction_id`` is already stored is skipped, so
        retrying a batch inserts nothing twice. Every record is validated
        before any is written.

        Raises:
            InvalidRecordError: A record has an invalid field; the message
                names its prediction id and field, and nothing is written.
            FeedbackStoreError: SQLite failed; nothing is written.
        """
        now = self._clock()
        rows = [prediction_row(record, now) for record in records]
        if not rows:
            return 0
        with self._transaction("insert predictions") as conn:
            before = conn.total_changes
            conn.executemany(_INSERT_PREDICTION, rows)
            inserted = conn.total_changes - before
        if inserted < len(rows):
            _logger.debug(
                "Skipped %d already stored prediction ids in %s",
                len(rows) - inserted,
                self._path,
            )
        self._count_inserts(inserted)
        return inserted

    def record_label(
        self, prediction_id: str, actual: object, received_at: float | None = None
    ) -> LabelOutcome:
        """Join a ground-truth label to its stored prediction.

        A second label for the same prediction replaces the first. Unknown
        and expired ids return their status, and their labels are neither
        validated nor stored. An id that is not a string is unknown.

        Args:
            prediction_id: Id of the prediction the label belongs to.
            actual: The label. A classifier's label must have the type of
                its classes, and a regressor's label must be a number.
            received_at: Time the label arrived; now by default.

        Raises:
            InvalidLabelError: The prediction is stored and the label does
                not fit its model kind; nothing is written.
            FeedbackStoreError: SQLite failed.
        """
        if not isinstance(prediction_id, str):
            return LabelOutcome(LabelStatus.UNKNOWN, str(prediction_id))
        now = self._clock()
        received = now if received_at is None else validate_time(received_at)
        oldest_allowed = now - self._retention.max_age_s
        with self._transaction("record a label") as conn:
            return match_label(conn, prediction_id, actual, received, oldest_allowed)

    def labelled_pairs(
        self,
        model_name: str,
        model_version: str | None = None,
        *,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[LabelledPair]:
        """Return a model's labelled predictions, oldest label first.

        Args:
            model_name: Model whose predictions to return.
            model_version: Only this version; all versions if None.
            since: Only labels received at or after this time.
            limit: Only the most recent ``limit`` labels.
        """
        with self._connection("read labels") as conn:
            return select_labelled_pairs(conn, model_name, model_version, since, limit)

    def review_add(
        self,
        prediction_id: str,
        reason: ReviewReason | str,
        *,
        created_at: float | None = None,
    ) -> int:
        """Put a prediction in the review queue and return the item's id.

        The prediction need not be stored yet. Adding the same prediction
        for the same reason again returns the existing item's id.

        Raises:
            ValueError: ``prediction_id`` is empty, or ``reason`` is not
                "low_confidence" or "drift".
        """
        if not isinstance(prediction_id, str) or not prediction_id:
            raise ValueError(
                f"prediction_id must be a non-empty string, got "
                f"{type(prediction_id).__name__}"
            )
        reason_value = validate_reason(reason)
        created = self._clock() if created_at is None else validate_time(created_at)
        with self._transaction("add a review item") as conn:
            return insert_review(conn, prediction_id, reason_value, created)

    def review_list(
        self,
        status: ReviewStatus | str | None = ReviewStatus.OPEN,
        limit: int = 100,
        *,
        after_id: int = 0,
    ) -> list[ReviewItem]:
        """Return review items in the order they were added.

        Args:
            status: "open", "resolved", or None for both.
            limit: Maximum items returned.
            after_id: Only items with a larger ``review_id``; pass the last
                id of the previous page to read the next one.
        """
        status_value = None if status is None else validate_status(status)
        with self._connection("list review items") as conn:
            return select_reviews(conn, status_value, limit, after_id)

    def review_resolve(
        self, review_id: int, label: object, *, resolved_at: float | None = None
    ) -> LabelOutcome:
        """Resolve a review item with a label, and record it as feedback.

        Both happen in one transaction. Resolving an item again replaces
        its label. When the prediction is unknown or expired, the item is
        still resolved, and the returned status gives the reason no
        feedback was recorded.

        Raises:
            ReviewNotFoundError: No item has this id; it may have been
                pruned.
            InvalidLabelError: The label does not fit the model kind, or is
                missing; nothing is written.
        """
        now = self._clock()
        resolved = now if resolved_at is None else validate_time(resolved_at)
        oldest_allowed = now - self._retention.max_age_s
        with self._transaction("resolve a review item") as conn:
            return resolve_review(
                conn, review_id, label, resolved, oldest_allowed, self._path
            )

    def review_export(
        self,
        destination: str | os.PathLike[str] | IO[str],
        format: str = "csv",
        *,
        status: ReviewStatus | str | None = None,
    ) -> int:
        """Write review items to a CSV or JSON Lines file; return items written.

        The columns are the fields of :class:`ReviewItem`; see
        :func:`read_review_export` for the encoding.

        Args:
            destination: A path, or a text file opened with ``newline=""``.
            format: "csv" or "jsonl".
            status: "open", "resolved", or None for all items.

        Raises:
            ValueError: The format is not "csv" or "jsonl".
            OSError: The destination cannot be written.
        """
        writer_format = _export.validate_format(format)
        items = self._iter_reviews(status)
        if isinstance(destination, (str, os.PathLike)):
            with open(destination, "w", newline="", encoding="utf-8") as out:
                return _export.write_items(items, out, writer_format)
        return _export.write_items(items, destination, writer_format)

    def prune(self) -> int:
        """Apply the retention limits now; return predictions deleted."""
        with self._transaction("prune") as conn:
            return prune(conn, self._retention, self._clock())

    def counts(self) -> StoreCounts:
        """Return the number of rows in each table."""
        with self._connection("count rows") as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM predictions),"
                " (SELECT count(*) FROM labels),"
                " (SELECT count(*) FROM review_queue WHERE status = 'open'),"
                " (SELECT count(*) FROM review_queue WHERE status = 'resolved'),"
                " (SELECT count(*) FROM pruned_ids)"
            ).fetchone()
        return StoreCounts(*(int(value) for value in row))

    def used_bytes(self) -> int:
        """Return the bytes of database pages in use, free pages excluded."""
        with self._connection("read the page count") as conn:
            return used_bytes(conn)

    def file_size_bytes(self) -> int:
        """Return the size of the database file plus its WAL file."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += os.path.getsize(f"{self._path}{suffix}")
        return total

    def _iter_reviews(self, status: ReviewStatus | str | None) -> Iterator[ReviewItem]:
        # Pages keep memory flat; items added during the export appear in it
        # when their ids are above the current page.
        after_id = 0
        while True:
            page = self.review_list(status, _EXPORT_PAGE_ROWS, after_id=after_id)
            yield from page
            if len(page) < _EXPORT_PAGE_ROWS:
                return
            after_id = page[-1].review_id

    def _count_inserts(self, inserted: int) -> None:
        with self._prune_lock:
            self._inserted_since_prune += inserted
            due = self._inserted_since_prune >= self._prune_interval
            if due:
                self._inserted_since_prune = 0
        if due:
            self._prune_quietly()

    def _prune_quietly(self) -> None:
        # The rows are committed, so a failed prune only delays retention
        # until the next interval.
        try:
            self.prune()
        except FeedbackStoreError as error:
            _logger.warning(
                "Failed to prune feedback store; retrying after %d more inserts: %s",
                self._prune_interval,
                error,
            )

    @contextlib.contextmanager
    def _connection(self, action: str) -> Iterator[sqlite3.Connection]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except sqlite3.Error as error:
            raise _sqlite.store_error(self._path, error, action) from error

    @contextlib.contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._connection(action) as conn, _sqlite.write_transaction(conn):
            yield conn


def _validate_path(path: str | os.PathLike[str]) -> Path:
    text = os.fspath(path)
    if not isinstance(text, str) or text in ("", ":memory:"):
        raise ValueError(
            f"PredictionStore needs the path of a database file, got {text!r}; "
            f"an in-memory database cannot be shared between processes"
        )
    return Path(text)
