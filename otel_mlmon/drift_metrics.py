"""Drift metrics read at collection time: scores, per-bin counts, shares.

``ml.feature.drift.score`` is an observable gauge of the last judged
window's scores per feature and statistic.

A process counts only its own traffic, so each one exports how many live
rows fell in every drift bin (``ml.feature.bin.rows``, an observable
counter) next to the baseline's share of that bin
(``ml.feature.baseline.fraction``, an observable gauge). Prometheus
recording rules then sum the counts over all replicas and compute PSI
exactly as :func:`otel_mlmon.stats.divergence.psi` does.

The request path pays nothing for this: the monitor already keeps the
counts in numpy, and the SDK reads them in these callbacks, once per
collection.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_mlmon import semconv
from otel_mlmon.drift import DriftMonitor
from otel_mlmon.metrics import create_feature_drift_score
from otel_mlmon.version import __version__


class _Series:
    """The capped attribute sets of one monitor, in a fixed order."""

    def __init__(
        self,
        monitor: DriftMonitor,
        identity: dict[str, str],
        cap: int,
        max_features: int,
    ) -> None:
        self.monitor = weakref.ref(monitor)
        self.identity = identity
        self.max_features = max_features
        self._score_attributes: dict[tuple[str, str], dict[str, str]] = {}
        baseline = monitor.baseline
        numeric_labels = [str(i) for i in range(baseline.bins)] + ["missing"]
        self.numeric: list[tuple[int, int]] = []
        self.categorical: list[tuple[int, int]] = []
        self.attributes: list[dict[str, str]] = []
        for row, name in enumerate(baseline.feature_names):
            if len(self.attributes) + len(numeric_labels) > cap:
                break
            for column, label in enumerate(numeric_labels):
                self.numeric.append((row, column))
                self.attributes.append(_attributes(identity, name, label))
        for row, profile in enumerate(baseline.categorical):
            labels = profile.bin_labels
            if len(self.attributes) + len(labels) > cap:
                break
            for column, label in enumerate(labels):
                self.categorical.append((row, column))
                self.attributes.append(_attributes(identity, profile.name, label))
        self.fractions = self._fractions(monitor)

    def _fractions(self, monitor: DriftMonitor) -> list[float]:
        numeric = monitor.baseline.counts.astype(np.float64)
        categorical = monitor.categories.expected.astype(np.float64)
        values = []
        for counts, cells in ((numeric, self.numeric), (categorical, self.categorical)):
            if not cells:
                continue
            totals = counts.sum(axis=1, keepdims=True)
            shares = counts / np.where(totals > 0, totals, 1.0)
            rows, columns = np.array(cells).T
            values += shares[rows, columns].tolist()
        return values

    def scores(self) -> list[Observation]:
        """Return the last judged window's scores, NaN left out."""
        monitor = self.monitor()
        report = monitor.last_judged_report if monitor is not None else None
        if report is None:
            return []
        observations = []
        for feature in report.features[: self.max_features]:
            for statistic, score in feature.scores.items():
                if score != score:
                    continue
                key = (feature.name, statistic)
                attributes = self._score_attributes.get(key)
                if attributes is None:
                    attributes = {
                        **self.identity,
                        semconv.ML_FEATURE_NAME: feature.name,
                        semconv.ML_DRIFT_STATISTIC: statistic,
                    }
                    self._score_attributes[key] = attributes
                observations.append(Observation(score, attributes))
        return observations

    def counts(self) -> list[int] | None:
        monitor = self.monitor()
        if monitor is None:
            return None
        numeric, categorical = monitor.cumulative_counts()
        values = []
        for counts, cells in ((numeric, self.numeric), (categorical, self.categorical)):
            if cells:
                rows, columns = np.array(cells).T
                values += counts[rows, columns].tolist()
        return values


def _attributes(identity: dict[str, str], name: str, label: str) -> dict[str, str]:
    return {
        **identity,
        semconv.ML_FEATURE_NAME: name,
        semconv.ML_FEATURE_BIN: label,
    }


class _BinInstruments:
    """The two observable instruments of one meter, and their sources."""

    def __init__(self, meter: metrics.Meter) -> None:
        self._lock = threading.Lock()
        self._series: list[_Series] = []
        create_feature_drift_score(meter, [self._observe_scores])
        meter.create_observable_counter(
            semconv.ML_FEATURE_BIN_ROWS,
            callbacks=[self._observe_counts],
            unit="{row}",
            description="Live rows per feature and drift bin.",
        )
        meter.create_observable_gauge(
            semconv.ML_FEATURE_BASELINE_FRACTION,
            callbacks=[self._observe_fractions],
            unit="1",
            description="Training share of each feature's drift bin.",
        )

    def add(self, series: _Series) -> None:
        with self._lock:
            self._series = [s for s in self._series if s.monitor() is not None]
            self._series.append(series)

    def _observe_scores(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            sources = list(self._series)
        return [
            observation for series in sources for observation in series.scores()
        ]

    def _observe_counts(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            sources = list(self._series)
        observations = []
        for series in sources:
            counts = series.counts()
            if counts is None:
                continue
            observations += [
                Observation(count, attributes)
                for count, attributes in zip(counts, series.attributes)
            ]
        return observations

    def _observe_fractions(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            sources = [s for s in self._series if s.monitor() is not None]
        return [
            Observation(fraction, attributes)
            for series in sources
            for fraction, attributes in zip(series.fractions, series.attributes)
        ]


_by_provider: weakref.WeakKeyDictionary[Any, _BinInstruments] = (
    weakref.WeakKeyDictionary()
)
_global: _BinInstruments | None = None
_lock = threading.Lock()


def export_drift_metrics(
    monitor: DriftMonitor,
    identity: dict[str, str],
    meter_provider: MeterProvider | None,
    max_features: int,
) -> None:
    """Export a monitor's scores, per-bin counts and baseline shares.

    Scores go out for the first ``max_features`` features. At most
    ``monitor.settings.max_bin_series`` per-bin attribute sets are
    exported, whole features at a time in baseline order: numeric
    features first, then categorical ones.
    """
    global _global
    cap = monitor.settings.max_bin_series
    with _lock:
        if meter_provider is None:
            if _global is None:
                _global = _BinInstruments(metrics.get_meter("otel_mlmon", __version__))
            instruments = _global
        else:
            found = _by_provider.get(meter_provider)
            if found is None:
                meter = meter_provider.get_meter("otel_mlmon", __version__)
                found = _BinInstruments(meter)
                _by_provider[meter_provider] = found
            instruments = found
    instruments.add(_Series(monitor, identity, cap, max_features))
