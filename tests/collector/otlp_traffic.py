"""Send known OTLP traffic with otel_mlmon's telemetry names to a Collector.

The Collector tests run this as a script. It emits the same instruments,
span names, span events and log records as the otel_mlmon package (names
from ``otel_mlmon.semconv``), for three models in known states. It writes a
JSON manifest of the trace ids it sent in each category, so that a test can
check which traces the Collector's tail sampling kept.

Usage: python otlp_traffic.py --manifest FILE [--normal-traces N] [--seconds S]

The OTLP gRPC endpoint comes from OTEL_EXPORTER_OTLP_ENDPOINT, as for any
OpenTelemetry SDK exporter. The models:

- ``iris_clf``: healthy. Fast calls, high confidence, no drift, rare errors.
- ``fraud_clf``: degraded. Slow calls, 30% errors, low confidence, and a
  drifted feature; it trips every alert rule except the one for no traffic.
- ``churn_clf``: idle. Its counters exist but never increase.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_mlmon import semconv

# The package's bucket bounds (otel_mlmon.metrics), repeated here so this
# script still emits the same histograms if that module changes its API.
DURATION_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
CONFIDENCE_BUCKETS = tuple(step / 10 for step in range(1, 10))

SLOW_PREDICTION_S = 0.8
"""Duration of the slow prediction spans: above the Collector's 0.5 s rule."""

FLAG_CATEGORIES = (
    "error", "drift", "low_confidence", "out_of_range", "slow_predict", "slow_predict_proba",
)  # fmt: skip
"""Trace categories that the Collector's tail sampling must always keep."""

NEAR_MISS_KINDS = ("predict_400ms", "query_900ms", "other_event", "status_ok")
"""Traces that look like flagged ones but match no keep rule."""


@dataclass(frozen=True)
class ModelState:
    """What one simulated model's metrics show."""

    name: str
    version: str
    error_share: float
    duration_s: tuple[float, float]
    confidence: tuple[float, float]
    calls_per_round: int
    drift_scores: dict[str, float] = field(default_factory=dict)


MODELS = (
    ModelState(
        "iris_clf", "1", 0.01, (0.004, 0.03), (0.85, 0.99), 20,
        {"sepal_length": 0.02, "petal_width": 0.04},
    ),
    ModelState(
        "fraud_clf", "2", 0.3, (0.6, 0.9), (0.3, 0.55), 10,
        {"amount": 0.45, "age": 0.05},
    ),
    ModelState("churn_clf", "1", 0.0, (0.0, 0.0), (0.0, 0.0), 0),
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--manifest",
        type=Path,
        required=True,
        help="JSON file to write the sent trace ids to",
    )
    parser.add_argument(
        "--normal-traces",
        type=int,
        default=400,
        help="unflagged traces to send (default 400)",
    )
    parser.add_argument(
        "--near-miss-traces",
        type=int,
        default=10,
        help="traces of each near-miss kind to send (default 10)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=12.0,
        help="how long to keep recording metrics, in seconds (default 12)",
    )
    return parser.parse_args(argv)


def build_resource() -> Resource:
    return Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME", "ml-traffic"),
            "service.instance.id": str(uuid.uuid4()),
        }
    )


def build_meter_provider(res: Resource) -> MeterProvider:
    views = [
        View(
            instrument_name=name,
            aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS_S),
        )
        for name in (
            semconv.ML_MODEL_PREDICTION_DURATION,
            semconv.ML_MODEL_PREDICTION_CPU_TIME,
        )
    ]
    views.append(
        View(
            instrument_name=semconv.ML_MODEL_PREDICTION_CONFIDENCE,
            aggregation=ExplicitBucketHistogramAggregation(CONFIDENCE_BUCKETS),
        )
    )
    # Export every second so that Prometheus, which scrapes every second in
    # the tests, reads a different counter value at each scrape.
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(), export_interval_millis=1000
    )
    return MeterProvider(resource=res, metric_readers=[reader], views=views)


def resident_memory_bytes(_options: CallbackOptions) -> Iterable[Observation]:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        rss = pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    yield Observation(rss)


class Instruments:
    """The instruments of ``otel_mlmon.semconv``, with the same units."""

    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("otel_mlmon")
        self.duration = meter.create_histogram(
            semconv.ML_MODEL_PREDICTION_DURATION, unit="s"
        )
        self.predictions = meter.create_counter(
            semconv.ML_MODEL_PREDICTIONS, unit="{prediction}"
        )
        self.confidence = meter.create_histogram(
            semconv.ML_MODEL_PREDICTION_CONFIDENCE, unit="1"
        )
        self.low_confidence = meter.create_counter(
            semconv.ML_MODEL_LOW_CONFIDENCE_PREDICTIONS, unit="{prediction}"
        )
        self.cpu_time = meter.create_histogram(
            semconv.ML_MODEL_PREDICTION_CPU_TIME, unit="s"
        )
        self.drift_score = meter.create_gauge(semconv.ML_FEATURE_DRIFT_SCORE, unit="1")
        meter.create_observable_gauge(
            semconv.PROCESS_MEMORY_USAGE, callbacks=[resident_memory_bytes], unit="By"
        )


def record_round(
    instruments: Instruments,
    tracer: trace.Tracer,
    rng: random.Random,
) -> None:
    """Record one second's worth of calls for every model."""
    for model in MODELS:
        identity = {
            semconv.ML_MODEL_NAME: model.name,
            semconv.ML_MODEL_VERSION: model.version,
        }
        call = {**identity, semconv.ML_OPERATION_NAME: "predict_proba"}
        # An idle model still has its counters, at zero, as a process that
        # loaded it but receives no requests would export them.
        instruments.predictions.add(0, identity)
        instruments.low_confidence.add(0, identity)
        for _ in range(model.calls_per_round):
            record_call(instruments, tracer, rng, model, call)
        for feature, score in model.drift_scores.items():
            instruments.drift_score.set(
                score,
                {
                    **identity,
                    semconv.ML_FEATURE_NAME: feature,
                    semconv.ML_DRIFT_STATISTIC: "psi",
                },
            )


def record_call(
    instruments: Instruments,
    tracer: trace.Tracer,
    rng: random.Random,
    model: ModelState,
    call: dict[str, str],
) -> None:
    rows = rng.randint(1, 8)
    duration_s = rng.uniform(*model.duration_s)
    confidence = rng.uniform(*model.confidence)
    # Recording inside a sampled span gives the histogram point an exemplar
    # with this span's trace id, as in the package.
    with tracer.start_as_current_span(f"predict {model.name}", attributes=call):
        if rng.random() < model.error_share:
            instruments.duration.record(
                duration_s, {**call, semconv.ERROR_TYPE: "ValueError"}
            )
            return
        instruments.duration.record(duration_s, call)
        instruments.cpu_time.record(duration_s * 0.8, call)
        instruments.predictions.add(
            rows, {k: call[k] for k in call if k != semconv.ML_OPERATION_NAME}
        )
        instruments.confidence.record(confidence, call)
        if confidence < 0.5:
            instruments.low_confidence.add(
                rows, {k: call[k] for k in call if k != semconv.ML_OPERATION_NAME}
            )


@dataclass
class TraceSender:
    """Sends whole traces with explicit timestamps, and logs their ids."""

    tracer: trace.Tracer
    review_logger: Any
    sent: dict[str, list[str]] = field(default_factory=dict)
    logged: dict[str, list[str]] = field(default_factory=dict)

    def send(
        self,
        category: str,
        span_name: str = "predict fraud_clf",
        duration_s: float = 0.005,
        events: tuple[str, ...] = (),
        status: StatusCode = StatusCode.UNSET,
        log_event: str | None = None,
    ) -> None:
        start_ns = time.time_ns()
        end_ns = start_ns + int(duration_s * 1e9)
        # Only the instrumentation's prediction spans carry model attributes.
        attributes: dict[str, str | int] = {}
        if span_name.startswith("predict"):
            attributes = {
                semconv.ML_MODEL_NAME: "fraud_clf",
                semconv.ML_MODEL_VERSION: "2",
                semconv.ML_OPERATION_NAME: span_name.split(" ")[0],
                semconv.ML_BATCH_SIZE: 1,
            }

        root = self.tracer.start_span(
            "POST /predict", kind=SpanKind.SERVER, start_time=start_ns
        )
        context = trace.set_span_in_context(root)
        child = self.tracer.start_span(
            span_name, context=context, attributes=attributes, start_time=start_ns
        )
        for event in events:
            child.add_event(
                event, {semconv.ML_FEATURE_NAME: "amount"}, timestamp=end_ns
            )
        if status is StatusCode.ERROR:
            child.set_attribute(semconv.ERROR_TYPE, "ValueError")
            child.set_status(
                Status(StatusCode.ERROR, "could not convert string to float")
            )
        elif status is StatusCode.OK:
            child.set_status(Status(StatusCode.OK))
        if log_event is not None:
            self.emit_log(child, log_event, category)

        child.end(end_time=end_ns)
        root.end(end_time=end_ns)
        trace_id = format(root.get_span_context().trace_id, "032x")
        self.sent.setdefault(category, []).append(trace_id)

    def emit_log(self, span: trace.Span, event_name: str, category: str) -> None:
        attributes: dict[str, Any] = {
            semconv.ML_MODEL_NAME: "fraud_clf",
            semconv.ML_MODEL_VERSION: "2",
        }
        if event_name == semconv.ML_PREDICTION_LOW_CONFIDENCE:
            body = "Low-confidence prediction"
            attributes[semconv.ML_PREDICTION_CONFIDENCE] = 0.41
            attributes[semconv.ML_PREDICTION_CONFIDENCE_THRESHOLD] = 0.5
            attributes[semconv.ML_PREDICTION_ROW] = 0
        else:
            body = "Drift detected in 1 features, worst first: amount"
            attributes[semconv.ML_DRIFT_STATISTIC] = "psi"
        self.review_logger.emit(
            context=trace.set_span_in_context(span),
            timestamp=time.time_ns(),
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            event_name=event_name,
            body=body,
            attributes=attributes,
        )
        trace_id = format(span.get_span_context().trace_id, "032x")
        self.logged.setdefault(category, []).append(trace_id)


def flagged_traces(sender: TraceSender, per_category: int = 5) -> None:
    for _ in range(per_category):
        sender.send("error", status=StatusCode.ERROR)
        sender.send(
            "drift",
            events=(semconv.ML_DRIFT_DETECTED,),
            log_event=semconv.ML_DRIFT_DETECTED,
        )
        sender.send(
            "low_confidence",
            events=(semconv.ML_PREDICTION_LOW_CONFIDENCE,),
            log_event=semconv.ML_PREDICTION_LOW_CONFIDENCE,
        )
        sender.send("out_of_range", events=(semconv.ML_INPUT_OUT_OF_RANGE,))
        sender.send("slow_predict", duration_s=SLOW_PREDICTION_S)
        sender.send(
            "slow_predict_proba",
            span_name="predict_proba fraud_clf",
            duration_s=SLOW_PREDICTION_S,
        )


def near_miss_traces(sender: TraceSender, per_kind: int) -> None:
    for _ in range(per_kind):
        sender.send("near_miss.predict_400ms", duration_s=0.4)
        sender.send(
            "near_miss.query_900ms", span_name="SELECT features", duration_s=0.9
        )
        sender.send("near_miss.other_event", events=("ml.model.reloaded",))
        sender.send("near_miss.status_ok", status=StatusCode.OK)


def rounds(seconds: float) -> Iterator[None]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        yield None
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(20260801)
    res = build_resource()

    tracer_provider = TracerProvider(resource=res)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    logger_provider = LoggerProvider(resource=res)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    meter_provider = build_meter_provider(res)

    tracer = tracer_provider.get_tracer("otel_mlmon")
    sender = TraceSender(tracer, logger_provider.get_logger("otel_mlmon"))
    flagged_traces(sender)
    near_miss_traces(sender, args.near_miss_traces)
    for _ in range(args.normal_traces):
        sender.send("normal")
    tracer_provider.force_flush()

    # Metric calls make spans too; those go to their own tracer provider
    # without an exporter, so the manifest above lists every exported trace.
    metric_tracer = TracerProvider(resource=res).get_tracer("otel_mlmon")
    instruments = Instruments(meter_provider)
    for _ in rounds(args.seconds):
        record_round(instruments, metric_tracer, rng)

    meter_provider.shutdown()
    logger_provider.shutdown()
    tracer_provider.shutdown()
    args.manifest.write_text(
        json.dumps({"traces": sender.sent, "logs": sender.logged}, indent=2),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
