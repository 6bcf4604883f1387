"""PredictionStore on real SQLite files: records, labels, retention, review."""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from feedback_test_support import FakeClock, record, stored_ids

from otel_mlmon.feedback import (
    FeedbackStoreError,
    InvalidLabelError,
    InvalidRecordError,
    LabelStatus,
    PredictionRecord,
    PredictionStore,
    ReviewNotFoundError,
    ReviewReason,
    ReviewStatus,
    read_review_export,
)

DAY_S = 24 * 3600.0


def test_add_predictions_stores_fields(store: PredictionStore, clock: FakeClock):
    """Every field of a record is stored, with numpy values converted."""
    inserted = store.add_predictions(
        [
            PredictionRecord(
                prediction_id="p1",
                model_name="iris",
                model_version="3",
                predicted=np.int64(2),
                confidence=np.float32(0.5),
                trace_id="0af7651916cd43dd8448eb211c80319c",
                span_id="b7ad6b7169203331",
                input_row={"sepal": np.float64(1.5), "petal": float("nan")},
            )
        ]
    )
    assert inserted == 1
    with sqlite3.connect(store.path) as conn:
        row = conn.execute("SELECT * FROM predictions").fetchone()
    assert row == (
        "p1",
        "iris",
        "3",
        clock.now,
        "2",
        "classification",
        0.5,
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        '{"sepal":1.5,"petal":null}',
    )


def test_input_row_null_unless_given(store: PredictionStore):
    """Without an input row, the column is SQL NULL, not JSON null."""
    store.add_predictions([record("p1")])
    with sqlite3.connect(store.path) as conn:
        value = conn.execute("SELECT input_row FROM predictions").fetchone()[0]
    assert value is None


def test_add_predictions_skips_duplicates(store: PredictionStore):
    """Retrying a batch inserts each prediction id once."""
    first = store.add_predictions([record("a"), record("b")])
    second = store.add_predictions([record("b"), record("c"), record("c")])
    assert first == 2
    assert second == 1
    assert sorted(stored_ids(store.path)) == ["a", "b", "c"]


def test_add_predictions_empty_batch(store: PredictionStore):
    """An empty batch writes nothing and returns 0."""
    assert store.add_predictions([]) == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prediction_id": ""}, "prediction_id must be a non-empty string"),
        ({"model_name": ""}, "model_name must be a non-empty string"),
        ({"model_version": None}, "model_version must be a non-empty string"),
        ({"trace_id": "XYZ"}, "trace_id must be 32 lowercase hex digits"),
        ({"span_id": "b7ad6b71"}, "span_id must be 16 lowercase hex digits"),
        ({"confidence": 1.5}, "confidence must be a probability"),
        ({"confidence": float("nan")}, "confidence must be a probability"),
        ({"confidence": "0.5"}, "confidence must be a float"),
        ({"created_at": float("inf")}, "created_at must be a finite number"),
        ({"predicted": object()}, "object is not JSON-serializable"),
        ({"input_row": {"a": {1, 2}}}, "set is not JSON-serializable"),
        ({"model_kind": "ranking"}, "model_kind must be"),
    ],
)
def test_invalid_record_rejects_batch(
    store: PredictionStore, changes: dict[str, Any], message: str
):
    """One invalid record rejects the whole batch with a message naming it."""
    bad = dataclasses.replace(record("bad"), **changes)
    with pytest.raises(InvalidRecordError, match=message):
        store.add_predictions([record("good"), bad])
    assert stored_ids(store.path) == []


def test_zero_trace_id_stored_as_null(store: PredictionStore):
    """An all-zero trace or span id, meaning no span, is stored as NULL."""
    store.add_predictions(
        [dataclasses.replace(record("p1"), trace_id="0" * 32, span_id="0" * 16)]
    )
    with sqlite3.connect(store.path) as conn:
        row = conn.execute("SELECT trace_id, span_id FROM predictions").fetchone()
    assert row == (None, None)


def test_record_label_matched(store: PredictionStore, clock: FakeClock):
    """A label for a stored prediction is stored with its delay."""
    store.add_predictions([record("p1", predicted="setosa")])
    clock.advance(90.0)
    outcome = store.record_label("p1", "versicolor")
    assert outcome.status is LabelStatus.MATCHED
    assert outcome.delay_s == 90.0
    assert outcome.predicted == "setosa"
    assert outcome.actual == "versicolor"
    assert outcome.model_name == "iris"
    assert outcome.model_kind == "classification"
    with sqlite3.connect(store.path) as conn:
        row = conn.execute("SELECT * FROM labels").fetchone()
    assert row == ("p1", '"versicolor"', clock.now, 90.0)


def test_record_label_replaces_earlier(store: PredictionStore, clock: FakeClock):
    """A second label for the same prediction replaces the first."""
    store.add_predictions([record("p1", predicted=0)])
    store.record_label("p1", 0)
    clock.advance(5.0)
    store.record_label("p1", 1)
    pairs = store.labelled_pairs("iris")
    assert len(pairs) == 1
    assert pairs[0].actual == 1
    assert pairs[0].delay_s == 5.0


def test_record_label_explicit_time(store: PredictionStore, clock: FakeClock):
    """received_at sets the label time; a time before the prediction gives 0."""
    store.add_predictions([record("p1"), record("p2")])
    later = store.record_label("p1", 1, received_at=clock.now + 30.0)
    earlier = store.record_label("p2", 1, received_at=clock.now - 30.0)
    assert later.delay_s == 30.0
    assert earlier.delay_s == 0.0


def test_unknown_ids_counted(store: PredictionStore):
    """Labels for ids never stored return unknown, store nothing, never raise."""
    store.add_predictions([record("known")])
    outcomes = [
        store.record_label("known", 1),
        store.record_label("never-seen", 1),
        store.record_label("", {"not": "checked"}),
        store.record_label("other", None),
        store.record_label(12345, 1),  # type: ignore[arg-type]
    ]
    tally = collections.Counter(outcome.status for outcome in outcomes)
    assert tally == {LabelStatus.MATCHED: 1, LabelStatus.UNKNOWN: 4}
    assert store.counts().labels == 1


LABEL_TYPE_CASES = [
    # (predicted, model_kind, label, error fragment)
    (0, None, {"class": 1}, "must be one class"),
    (0, None, [1], "must be one class"),
    (0, None, "0", "must be of type int"),
    (0, None, True, "must be of type int"),
    (0, None, 2.5, "must be a whole number"),
    ("setosa", None, 1, "must be of type str"),
    ("setosa", None, {"label": "setosa"}, "must be one class"),
    (True, None, 1, "must be of type bool"),
    (1.5, None, "3.2", "must be a number"),
    (1.5, None, True, "must be a number"),
    (1.5, None, [1.0], "must be a number"),
    (1.5, None, None, "is missing"),
    (1.5, None, float("nan"), "is NaN or infinite"),
    (1.5, None, np.float64("inf"), "is NaN or infinite"),
    (3, "regression", "3", "must be a number"),
    ("a", None, object(), "not JSON-serializable"),
]


@pytest.mark.parametrize(("predicted", "kind", "label", "fragment"), LABEL_TYPE_CASES)
def test_wrong_label_type_rejected(
    store: PredictionStore, predicted: Any, kind: Any, label: Any, fragment: str
):
    """A label that does not fit the model kind raises and is not stored."""
    store.add_predictions([record("p1", predicted, model_kind=kind)])
    with pytest.raises(InvalidLabelError, match=fragment) as raised:
        store.record_label("p1", label)
    assert "'p1'" in str(raised.value)
    assert store.counts().labels == 0


@pytest.mark.parametrize(
    ("predicted", "kind", "label", "stored"),
    [
        (0, None, 1, 1),
        (0, None, 1.0, 1),
        (0, None, np.int64(2), 2),
        ("setosa", None, "virginica", "virginica"),
        (True, None, False, False),
        (1.5, None, 3, 3),
        (1.5, None, np.float32(2.5), 2.5),
        (3, "regression", 3.5, 3.5),
        ([0.2, 0.8], None, {"any": "json"}, {"any": "json"}),
    ],
)
def test_label_of_right_type_stored(
    store: PredictionStore, predicted: Any, kind: Any, label: Any, stored: Any
):
    """Labels that fit the model kind are stored as JSON values."""
    store.add_predictions([record("p1", predicted, model_kind=kind)])
    outcome = store.record_label("p1", label)
    assert outcome.status is LabelStatus.MATCHED
    assert outcome.actual == stored
    assert type(outcome.actual) is type(stored)
    assert store.labelled_pairs("iris")[0].actual == stored


def test_labelled_pairs_filters(store: PredictionStore, clock: FakeClock):
    """labelled_pairs filters by model, version and time, oldest first."""
    store.add_predictions(
        [record("a"), record("b"), record("c"), record("x", model_name="other")]
    )
    for prediction_id in ("a", "b", "c", "x"):
        clock.advance(10.0)
        store.record_label(prediction_id, 1)
    assert [pair.prediction_id for pair in store.labelled_pairs("iris")] == [
        "a",
        "b",
        "c",
    ]
    assert [p.prediction_id for p in store.labelled_pairs("iris", limit=2)] == [
        "b",
        "c",
    ]
    since = clock.now - 25.0
    assert [p.prediction_id for p in store.labelled_pairs("iris", since=since)] == [
        "b",
        "c",
    ]
    assert store.labelled_pairs("iris", model_version="2") == []


def test_label_after_max_age_expired(store_path: Path, clock: FakeClock):
    """A label for a prediction older than max_age_s is expired, pruned or not."""
    with PredictionStore(store_path, max_age_s=DAY_S, clock=clock) as store:
        store.add_predictions([record("old"), record("also-old")])
        clock.advance(DAY_S + 1.0)
        before_prune = store.record_label("old", 1)
        deleted = store.prune()
        after_prune = store.record_label("also-old", 1)
    assert before_prune.status is LabelStatus.EXPIRED
    assert deleted == 2
    assert after_prune.status is LabelStatus.EXPIRED


def test_forgotten_pruned_id_unknown(store_path: Path, clock: FakeClock):
    """Pruned ids beyond max_pruned_ids are forgotten and count as unknown."""
    with PredictionStore(
        store_path, max_rows=2, max_pruned_ids=3, prune_interval=1, clock=clock
    ) as store:
        for index in range(10):
            clock.advance(1.0)
            store.add_predictions([record(f"p{index}")])
        statuses = [store.record_label(f"p{index}", 1).status for index in range(10)]
    assert (
        statuses
        == [LabelStatus.UNKNOWN] * 5
        + [LabelStatus.EXPIRED] * 3
        + [LabelStatus.MATCHED] * 2
    )


def test_max_rows_keeps_newest(store_path: Path, clock: FakeClock):
    """After many inserts, exactly the newest max_rows predictions remain."""
    with PredictionStore(
        store_path, max_rows=500, prune_interval=100, clock=clock
    ) as store:
        for batch in range(100):
            clock.advance(1.0)
            store.add_predictions([record(f"b{batch}-r{row}") for row in range(100)])
        counts = store.counts()
    expected = {f"b{batch}-r{row}" for batch in range(95, 100) for row in range(100)}
    assert counts.predictions == 500
    assert set(stored_ids(store_path)) == expected


def test_labels_pruned_with_predictions(store_path: Path, clock: FakeClock):
    """Pruning a prediction also deletes its label."""
    with PredictionStore(store_path, max_rows=1, clock=clock) as store:
        store.add_predictions([record("first")])
        store.record_label("first", 1)
        clock.advance(1.0)
        store.add_predictions([record("second")])
        store.prune()
        counts = store.counts()
    assert counts.predictions == 1
    assert counts.labels == 0
    assert stored_ids(store_path, "labels") == []


def test_file_size_within_limit(store_path: Path, clock: FakeClock):
    """The file stops growing at max_bytes while rows keep coming.

    Rows carry a 20-feature input row, about 600 bytes each. Between prunes
    (every 100 rows) the file can grow by about 60 KB, so the bound on the
    file is max_bytes plus 25%. The WAL is checkpointed at 256 KiB (a
    quarter of max_bytes) and grows past that by at most one transaction,
    here under 512 KiB.
    """
    max_bytes = 1024 * 1024
    wal_path = Path(f"{store_path}-wal")
    features = {f"feature_{index}": index * 1.25 for index in range(20)}
    sizes = []
    wal_sizes = []
    with PredictionStore(
        store_path,
        max_rows=1_000_000,
        max_bytes=max_bytes,
        prune_interval=100,
        clock=clock,
    ) as store:
        for batch in range(200):
            clock.advance(1.0)
            store.add_predictions(
                [record(f"b{batch}-r{row}", input_row=features) for row in range(100)]
            )
            sizes.append(store_path.stat().st_size)
            wal_sizes.append(wal_path.stat().st_size)
        used = store.used_bytes()
        counts = store.counts()
    assert used <= max_bytes
    assert max(sizes) <= 1.25 * max_bytes
    assert sizes[-1] == sizes[100]
    assert max(wal_sizes) <= 256 * 1024 + 512 * 1024
    assert 0 < counts.predictions < 20_000


def test_pruned_ids_capped_by_size(store_path: Path, clock: FakeClock):
    """Remembered pruned ids take at most an eighth of max_bytes.

    An eighth of 256 KiB at the 40 bytes per id that the store assumes
    allows 819 ids.
    """
    with PredictionStore(
        store_path,
        max_rows=1_000_000,
        max_bytes=256 * 1024,
        prune_interval=500,
        clock=clock,
    ) as store:
        for batch in range(100):
            clock.advance(1.0)
            store.add_predictions([record(f"b{batch}-r{row}") for row in range(500)])
        counts = store.counts()
        used = store.used_bytes()
    assert used <= 256 * 1024
    assert counts.predictions > 500
    assert counts.pruned_ids == 819


def test_retention_limits_validated(store_path: Path):
    """Out-of-range limits raise ValueError naming the limit."""
    cases = [
        ({"max_rows": 0}, "max_rows"),
        ({"max_age_s": 0.0}, "max_age_s"),
        ({"max_age_s": math.inf}, "max_age_s"),
        ({"max_bytes": 1000}, "max_bytes"),
        ({"max_pruned_ids": -1}, "max_pruned_ids"),
        ({"prune_interval": 0}, "prune_interval"),
        ({"busy_timeout_s": -1.0}, "busy_timeout_s"),
    ]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=name):
            PredictionStore(store_path, **kwargs)


def test_review_add_and_list(store: PredictionStore, clock: FakeClock):
    """Review items list with their prediction, and re-adding is a no-op."""
    store.add_predictions([record("p1", predicted=0, input_row=[1.0, 2.0])])
    first = store.review_add("p1", "low_confidence")
    again = store.review_add("p1", ReviewReason.LOW_CONFIDENCE)
    drift = store.review_add("not-stored-yet", "drift")
    items = store.review_list()
    assert again == first
    assert [item.review_id for item in items] == [first, drift]
    assert items[0].reason is ReviewReason.LOW_CONFIDENCE
    assert items[0].status is ReviewStatus.OPEN
    assert items[0].predicted == 0
    assert items[0].input_row == [1.0, 2.0]
    assert items[0].prediction_created_at == clock.now
    assert items[1].predicted is None
    assert items[1].model_name is None


def test_review_list_pages(store: PredictionStore):
    """limit and after_id page through the queue."""
    ids = [store.review_add(f"p{index}", "drift") for index in range(5)]
    first_page = store.review_list(limit=2)
    second_page = store.review_list(limit=2, after_id=first_page[-1].review_id)
    assert [item.review_id for item in first_page] == ids[:2]
    assert [item.review_id for item in second_page] == ids[2:4]


def test_review_invalid_reason_and_status(store: PredictionStore):
    """Empty ids, unknown reasons and unknown statuses raise ValueError."""
    with pytest.raises(ValueError, match="prediction_id must be a non-empty"):
        store.review_add("", "drift")
    with pytest.raises(ValueError, match="'low_confidence' or 'drift'"):
        store.review_add("p1", "boredom")
    with pytest.raises(ValueError, match="'open', 'resolved' or None"):
        store.review_list(status="closed")


def test_review_resolve_records_label(store: PredictionStore, clock: FakeClock):
    """Resolving an item marks it resolved and records its label."""
    store.add_predictions([record("p1", predicted="setosa")])
    review_id = store.review_add("p1", "low_confidence")
    clock.advance(60.0)
    outcome = store.review_resolve(review_id, "virginica")
    assert outcome.status is LabelStatus.MATCHED
    assert store.review_list() == []
    resolved = store.review_list(status="resolved")
    assert len(resolved) == 1
    assert resolved[0].resolved_label == "virginica"
    assert resolved[0].resolved_at == clock.now
    assert store.labelled_pairs("iris")[0].actual == "virginica"


def test_review_resolve_rejects_wrong_type(store: PredictionStore):
    """A wrong label type leaves the item open and stores no label."""
    store.add_predictions([record("p1", predicted="setosa")])
    review_id = store.review_add("p1", "low_confidence")
    with pytest.raises(InvalidLabelError):
        store.review_resolve(review_id, 3)
    assert store.review_list()[0].status is ReviewStatus.OPEN
    assert store.counts().labels == 0


def test_review_resolve_unknown_prediction(store: PredictionStore):
    """An item whose prediction is not stored resolves; no label is recorded."""
    review_id = store.review_add("gone", "drift")
    outcome = store.review_resolve(review_id, "setosa")
    assert outcome.status is LabelStatus.UNKNOWN
    assert store.review_list(status="resolved")[0].resolved_label == "setosa"
    assert store.counts().labels == 0


def test_review_resolve_missing_item(store: PredictionStore):
    """Resolving an id that does not exist raises ReviewNotFoundError."""
    with pytest.raises(ReviewNotFoundError, match="No review item with id 42"):
        store.review_resolve(42, 1)


def _fill_review_queue(store: PredictionStore, clock: FakeClock) -> None:
    store.add_predictions(
        [
            record("p1", predicted="setosa", input_row={"a": 1.5, "b": None}),
            record("p2", predicted=2.75),
            record("p3", predicted='quote " and, comma\nnewline'),
        ]
    )
    store.review_add("p1", "low_confidence")
    store.review_add("p2", "drift")
    store.review_add("p3", "drift")
    store.review_add("never-stored", "drift")
    clock.advance(12.5)
    store.review_resolve(1, "versicolor")
    store.review_resolve(2, 3.0)


@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
def test_export_round_trips(
    store: PredictionStore, clock: FakeClock, tmp_path: Path, export_format: str
):
    """Exported items read back equal to the items listed."""
    _fill_review_queue(store, clock)
    destination = tmp_path / f"reviews.{export_format}"
    written = store.review_export(destination, export_format)
    read_back = read_review_export(destination, export_format)
    assert written == 4
    assert read_back == store.review_list(status=None)


@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
def test_export_to_open_file(
    store: PredictionStore, clock: FakeClock, export_format: str
):
    """Export writes to an open text file, filtered by status."""
    _fill_review_queue(store, clock)
    buffer = io.StringIO(newline="")
    written = store.review_export(buffer, export_format, status="open")
    buffer.seek(0)
    read_back = read_review_export(buffer, export_format)
    assert written == 2
    assert read_back == store.review_list(status="open")


def test_export_many_pages(store: PredictionStore, tmp_path: Path):
    """Export reads the queue page by page and writes every item."""
    for index in range(2500):
        store.review_add(f"p{index}", "drift")
    destination = tmp_path / "reviews.csv"
    written = store.review_export(destination)
    assert written == 2500
    assert len(read_review_export(destination)) == 2500


def test_export_csv_header(store: PredictionStore, clock: FakeClock):
    """CSV exports have a header row, and JSON columns are JSON text."""
    _fill_review_queue(store, clock)
    buffer = io.StringIO(newline="")
    store.review_export(buffer, "csv", status="resolved")
    lines = buffer.getvalue().splitlines()
    assert lines[0].split(",")[:4] == ["review_id", "prediction_id", "reason", "status"]
    assert '"{""a"":1.5,""b"":null}"' in lines[1]


def test_export_invalid_format(store: PredictionStore, tmp_path: Path):
    """An unknown export format raises before the file is created."""
    destination = tmp_path / "reviews.xlsx"
    with pytest.raises(ValueError, match="'csv' or 'jsonl'"):
        store.review_export(destination, "xlsx")
    assert not destination.exists()


def test_read_export_rejects_other_csv(tmp_path: Path):
    """A CSV file without the export's columns raises ValueError."""
    source = tmp_path / "other.csv"
    source.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not that of a review export"):
        read_review_export(source)


def test_closed_store_raises(store_path: Path):
    """Calls after close raise FeedbackStoreError naming the file."""
    store = PredictionStore(store_path)
    store.close()
    with pytest.raises(FeedbackStoreError, match="is closed") as raised:
        store.add_predictions([record("p1")])
    assert str(store_path) in str(raised.value)


def test_reopen_keeps_rows(store_path: Path):
    """Rows written by one store are read by a later one on the same file."""
    with PredictionStore(store_path) as store:
        store.add_predictions([record("p1", predicted="setosa")])
    with PredictionStore(store_path) as store:
        outcome = store.record_label("p1", "setosa")
    assert outcome.status is LabelStatus.MATCHED
