"""PredictionStore under concurrent threads and processes, and a killed writer."""

from __future__ import annotations

import collections
import multiprocessing
import os
import random
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from feedback_test_support import (
    SHARED_IDS,
    open_new_store,
    record,
    stored_ids,
    worker_ids,
    write_batches,
    write_until_killed,
)

from otel_mlmon.feedback import LabelStatus, PredictionStore

WORKERS = 4
BATCHES = 25
ROWS = 40


def test_threads_write_at_once(store_path: Path):
    """Eight threads on two stores of one file lose and duplicate no row."""
    stores = [
        PredictionStore(store_path, max_rows=1_000_000),
        PredictionStore(store_path, max_rows=1_000_000),
    ]
    threads = 8
    barrier = threading.Barrier(threads)

    def work(worker: int) -> list[LabelStatus]:
        store = stores[worker % 2]
        barrier.wait(timeout=30)
        statuses = []
        for batch in range(BATCHES):
            ids = worker_ids(worker, batch, ROWS)
            store.add_predictions([record(prediction_id) for prediction_id in ids])
            statuses.append(store.record_label(ids[0], 2).status)
            store.review_add(ids[-1], "drift")
            store.add_predictions(
                [record(prediction_id) for prediction_id in SHARED_IDS]
            )
        return statuses

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = [pool.submit(work, worker) for worker in range(threads)]
        statuses = [status for result in results for status in result.result()]
    counts = stores[0].counts()
    for store in stores:
        store.close()

    expected = {
        prediction_id
        for worker in range(threads)
        for batch in range(BATCHES)
        for prediction_id in worker_ids(worker, batch, ROWS)
    } | set(SHARED_IDS)
    ids = stored_ids(store_path)
    assert len(ids) == len(expected)
    assert set(ids) == expected
    assert statuses == [LabelStatus.MATCHED] * threads * BATCHES
    assert counts.labels == threads * BATCHES
    assert counts.open_reviews == threads * BATCHES


def test_store_inherited_across_fork(store_path: Path):
    """A store used before fork keeps working in the child and the parent."""
    store = PredictionStore(store_path)
    store.add_predictions([record("before-fork")])

    def insert_in_child() -> None:
        store.add_predictions([record("in-child")])
        store.close()

    process = multiprocessing.get_context("fork").Process(target=insert_in_child)
    process.start()
    process.join(timeout=60)
    store.add_predictions([record("after-fork")])
    store.close()
    assert process.exitcode == 0
    assert sorted(stored_ids(store_path)) == ["after-fork", "before-fork", "in-child"]


def test_processes_write_at_once(store_path: Path):
    """Four spawned processes lose and duplicate no row.

    Every worker also inserts the same SHARED_IDS, so the primary key is
    contended across processes.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    processes = [
        context.Process(
            target=write_batches,
            args=(str(store_path), worker, BATCHES, ROWS, barrier),
        )
        for worker in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
    exit_codes = [process.exitcode for process in processes]

    expected = {
        prediction_id
        for worker in range(WORKERS)
        for batch in range(BATCHES)
        for prediction_id in worker_ids(worker, batch, ROWS)
    } | set(SHARED_IDS)
    ids = stored_ids(store_path)
    labels = stored_ids(store_path, "labels")
    reviews = stored_ids(store_path, "review_queue")
    assert exit_codes == [0] * WORKERS
    assert len(ids) == WORKERS * BATCHES * ROWS + len(SHARED_IDS)
    assert set(ids) == expected
    assert len(labels) == WORKERS * BATCHES
    assert set(labels) == {
        worker_ids(worker, batch, ROWS)[0]
        for worker in range(WORKERS)
        for batch in range(BATCHES)
    }
    assert len(reviews) == WORKERS * BATCHES


def test_processes_create_file_at_once(tmp_path: Path):
    """Four processes opening one new file at once all succeed.

    Each of them switches the new file to WAL mode. SQLite returns
    SQLITE_BUSY to all but one at once, without waiting, so the store must
    retry. Without the retry, about one trial in twenty failed.
    """
    context = multiprocessing.get_context("fork")
    failures = []
    for trial in range(30):
        path = str(tmp_path / f"trial-{trial}.sqlite3")
        barrier = context.Barrier(WORKERS)
        results = context.Queue()
        processes = [
            context.Process(target=open_new_store, args=(path, barrier, results))
            for _ in range(WORKERS)
        ]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        failures.extend(outcome for outcome in outcomes if outcome != "ok")
    assert failures == []


def test_killed_writer_keeps_commits(store_path: Path):
    """SIGKILL during writes loses no batch that was reported committed.

    A child inserts 5000-row batches in a loop and sends each batch number
    through a pipe after its commit returns. The parent kills it at a
    random moment after a few reports. On the build machine a batch spent
    about 60 ms inside its transaction and 35 ms outside, so a kill often
    lands mid-write. Three rounds on the same file make it likely that at
    least one does. After each round, every reported batch is complete, at
    most one more batch committed before its report, and no batch is
    partial.
    """
    rows = 5000
    random_delays = random.Random(20240611)
    reported: list[int] = []
    for round_number in range(3):
        first_batch = round_number * 1000
        exit_code, numbers = _run_and_kill(
            store_path, rows, first_batch, random_delays.uniform(0.0, 0.1)
        )
        reported.extend(numbers)
        batch_sizes = _batch_sizes(store_path)
        committed = sorted(batch_sizes)
        unreported = sorted(set(committed) - set(reported))
        assert exit_code == -signal.SIGKILL
        assert len(numbers) >= 3
        assert numbers == list(range(first_batch, first_batch + len(numbers)))
        assert set(reported) <= set(committed)
        assert unreported in ([], [first_batch + len(numbers)])
        assert set(batch_sizes.values()) == {rows}
        reported.extend(unreported)

    with PredictionStore(store_path, max_rows=1_000_000) as store:
        count = store.counts().predictions
    with sqlite3.connect(store_path) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
    assert count == rows * len(reported)
    assert integrity == [("ok",)]


def _run_and_kill(
    store_path: Path, rows: int, first_batch: int, delay_s: float
) -> tuple[int | None, list[int]]:
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=write_until_killed,
        args=(str(store_path), sender, rows, first_batch),
    )
    process.start()
    sender.close()
    numbers = []
    while len(numbers) < 3 and receiver.poll(timeout=120):
        numbers.append(receiver.recv())
    time.sleep(delay_s)
    os.kill(process.pid, signal.SIGKILL)
    process.join(timeout=30)
    while True:
        try:
            numbers.append(receiver.recv())
        except EOFError:
            break
    receiver.close()
    return process.exitcode, numbers


def _batch_sizes(store_path: Path) -> dict[int, int]:
    ids = stored_ids(store_path)
    return dict(collections.Counter(int(value.rsplit("-b", 1)[1]) for value in ids))
