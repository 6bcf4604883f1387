"""Drift engine: statistics per feature, thresholds, windows, outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from otel_mlmon import Baseline, MonitorConfig, drift_report, wrap_model
from otel_mlmon.drift import DriftMonitor
from otel_mlmon.drift_report import (
    CONFIDENCE_FEATURE,
    PREDICTION_FEATURE,
    DriftSettings,
)
from otel_mlmon.stats.divergence import psi

RNG = np.random.default_rng(7)
TRAIN = RNG.normal(size=(4000, 3))


def _feed(monitor: DriftMonitor, rows: np.ndarray, **kwargs: Any) -> list:
    columns = monitor.columns_for([f"x{i}" for i in range(rows.shape[1])])
    assert columns is not None
    return monitor.observe(rows, columns, **kwargs).reports


def _settings(**changes: Any) -> DriftSettings:
    return DriftSettings(**{"window_rows": 1000, "min_rows": 1, **changes})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_numeric_statistics_reported() -> None:
    """Numeric features get PSI, JS, KS with p-value and Wasserstein."""
    monitor = DriftMonitor(Baseline.fit(TRAIN), _settings())
    live = RNG.normal(size=(1000, 3))
    live[:, 1] += 1.0
    (report,) = _feed(monitor, live)
    shifted = report.feature("x1")
    assert set(shifted.scores) == {
        "psi", "jensen_shannon", "ks", "ks_p_value", "wasserstein"
    }
    assert shifted.drifted
    assert shifted.scores["ks_p_value"] < 1e-10
    # Binned KS is a lower bound on scipy's raw KS statistic.
    raw = scipy.stats.ks_2samp(TRAIN[:, 1], live[:, 1]).statistic
    assert shifted.scores["ks"] <= raw + 1e-12
    assert shifted.scores["ks"] > raw - 0.1
    assert not report.feature("x0").drifted
    assert [f.name for f in report.drifted] == ["x1"]


@pytest.mark.parametrize(
    ("statistic", "score_key"),
    [
        ("jensen_shannon", "jensen_shannon"),
        ("wasserstein", "wasserstein"),
        ("ks", "ks_p_value"),
    ],
)
def test_verdict_statistic_configurable(statistic: str, score_key: str) -> None:
    """Another statistic can decide the verdict, with its default threshold."""
    monitor = DriftMonitor(Baseline.fit(TRAIN), _settings(statistic=statistic))
    live = RNG.normal(size=(1000, 3))
    live[:, 2] += 1.0
    (report,) = _feed(monitor, live)
    feature = report.feature("x2")
    assert feature.statistic == statistic
    assert feature.score == feature.scores[score_key]
    assert [f.name for f in report.drifted] == ["x2"]


def test_thresholds_per_feature() -> None:
    """A feature's own threshold wins over the default and drift_threshold."""
    thresholds = {"default": {"psi": 5.0}, "features": {"x1": {"psi": 0.01}}}
    monitor = DriftMonitor(
        Baseline.fit(TRAIN), _settings(psi_threshold=0.2, thresholds=thresholds)
    )
    live = RNG.normal(size=(1000, 3))
    live[:, 0] += 1.0
    (report,) = _feed(monitor, live)
    assert report.feature("x0").threshold == 5.0
    assert not report.feature("x0").drifted
    assert report.feature("x1").threshold == 0.01


def test_thresholds_from_environment() -> None:
    """OTEL_MLMON_DRIFT_THRESHOLDS is JSON of the same shape."""
    config = MonitorConfig.from_env(
        {
            "OTEL_MLMON_DRIFT_THRESHOLDS": '{"features": {"x0": {"ks": 0.01}}}',
            "OTEL_MLMON_DRIFT_STATISTIC": "ks",
        }
    )
    settings = DriftSettings.from_config(config)
    assert settings.threshold("x0", "ks") == 0.01
    assert settings.threshold("x1", "ks") == 0.05
    assert settings.threshold("x1", "psi") == 0.2


def test_min_rows_withholds_verdict() -> None:
    """A window below the minimum has scores but no drifted feature."""
    monitor = DriftMonitor(
        Baseline.fit(TRAIN), _settings(window_rows=50, min_rows=100)
    )
    (report,) = _feed(monitor, TRAIN[:50] + 5.0)
    assert not report.judged
    assert report.drifted == []
    assert report.feature("x0").scores["psi"] > 1.0


def test_time_window_closes_on_next_call() -> None:
    """A time window closes on the first call after its end."""
    clock = FakeClock()
    monitor = DriftMonitor(
        Baseline.fit(TRAIN),
        _settings(window_rows=10**6, window_seconds=60.0),
        clock=clock,
    )
    assert _feed(monitor, TRAIN[:30]) == []
    clock.now += 59.0
    assert _feed(monitor, TRAIN[30:31]) == []
    clock.now += 2.0
    (report,) = _feed(monitor, TRAIN[31:40])
    assert report.closed_by == "time"
    assert report.rows == 31
    # The rows of the closing call start the next window.
    clock.now += 200.0
    (report,) = _feed(monitor, TRAIN[:1])
    assert report.rows == 9


def test_time_window_skips_quiet_periods() -> None:
    """Empty time slots produce no report."""
    clock = FakeClock()
    monitor = DriftMonitor(
        Baseline.fit(TRAIN), _settings(window_seconds=10.0), clock=clock
    )
    clock.now += 1000.0
    assert _feed(monitor, TRAIN[:5]) == []


def test_categorical_drift_chi_square() -> None:
    """Categorical features get PSI, JS and chi-square; a shift is flagged."""
    train = pd.DataFrame(
        {"x": RNG.normal(size=3000), "c": RNG.choice(["a", "b", "c"], 3000)}
    )
    monitor = DriftMonitor(
        Baseline.fit(train), _settings(statistic="chi_square")
    )
    live = pd.DataFrame(
        {
            "x": RNG.normal(size=1000),
            "c": RNG.choice(["a", "b", "c"], 1000, p=[0.6, 0.2, 0.2]),
        }
    )
    columns = monitor.columns_for(["x"])
    assert columns is not None
    (report,) = monitor.observe(
        live[["x"]].to_numpy(), columns, monitor.category_index(live)
    ).reports
    feature = report.feature("c")
    assert set(feature.scores) == {
        "psi", "jensen_shannon", "chi_square", "chi_square_p_value"
    }
    assert feature.statistic == "chi_square"
    assert feature.drifted
    # chi-square does not apply to numbers, so PSI judges x.
    assert report.feature("x").statistic == "psi"


def test_prediction_and_confidence_drift_from_outputs() -> None:
    """Predictions and confidence are judged against their baseline."""
    from sklearn.linear_model import LogisticRegression

    x = RNG.normal(size=(3000, 2))
    y = (x[:, 0] + RNG.normal(scale=0.5, size=3000) > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    baseline = Baseline.fit(
        x, predictions=model.predict(x), confidence=model.predict_proba(x)
    )
    wrapped = wrap_model(
        model,
        baseline=baseline,
        config=MonitorConfig(drift_window_rows=500, drift_min_rows=100),
    )
    assert drift_report(wrapped) is None
    live = RNG.normal(size=(500, 2))
    live[:, 0] += 2.5
    wrapped.predict_proba(live)
    report = drift_report(wrapped)
    assert report is not None
    prediction = report.feature(PREDICTION_FEATURE)
    confidence = report.feature(CONFIDENCE_FEATURE)
    assert prediction.kind == "prediction"
    assert prediction.drifted
    assert confidence.drifted
    assert "chi_square_p_value" in prediction.scores
    assert "ks" in confidence.scores


def test_single_row_calls_count_outputs() -> None:
    """One-row calls count outputs the same as one batch."""
    from sklearn.linear_model import LogisticRegression

    x = RNG.normal(size=(600, 2))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    baseline = Baseline.fit(
        x, predictions=model.predict(x), confidence=model.predict_proba(x)
    )
    config = MonitorConfig(drift_window_rows=200, drift_min_rows=1)
    one = wrap_model(model, baseline=baseline, config=config)
    batch = wrap_model(model, baseline=baseline, config=config)
    for row in x[:200]:
        one.predict_proba(row[None, :])
    batch.predict_proba(x[:200])
    left, right = drift_report(one), drift_report(batch)
    assert left is not None and right is not None
    for a, b in zip(left.features, right.features):
        assert a.scores == pytest.approx(b.scores, nan_ok=True)


def test_drift_report_rejects_bare_model() -> None:
    """drift_report names the problem for an unwrapped model."""
    with pytest.raises(TypeError, match="returned by wrap_model"):
        drift_report(object())


def test_cumulative_counts_match_pooled() -> None:
    """Counts since start equal the counts of all rows, across windows."""
    baseline = Baseline.fit(TRAIN, bins=6)
    monitor = DriftMonitor(baseline, _settings(window_rows=333))
    rows = RNG.normal(size=(1000, 3))
    for start in range(0, 1000, 77):
        _feed(monitor, rows[start : start + 77])
    for row in rows[:10]:
        _feed(monitor, row[None, :])
    numeric, _ = monitor.cumulative_counts()
    pooled = DriftMonitor(baseline, _settings(window_rows=10**6))
    _feed(pooled, np.vstack([rows, rows[:10]]))
    expected, _ = pooled.cumulative_counts()
    np.testing.assert_array_equal(numeric, expected)
    assert numeric.sum(axis=1).tolist() == [1010] * 3
    np.testing.assert_allclose(
        psi(baseline.counts, numeric), psi(baseline.counts, expected)
    )
