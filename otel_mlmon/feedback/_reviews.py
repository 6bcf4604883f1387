"""Review-queue statements, run on a connection lent by the store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from otel_mlmon.feedback._codec import dump_json, validate_label
from otel_mlmon.feedback._labels import match_label
from otel_mlmon.feedback._rows import review_item
from otel_mlmon.feedback.errors import ReviewNotFoundError
from otel_mlmon.feedback.records import LabelOutcome, LabelStatus, ReviewItem

_SELECT_REVIEWS = (
    "SELECT r.review_id, r.prediction_id, r.reason, r.status, r.created_at,"
    " r.resolved_at, r.resolved_label, p.model_name, p.model_version,"
    " p.predicted, p.confidence, p.trace_id, p.span_id, p.input_row,"
    " p.created_at FROM review_queue AS r"
    " LEFT JOIN predictions AS p USING (prediction_id)"
    " WHERE r.review_id > ? AND (? IS NULL OR r.status = ?)"
    " ORDER BY r.review_id LIMIT ?"
)


def insert_review(
    conn: sqlite3.Connection, prediction_id: str, reason: str, created_at: float
) -> int:
    """Add an open item unless one exists; return the item's id.

    Must run inside a write transaction.
    """
    conn.execute(
        "INSERT INTO review_queue (prediction_id, reason, created_at)"
        " VALUES (?, ?, ?) ON CONFLICT (prediction_id, reason) DO NOTHING",
        (prediction_id, reason, created_at),
    )
    row = conn.execute(
        "SELECT review_id FROM review_queue WHERE prediction_id = ? AND reason = ?",
        (prediction_id, reason),
    ).fetchone()
    return int(row[0])


def select_reviews(
    conn: sqlite3.Connection, status: str | None, limit: int, after_id: int
) -> list[ReviewItem]:
    """Return up to ``limit`` items above ``after_id``, in id order."""
    rows = conn.execute(_SELECT_REVIEWS, (after_id, status, status, limit))
    return [review_item(row) for row in rows]


def resolve_review(
    conn: sqlite3.Connection,
    review_id: int,
    label: object,
    resolved_at: float,
    oldest_allowed: float,
    path: Path,
) -> LabelOutcome:
    """Mark an item resolved and record its label as feedback.

    Must run inside a write transaction, so that both writes or neither
    take effect.

    Raises:
        ReviewNotFoundError: No item has this id.
        InvalidLabelError: The label is missing or does not fit the model
            kind.
    """
    row = conn.execute(
        "SELECT prediction_id FROM review_queue WHERE review_id = ?",
        (review_id,),
    ).fetchone()
    if row is None:
        raise ReviewNotFoundError(
            f"No review item with id {review_id} in {path}; it may have been "
            f"pruned; list the open items with: otel-mlmon review list"
        )
    prediction_id = row[0]

    outcome = match_label(conn, prediction_id, label, resolved_at, oldest_allowed)
    stored = outcome.actual
    if outcome.status is not LabelStatus.MATCHED:
        stored = validate_label(label, None, None, prediction_id)

    conn.execute(
        "UPDATE review_queue SET status = 'resolved', resolved_at = ?,"
        " resolved_label = ? WHERE review_id = ?",
        (resolved_at, dump_json(stored), review_id),
    )
    return outcome
