"""Overhead of wrap_model per call, against the bare model and the SDK floor.

For 1 row, 100 rows and 10,000 x 20, in one run, it times per call:

- bare: the model's own ``predict_proba``;
- SDK floor: the span, attributes and metric records that the package makes,
  replayed with precomputed values (what the SDK costs, with no package work).
  It is timed right after a bare model call, in the same loop, and the bare
  time subtracted, so that it meets the same cache state as the wrapped call;
- numpy floor: numpy alone doing the package's reductions and baseline
  binning on the same batch (finite mask, mean, std, min, max, bin counts,
  row confidence);
- wrapped: ``wrap_model(model)`` with a baseline, so drift is on;
- package only: the same, with OpenTelemetry's no-op tracer and meter
  providers, so that only the package's own work is added to the model.

It prints medians and the ratios the targets are set on: the added cost
(wrapped minus bare) over the SDK floor, and over the SDK floor plus the
numpy floor. The machine is noisy: compare ratios from one run, not times.

Run: python benchmarks/overhead.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from opentelemetry import context, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import NoOpTracerProvider, SpanKind
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from otel_mlmon import Baseline, MLSpanProcessor, semconv, wrap_model
from otel_mlmon.metrics import Instruments
from otel_mlmon.stats.binning import slot_counts

FEATURES = 20


class _DropExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _providers() -> tuple[TracerProvider, MeterProvider]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(MLSpanProcessor(emit_logs=False))
    tracer_provider.add_span_processor(
        BatchSpanProcessor(_DropExporter(), max_queue_size=100_000)
    )
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return tracer_provider, meter_provider


def _batches(data: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "1 row": data[:1].copy(),
        "100 rows": data[rng.integers(0, len(data), 100)],
        "10,000 x 20": data[rng.integers(0, len(data), 10_000)],
    }


def _recorded_span(model: Any, baseline: Baseline, batch: np.ndarray) -> Any:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    wrapped = wrap_model(
        model,
        name="bench",
        baseline=baseline,
        tracer_provider=provider,
        meter_provider=MeterProvider(),
    )
    wrapped.predict_proba(batch)
    (span,) = exporter.get_finished_spans()
    return span


def _sdk_floor(span: Any, rows: int) -> Callable[[], None]:
    """Replay the span, attributes and metric records with fixed values."""
    tracer_provider, meter_provider = _providers()
    tracer = tracer_provider.get_tracer("otel_mlmon")
    instruments = Instruments(meter_provider.get_meter("otel_mlmon"))
    start_keys = (
        semconv.ML_MODEL_NAME,
        semconv.ML_MODEL_VERSION,
        semconv.ML_MODEL_FRAMEWORK,
        semconv.ML_OPERATION_NAME,
    )
    start_attributes = {k: span.attributes[k] for k in start_keys}
    later = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in span.attributes.items()
        if k not in start_keys
    }
    metric_attributes = {
        k: span.attributes[k]
        for k in (semconv.ML_MODEL_NAME, semconv.ML_MODEL_VERSION,
                  semconv.ML_OPERATION_NAME)
    }
    confidence = float(span.attributes[semconv.ML_PREDICTION_CONFIDENCE_MEAN])

    def replay() -> None:
        live = tracer.start_span(
            span.name, kind=SpanKind.INTERNAL, attributes=start_attributes
        )
        token = context.attach(trace.set_span_in_context(live))
        context.detach(token)
        instruments.duration.record(0.001, metric_attributes)
        instruments.cpu_time.record(0.001, metric_attributes)
        live.set_attributes(dict(later))
        instruments.predictions.add(rows, metric_attributes)
        instruments.confidence.record(confidence, metric_attributes)
        live.end()

    return replay


def _numpy_floor(baseline: Baseline, batch: np.ndarray, probabilities: np.ndarray) -> Callable[[], None]:
    edges = baseline.counting_edges()

    def reductions() -> None:
        finite = np.isfinite(batch)
        finite.all()
        mean = batch.mean(axis=0)
        centred = batch - mean
        np.sqrt(np.einsum("ij,ij->j", centred, centred) / len(batch))
        batch.min(axis=0)
        batch.max(axis=0)
        slot_counts(batch, edges)
        probabilities.max(axis=1)

    return reductions


def _median_us(function: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls * 1e6


def run(rounds: int) -> None:
    data = load_breast_cancer().data[:, :FEATURES]
    target = load_breast_cancer().target
    model = LogisticRegression(max_iter=5000).fit(data, target)
    baseline = Baseline.fit(data, bins=10)
    tracer_provider, meter_provider = _providers()
    wrapped = wrap_model(
        model,
        name="bench",
        baseline=baseline,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    package_only = wrap_model(
        model,
        name="bench",
        baseline=baseline,
        tracer_provider=NoOpTracerProvider(),
        meter_provider=NoOpMeterProvider(),
    )
    print(
        f"{'batch':<13}{'bare':>9}{'SDK floor':>11}{'numpy':>9}"
        f"{'wrapped':>10}{'package':>9}{'added/SDK':>11}"
        f"{'added/(SDK+np)':>16}{'package/SDK':>13}"
    )
    for label, batch in _batches(data).items():
        rows = len(batch)
        calls = max(20, 4000 // max(1, rows // 25 + 1)) if rows < 10_000 else 40
        span = _recorded_span(model, baseline, batch)
        replay = _sdk_floor(span, rows)

        def bare_and_sdk(b: np.ndarray = batch, replay: Any = replay) -> None:
            model.predict_proba(b)
            replay()

        variants = {
            "bare": lambda b=batch: model.predict_proba(b),
            "sdk": bare_and_sdk,
            "numpy": _numpy_floor(baseline, batch, model.predict_proba(batch)),
            "wrapped": lambda b=batch: wrapped.predict_proba(b),
            "package": lambda b=batch: package_only.predict_proba(b),
        }
        for function in variants.values():
            _median_us(function, max(5, calls // 10))
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, function in variants.items():
                samples[name].append(_median_us(function, calls))
        median = {name: statistics.median(v) for name, v in samples.items()}
        median["sdk"] -= median["bare"]
        added = median["wrapped"] - median["bare"]
        package = median["package"] - median["bare"]
        print(
            f"{label:<13}{median['bare']:>8.0f}u{median['sdk']:>10.0f}u"
            f"{median['numpy']:>8.0f}u{median['wrapped']:>9.0f}u"
            f"{package:>8.0f}u{added / median['sdk']:>11.2f}"
            f"{added / (median['sdk'] + median['numpy']):>16.2f}"
            f"{package / median['sdk']:>13.2f}"
        )
    tracer_provider.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    run(parser.parse_args().rounds)


if __name__ == "__main__":
    main()
