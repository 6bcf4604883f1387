"""Metric instruments of the feedback loop, built once per meter provider.

Each ``create_*`` factory sets an instrument's name, unit and description
together, from :mod:`otel_mlmon.semconv`, as :mod:`otel_mlmon.metrics`
does for the prediction instruments.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider

from otel_mlmon import semconv
from otel_mlmon.version import __version__

LABEL_DELAY_BUCKETS_S = (
    1.0,
    10.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    4 * 3600.0,
    12 * 3600.0,
    86400.0,
    3 * 86400.0,
    7 * 86400.0,
    30 * 86400.0,
)
"""Bucket bounds of the label delay histogram: 1 s to 30 days."""


def create_accuracy(meter: Meter) -> Any:
    """Create the gauge of a classifier's accuracy over its label window."""
    return meter.create_gauge(
        semconv.ML_MODEL_ACCURACY,
        unit="1",
        description="Share of labelled predictions in the window that were right.",
    )


def create_precision(meter: Meter) -> Any:
    """Create the gauge of a classifier's precision per class."""
    return meter.create_gauge(
        semconv.ML_MODEL_PRECISION,
        unit="1",
        description="Share of predictions of a class in the window that were right.",
    )


def create_recall(meter: Meter) -> Any:
    """Create the gauge of a classifier's recall per class."""
    return meter.create_gauge(
        semconv.ML_MODEL_RECALL,
        unit="1",
        description="Share of labels of a class in the window that were predicted.",
    )


def create_mae(meter: Meter) -> Any:
    """Create the gauge of a regressor's mean absolute error."""
    # No unit: the error has the unit of the model's output, which the
    # package does not know. An empty unit adds no Prometheus suffix.
    return meter.create_gauge(
        semconv.ML_MODEL_MAE,
        unit="",
        description="Mean absolute error of the labelled predictions in the window.",
    )


def create_rmse(meter: Meter) -> Any:
    """Create the gauge of a regressor's root mean squared error."""
    return meter.create_gauge(
        semconv.ML_MODEL_RMSE,
        unit="",
        description="Root mean squared error of the labelled predictions in "
        "the window.",
    )


def create_label_delay(meter: Meter) -> Histogram:
    """Create the histogram of seconds from a prediction to its label."""
    return meter.create_histogram(
        semconv.ML_FEEDBACK_LABEL_DELAY,
        unit="s",
        description="Time from a prediction to the arrival of its label.",
        explicit_bucket_boundaries_advisory=LABEL_DELAY_BUCKETS_S,
    )


def create_labels(meter: Meter) -> Counter:
    """Create the counter of labels received, by outcome."""
    return meter.create_counter(
        semconv.ML_FEEDBACK_LABELS,
        unit="{label}",
        description="Labels received, by whether they matched a stored prediction.",
    )


def create_dropped_predictions(meter: Meter) -> Counter:
    """Create the counter of predictions not stored because the queue was full."""
    return meter.create_counter(
        semconv.ML_FEEDBACK_DROPPED_PREDICTIONS,
        unit="{prediction}",
        description="Predictions not stored for feedback because the write "
        "queue was full or the write failed.",
    )


class FeedbackInstruments:
    """One of each feedback instrument, from one meter."""

    def __init__(self, meter: Meter) -> None:
        self.accuracy = create_accuracy(meter)
        self.precision = create_precision(meter)
        self.recall = create_recall(meter)
        self.mae = create_mae(meter)
        self.rmse = create_rmse(meter)
        self.label_delay = create_label_delay(meter)
        self.labels = create_labels(meter)
        self.dropped = create_dropped_predictions(meter)


_instruments: weakref.WeakKeyDictionary[Any, FeedbackInstruments] = (
    weakref.WeakKeyDictionary()
)
_global_instruments: FeedbackInstruments | None = None
_lock = threading.Lock()


def feedback_instruments_for(
    meter_provider: MeterProvider | None,
) -> FeedbackInstruments:
    """Return the shared :class:`FeedbackInstruments` of a meter provider.

    ``None`` means the global provider.
    """
    global _global_instruments
    with _lock:
        if meter_provider is None:
            if _global_instruments is None:
                meter = metrics.get_meter("otel_mlmon", __version__)
                _global_instruments = FeedbackInstruments(meter)
            return _global_instruments
        found = _instruments.get(meter_provider)
        if found is None:
            meter = meter_provider.get_meter("otel_mlmon", __version__)
            found = FeedbackInstruments(meter)
            _instruments[meter_provider] = found
        return found
