"""Write throughput of PredictionStore with several processes writing at once.

Each process opens its own store on one SQLite file in a temporary
directory, waits at a barrier, and inserts batches of predictions with
random 128-bit hex ids, as the instrumentation makes them. Throughput is
all rows over the time from the first process's start to the last one's
end. A second phase times labels, one ``record_label`` call (one
transaction) per label, each process labelling its own rows.

It prints rows per second for one process and for ``--processes``.

Run: python benchmarks/feedback_store.py [--processes 4] [--rows 20000]
     [--batch 100] [--input-row]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from otel_mlmon.feedback import PredictionRecord, PredictionStore

FEATURES = 20


def _records(count: int, input_row: bool) -> list[PredictionRecord]:
    row = {f"feature_{i}": i * 0.5 for i in range(FEATURES)} if input_row else None
    return [
        PredictionRecord(
            prediction_id=secrets.token_hex(16),
            model_name="bench",
            model_version="1",
            predicted=1,
            confidence=0.8,
            trace_id=secrets.token_hex(16),
            span_id=secrets.token_hex(8),
            input_row=row,
        )
        for _ in range(count)
    ]


def _worker(path: str, options: dict[str, Any], barrier: Any, results: Any) -> None:
    store = PredictionStore(path, max_rows=10_000_000, busy_timeout_s=120.0)
    batches = [
        _records(options["batch"], options["input_row"])
        for _ in range(options["rows"] // options["batch"])
    ]
    barrier.wait()
    start = time.monotonic()
    for batch in batches:
        store.add_predictions(batch)
    end = time.monotonic()
    barrier.wait()
    ids = [record.prediction_id for batch in batches for record in batch]
    labels = ids[: options["labels"]]
    label_start = time.monotonic()
    for prediction_id in labels:
        store.record_label(prediction_id, 1)
    label_end = time.monotonic()
    store.close()
    results.put((start, end, len(ids), label_start, label_end, len(labels)))


def _run(processes: int, options: dict[str, Any]) -> tuple[float, float]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "feedback.sqlite3")
        PredictionStore(path).close()
        workers = [
            context.Process(target=_worker, args=(path, options, barrier, results))
            for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
        timings = [results.get(timeout=600) for _ in workers]
        for worker in workers:
            worker.join()
        with sqlite3.connect(path) as conn:
            stored = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
    rows = sum(timing[2] for timing in timings)
    if stored != rows:
        raise SystemExit(f"stored {stored} rows, expected {rows}")
    write_s = max(t[1] for t in timings) - min(t[0] for t in timings)
    label_s = max(t[4] for t in timings) - min(t[3] for t in timings)
    labels = sum(timing[5] for timing in timings)
    return rows / write_s, labels / label_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rows", type=int, default=20_000, help="rows per process")
    parser.add_argument("--batch", type=int, default=100, help="rows per insert")
    parser.add_argument(
        "--labels", type=int, default=2000, help="labels recorded per process"
    )
    parser.add_argument(
        "--input-row",
        action="store_true",
        help=f"store a {FEATURES}-feature input row with each prediction",
    )
    args = parser.parse_args()
    options = {
        "rows": args.rows,
        "batch": args.batch,
        "labels": min(args.labels, args.rows),
        "input_row": args.input_row,
    }
    print(
        f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
        f"{args.rows} rows per process in batches of {args.batch}, "
        f"input row: {args.input_row}"
    )
    for processes in sorted({1, args.processes}):
        rows_per_s, labels_per_s = _run(processes, options)
        print(
            f"{processes} process(es): {rows_per_s:,.0f} rows/s inserted, "
            f"{labels_per_s:,.0f} labels/s recorded"
        )


if __name__ == "__main__":
    main()
