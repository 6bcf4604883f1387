"""Matching labels to stored predictions, inside the caller's transaction."""

from __future__ import annotations

import logging
import sqlite3

from otel_mlmon.feedback._codec import (
    dump_json,
    hash_prediction_id,
    load_json,
    validate_label,
)
from otel_mlmon.feedback.records import LabelledPair, LabelOutcome, LabelStatus

_logger = logging.getLogger(__name__)

_UPSERT_LABEL = (
    "INSERT INTO labels (prediction_id, label, received_at, delay_s)"
    " VALUES (?, ?, ?, ?) ON CONFLICT (prediction_id) DO UPDATE SET"
    " label = excluded.label, received_at = excluded.received_at,"
    " delay_s = excluded.delay_s"
)
_SELECT_PAIRS = (
    "SELECT l.prediction_id, p.model_kind, p.predicted, l.label,"
    " l.received_at, l.delay_s FROM labels AS l"
    " JOIN predictions AS p USING (prediction_id)"
    " WHERE p.model_name = ? AND (? IS NULL OR p.model_version = ?)"
    " AND (? IS NULL OR l.received_at >= ?)"
    " ORDER BY l.received_at DESC, l.rowid DESC LIMIT ?"
)


def match_label(
    conn: sqlite3.Connection,
    prediction_id: str,
    actual: object,
    received_at: float,
    oldest_allowed: float,
) -> LabelOutcome:
    """Store a label for its prediction and return the outcome.

    Must run inside a write transaction. A prediction created before
    ``oldest_allowed`` counts as expired even before a prune deletes it, so
    the outcome does not depend on when pruning last ran.

    Raises:
        InvalidLabelError: The prediction is stored and the label does not
            fit its model kind.
    """
    row = conn.execute(
        "SELECT model_name, model_version, model_kind, created_at, predicted"
        " FROM predictions WHERE prediction_id = ?",
        (prediction_id,),
    ).fetchone()
    if row is None:
        return LabelOutcome(_missing_status(conn, prediction_id), prediction_id)
    model_name, model_version, kind, created_at, predicted_json = row
    if created_at < oldest_allowed:
        return LabelOutcome(LabelStatus.EXPIRED, prediction_id)

    predicted = load_json(predicted_json)
    label = validate_label(actual, predicted, kind, prediction_id)
    # Clocks of the predicting and the labelling host can differ, and a
    # negative delay would be dropped by a histogram.
    delay_s = max(0.0, received_at - created_at)
    conn.execute(_UPSERT_LABEL, (prediction_id, dump_json(label), received_at, delay_s))

    return LabelOutcome(
        status=LabelStatus.MATCHED,
        prediction_id=prediction_id,
        model_name=model_name,
        model_version=model_version,
        model_kind=kind,
        predicted=predicted,
        actual=label,
        delay_s=delay_s,
    )


def select_labelled_pairs(
    conn: sqlite3.Connection,
    model_name: str,
    model_version: str | None,
    since: float | None,
    limit: int | None,
) -> list[LabelledPair]:
    """Return a model's labelled predictions, oldest label first."""
    params = (
        model_name,
        model_version,
        model_version,
        since,
        since,
        -1 if limit is None else limit,
    )
    pairs = [
        LabelledPair(
            prediction_id=row[0],
            model_kind=row[1],
            predicted=load_json(row[2]),
            actual=load_json(row[3]),
            received_at=row[4],
            delay_s=row[5],
        )
        for row in conn.execute(_SELECT_PAIRS, params)
    ]
    pairs.reverse()
    return pairs


def _missing_status(conn: sqlite3.Connection, prediction_id: str) -> LabelStatus:
    row = conn.execute(
        "SELECT 1 FROM pruned_ids WHERE id_hash = ? LIMIT 1",
        (hash_prediction_id(prediction_id),),
    ).fetchone()
    status = LabelStatus.UNKNOWN if row is None else LabelStatus.EXPIRED
    _logger.debug("Label for prediction %s: %s", prediction_id, status.value)
    return status
