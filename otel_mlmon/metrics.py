"""The metric instruments of otel_mlmon, built once per meter provider.

Each ``create_*`` factory sets an instrument's name, unit and description
together, from :mod:`otel_mlmon.semconv`. :class:`Instruments` has one of
each, and models that share a meter provider share them.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import (
    CallbackOptions,
    Counter,
    Histogram,
    Meter,
    MeterProvider,
    Observation,
)

from otel_mlmon import semconv
from otel_mlmon.version import __version__

DURATION_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Bucket bounds of the duration and CPU time histograms: 0.5 ms to 10 s."""

CONFIDENCE_BUCKETS = tuple(round(step / 10, 1) for step in range(1, 10))
"""Bucket bounds of the confidence histogram, in steps of 0.1."""


def create_prediction_duration(meter: Meter) -> Histogram:
    """Create the histogram of call durations, in seconds."""
    return meter.create_histogram(
        semconv.ML_MODEL_PREDICTION_DURATION,
        unit="s",
        description="Duration of model prediction calls.",
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
    )


def create_predictions(meter: Meter) -> Counter:
    """Create the counter of predicted rows."""
    return meter.create_counter(
        semconv.ML_MODEL_PREDICTIONS,
        unit="{prediction}",
        description="Rows predicted by the model.",
    )


def create_prediction_confidence(meter: Meter) -> Histogram:
    """Create the histogram of per-call mean confidence."""
    return meter.create_histogram(
        semconv.ML_MODEL_PREDICTION_CONFIDENCE,
        unit="1",
        description="Mean confidence of the rows of each prediction call.",
        explicit_bucket_boundaries_advisory=CONFIDENCE_BUCKETS,
    )


def create_low_confidence_predictions(meter: Meter) -> Counter:
    """Create the counter of rows below the confidence threshold."""
    return meter.create_counter(
        semconv.ML_MODEL_LOW_CONFIDENCE_PREDICTIONS,
        unit="{prediction}",
        description="Rows predicted with confidence below the threshold.",
    )


def create_prediction_cpu_time(meter: Meter) -> Histogram:
    """Create the histogram of the calling thread's CPU time per call."""
    return meter.create_histogram(
        semconv.ML_MODEL_PREDICTION_CPU_TIME,
        unit="s",
        description="CPU time of the calling thread during each call.",
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
    )


def create_feature_drift_score(
    meter: Meter,
    callbacks: Sequence[Callable[[CallbackOptions], Iterable[Observation]]],
) -> Any:
    """Create the observable gauge of the latest drift score per feature.

    It is observable, so that the scores of a closed window cost the
    request path nothing: the callbacks read them at collection time.
    """
    return meter.create_observable_gauge(
        semconv.ML_FEATURE_DRIFT_SCORE,
        callbacks=list(callbacks),
        unit="1",
        description="Drift score of a feature in its last closed window.",
    )


def create_memory_usage(meter: Meter) -> Any:
    """Create the observable gauge of the process's resident set size."""
    return meter.create_observable_gauge(
        semconv.PROCESS_MEMORY_USAGE,
        callbacks=[_observe_memory],
        unit="By",
        description="Resident set size of the process.",
    )


def resident_set_size() -> int:
    """Return the process's resident set size in bytes.

    Reads /proc on Linux. Elsewhere it falls back to the peak size that
    ``getrusage`` reports, the closest figure the standard library has.
    """
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _observe_memory(options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(resident_set_size())]


class Instruments:
    """One of each instrument of the package, from one meter."""

    def __init__(self, meter: Meter) -> None:
        self.duration = create_prediction_duration(meter)
        self.predictions = create_predictions(meter)
        self.confidence = create_prediction_confidence(meter)
        self.low_confidence = create_low_confidence_predictions(meter)
        self.cpu_time = create_prediction_cpu_time(meter)
        self.memory = create_memory_usage(meter)


_instruments: weakref.WeakKeyDictionary[Any, Instruments] = (
    weakref.WeakKeyDictionary()
)
_global_instruments: Instruments | None = None
_lock = threading.Lock()


def instruments_for(meter_provider: MeterProvider | None) -> Instruments:
    """Return the shared :class:`Instruments` of a meter provider.

    ``None`` means the global provider, whose meter follows it once the SDK
    is set up later.
    """
    global _global_instruments
    with _lock:
        if meter_provider is None:
            if _global_instruments is None:
                meter = metrics.get_meter("otel_mlmon", __version__)
                _global_instruments = Instruments(meter)
            return _global_instruments
        found = _instruments.get(meter_provider)
        if found is None:
            meter = meter_provider.get_meter("otel_mlmon", __version__)
            found = Instruments(meter)
            _instruments[meter_provider] = found
        return found
