"""Per-call cost of keeping predictions for feedback, queued or written at once.

For 1 row and 100 rows, in one run, it times per call:

- no store: ``wrap_model(model)`` with no feedback store;
- queued: the same with a feedback store; the call only queues its rows,
  and a background thread writes them;
- direct write: the cost a synchronous design would add to each call,
  one ``PredictionStore.add_predictions`` transaction with the call's rows.

Rounds interleave the variants and the medians are printed. The store is
a SQLite file in a temporary directory, on the machine's local disk.

Run: python benchmarks/feedback_overhead.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from otel_mlmon import MLSpanProcessor, MonitorConfig, wrap_model
from otel_mlmon.feedback import PredictionRecord, PredictionStore
from otel_mlmon.feedback._monitor import active_recorders, close_recorders


class _DropExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _mean_us(function: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls * 1e6


def run(rounds: int) -> None:
    data, target = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(data, target)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(MLSpanProcessor(emit_logs=False))
    # A queue large enough for every span of the run, so the timed calls
    # never drop spans (and log about it) while the exporter thread waits.
    tracer_provider.add_span_processor(
        BatchSpanProcessor(_DropExporter(), max_queue_size=100_000)
    )
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    providers = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    config = MonitorConfig(low_confidence_threshold=0.0)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "feedback.sqlite3"
        plain = wrap_model(model, name="bench", config=config, **providers)
        queued = wrap_model(
            model, name="bench", config=config, feedback_store=path, **providers
        )
        direct_store = PredictionStore(Path(directory) / "direct.sqlite3")
        print(f"{'batch':<10}{'no store':>10}{'queued':>10}{'added':>9}{'direct write':>14}")
        for rows in (1, 100):
            batch = data[:rows]
            calls = 2000 // rows + 20

            def direct(rows: int = rows) -> None:
                call_id = secrets.token_hex(16)
                direct_store.add_predictions(
                    [
                        PredictionRecord(f"{call_id}-{i}", "bench", "1", 1, 0.9)
                        for i in range(rows)
                    ]
                )

            variants = {
                "plain": lambda b=batch: plain.predict_proba(b),
                "queued": lambda b=batch: queued.predict_proba(b),
                "direct": direct,
            }
            samples: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, function in variants.items():
                    samples[name].append(_mean_us(function, calls))
            median = {name: statistics.median(v) for name, v in samples.items()}
            print(
                f"{rows:<10}{median['plain']:>9.0f}u{median['queued']:>9.0f}u"
                f"{median['queued'] - median['plain']:>8.0f}u{median['direct']:>13.0f}u"
            )
        recorder = active_recorders()[0]
        recorder.flush()
        print(
            f"rows written by the background thread: {recorder.written_rows}, "
            f"dropped: {recorder.dropped_rows}"
        )
        direct_store.close()
        close_recorders()
    tracer_provider.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    run(parser.parse_args().rounds)


if __name__ == "__main__":
    main()
