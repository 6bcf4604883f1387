"""Helpers of the feedback store tests, and the targets of their child processes.

The targets live in a module importable by name because the spawn start
method imports a child's target by module and name.
"""

from __future__ import annotations

import secrets
import sqlite3
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from otel_mlmon.feedback import FeedbackStoreError, PredictionRecord, PredictionStore


class FakeClock:
    """A clock that moves only when a test advances it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# Rows shared by every worker of the multi-process test; each worker
# inserts all of them, and the store must keep one copy of each.
SHARED_IDS = [f"shared-{index}" for index in range(100)]


def record(
    prediction_id: str,
    predicted: Any = 1,
    *,
    created_at: float | None = None,
    input_row: Any = None,
    model_name: str = "iris",
    model_kind: Any = None,
) -> PredictionRecord:
    """Build a prediction record with test defaults."""
    return PredictionRecord(
        prediction_id=prediction_id,
        model_name=model_name,
        model_version="1",
        predicted=predicted,
        confidence=0.75,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        created_at=created_at,
        input_row=input_row,
        model_kind=model_kind,
    )


def stored_ids(path: Path, table: str = "predictions") -> list[str]:
    """Read the prediction ids of a table with a plain SQLite connection."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"SELECT prediction_id FROM {table}").fetchall()
    return [row[0] for row in rows]


def worker_ids(worker: int, batch: int, rows: int) -> list[str]:
    """Return the prediction ids of one batch of one worker."""
    return [f"w{worker}-b{batch}-r{row}" for row in range(rows)]


def write_batches(
    path: str, worker: int, batches: int, rows: int, barrier: Any
) -> None:
    """Insert batches, label the first row of each, and insert SHARED_IDS.

    The barrier makes all workers start writing at the same moment.
    """
    store = PredictionStore(path, max_rows=1_000_000, busy_timeout_s=60.0)
    barrier.wait(timeout=120)
    for batch in range(batches):
        ids = worker_ids(worker, batch, rows)
        store.add_predictions([record(prediction_id) for prediction_id in ids])
        store.record_label(ids[0], 2)
        store.review_add(ids[-1], "low_confidence")
    store.add_predictions([record(prediction_id) for prediction_id in SHARED_IDS])
    store.close()


def open_new_store(path: str, barrier: Any, results: Any) -> None:
    """Open a store after the barrier and put "ok" or the error message."""
    barrier.wait(timeout=60)
    try:
        PredictionStore(path, busy_timeout_s=30.0).close()
    except FeedbackStoreError as error:
        results.put(str(error))
        return
    results.put("ok")


def write_until_killed(
    path: str, sender: Connection, rows: int, first_batch: int
) -> None:
    """Insert numbered batches forever, sending each number once committed.

    Ids are random hex with the batch number as suffix, as random as the
    ids the instrumentation makes, so index inserts cost what they cost in
    production.
    """
    store = PredictionStore(path, max_rows=1_000_000, busy_timeout_s=60.0)
    batch = first_batch
    while True:
        store.add_predictions(
            [record(f"{secrets.token_hex(16)}-b{batch}") for _ in range(rows)]
        )
        sender.send(batch)
        batch += 1
