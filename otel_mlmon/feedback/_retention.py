"""Retention limits of the feedback store, and the pruning that applies them.

Pruning runs inside the caller's write transaction. The hash of each
pruned prediction id goes into ``pruned_ids``, so that a late label for it
is reported as expired rather than unknown. Labels of pruned predictions
are deleted with them (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sqlite3

_logger = logging.getLogger(__name__)

# An empty store takes 13 pages (52 KiB at 4 KiB pages), so a smaller limit
# leaves no room for rows.
MIN_MAX_BYTES = 64 * 1024

# Share of max_bytes that remembered pruned ids may take, and their measured
# size: about 36 bytes each (8-byte hash, rowid and index entry) with
# SQLite 3.40 and 4 KiB pages, rounded up.
_PRUNED_IDS_SHARE = 1 / 8
_PRUNED_ID_BYTES = 40

# The WAL is checkpointed and truncated at a quarter of max_bytes, within
# these bounds, so that it does not dwarf a small store.
_MIN_WAL_BYTES = 256 * 1024
_MAX_WAL_BYTES = 4 * 1024 * 1024

# When the file is over max_bytes, rows are deleted down to this share of
# the limit, so that the next few inserts do not trigger another prune.
_SHRINK_TARGET = 0.9
_MAX_SHRINK_ROUNDS = 4

_OLDEST_BEYOND = (
    "rowid IN (SELECT rowid FROM predictions"
    " ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?)"
)


@dataclasses.dataclass(frozen=True)
class Retention:
    """Limits on what the store keeps.

    Attributes:
        max_rows: Maximum number of predictions, and separately of review
            items.
        max_age_s: Maximum age of a prediction or review item, in seconds.
        max_bytes: Maximum bytes of database pages in use, or None for no
            size limit beyond ``max_rows``.
        max_pruned_ids: Maximum pruned prediction ids remembered, so that
            their late labels count as expired. With ``max_bytes``, at
            most an eighth of it goes to them, which may lower this number.
    """

    max_rows: int
    max_age_s: float
    max_bytes: int | None
    max_pruned_ids: int

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {self.max_rows}")
        if not math.isfinite(self.max_age_s) or self.max_age_s <= 0:
            raise ValueError(
                f"max_age_s must be a positive number of seconds, got {self.max_age_s}"
            )
        if self.max_bytes is not None and self.max_bytes < MIN_MAX_BYTES:
            raise ValueError(
                f"max_bytes must be at least {MIN_MAX_BYTES} or None, got "
                f"{self.max_bytes}"
            )
        if self.max_pruned_ids < 0:
            raise ValueError(
                f"max_pruned_ids must be 0 or more, got {self.max_pruned_ids}"
            )

    @property
    def pruned_id_limit(self) -> int:
        """Pruned ids remembered, after the share of ``max_bytes``."""
        if self.max_bytes is None:
            return self.max_pruned_ids
        budget = int(self.max_bytes * _PRUNED_IDS_SHARE) // _PRUNED_ID_BYTES
        return min(self.max_pruned_ids, budget)

    @property
    def wal_limit_bytes(self) -> int:
        """WAL size at which SQLite checkpoints and then truncates the WAL."""
        if self.max_bytes is None:
            return _MAX_WAL_BYTES
        return min(_MAX_WAL_BYTES, max(_MIN_WAL_BYTES, self.max_bytes // 4))


def prune(conn: sqlite3.Connection, retention: Retention, now: float) -> int:
    """Delete what the limits no longer allow and return predictions deleted.

    Must run inside a write transaction.
    """
    cutoff = now - retention.max_age_s
    by_age = _delete_predictions(conn, "created_at < ?", (cutoff,))
    by_rows = _delete_predictions(conn, _OLDEST_BEYOND, (retention.max_rows,))
    _prune_reviews(conn, retention, cutoff)
    by_size = 0
    if retention.max_bytes is not None:
        by_size = _shrink_to(conn, retention.max_bytes)
    conn.execute(
        "DELETE FROM pruned_ids WHERE seq <= (SELECT max(seq) FROM pruned_ids) - ?",
        (retention.pruned_id_limit,),
    )
    deleted = by_age + by_rows + by_size
    if deleted:
        _logger.debug(
            "Pruned %d predictions (age %d, row limit %d, size limit %d)",
            deleted,
            by_age,
            by_rows,
            by_size,
        )
    return deleted


def used_bytes(conn: sqlite3.Connection) -> int:
    """Return the bytes of database pages in use, free pages excluded."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    page_count = conn.execute("PRAGMA page_count").fetchone()[0]
    free_pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int(page_size) * (int(page_count) - int(free_pages))


def _delete_predictions(
    conn: sqlite3.Connection, where: str, params: tuple[float | int, ...]
) -> int:
    conn.execute(
        "INSERT INTO pruned_ids (id_hash)"
        f" SELECT mlmon_id_hash(prediction_id) FROM predictions WHERE {where}",
        params,
    )
    cursor = conn.execute(f"DELETE FROM predictions WHERE {where}", params)
    return max(cursor.rowcount, 0)


def _shrink_to(conn: sqlite3.Connection, max_bytes: int) -> int:
    # Rows differ in size, so the number to keep is estimated from the
    # average and the estimate is repeated on the smaller file.
    # NOTE: only predictions (with their labels) are deleted here. Review
    # items are bounded by max_rows and max_age_s alone, so a long review
    # queue can keep the file above a small max_bytes.
    deleted = 0
    for _ in range(_MAX_SHRINK_ROUNDS):
        used = used_bytes(conn)
        if used <= max_bytes:
            break
        count = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
        if count == 0:
            break
        keep = int(count * _SHRINK_TARGET * max_bytes / used)
        deleted += _delete_predictions(conn, _OLDEST_BEYOND, (keep,))
    return deleted


def _prune_reviews(
    conn: sqlite3.Connection, retention: Retention, cutoff: float
) -> None:
    conn.execute("DELETE FROM review_queue WHERE created_at < ?", (cutoff,))
    conn.execute(
        "DELETE FROM review_queue WHERE review_id IN (SELECT review_id"
        " FROM review_queue ORDER BY review_id DESC LIMIT -1 OFFSET ?)",
        (retention.max_rows,),
    )
