"""Drift windows: exact cuts, verdicts, range checks, column mapping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer

from otel_mlmon import Baseline
from otel_mlmon.drift import DriftMonitor
from otel_mlmon.drift_report import DriftSettings

DATA = load_breast_cancer().data


def _monitor(window: int = 100, threshold: float = 0.2) -> DriftMonitor:
    settings = DriftSettings(
        window_rows=window, psi_threshold=threshold, min_rows=1
    )
    return DriftMonitor(Baseline.fit(DATA, bins=5), settings)


def _psi(report) -> np.ndarray:
    return np.array([f.scores["psi"] for f in report.features])


def _feed(monitor: DriftMonitor, rows: np.ndarray, cuts: list[int]) -> list:
    columns = monitor.columns_for([f"x{i}" for i in range(rows.shape[1])])
    assert columns is not None
    verdicts = []
    for start, end in zip([0, *cuts], [*cuts, len(rows)]):
        verdicts += monitor.observe(rows[start:end], columns).reports
    return verdicts


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=568), max_size=8))
def test_verdicts_ignore_batching(cuts: list[int]) -> None:
    """Any split of the traffic into batches gives the same verdicts."""
    cuts = sorted(set(cuts))
    pooled = _feed(_monitor(), DATA, [])
    split = _feed(_monitor(), DATA, cuts)
    assert len(split) == len(pooled) == 5
    for left, right in zip(pooled, split):
        assert left.rows == right.rows == 100
        for one, other in zip(left.features, right.features):
            assert one.scores == pytest.approx(other.scores, nan_ok=True)


def test_shift_beyond_range_flagged() -> None:
    """Values beyond the training range count, and the shift is flagged."""
    monitor = _monitor(window=200)
    live = DATA[:200].copy()
    live[:, 3] = DATA[:, 3].max() * 2
    columns = monitor.columns_for([f"x{i}" for i in range(30)])
    assert columns is not None
    observation = monitor.observe(live, columns)
    counts = observation.range_counts()
    assert counts is not None
    assert counts[0][3] == 200
    (verdict,) = observation.reports
    assert verdict.drifted[0].name == "x3"
    assert verdict.drifted[0].score > 1.0


def test_same_distribution_not_flagged() -> None:
    """A window drawn from the training data is not flagged."""
    monitor = _monitor(window=400)
    rng = np.random.default_rng(1)
    columns = monitor.columns_for([f"x{i}" for i in range(30)])
    assert columns is not None
    observation = monitor.observe(DATA[rng.permutation(569)[:400]], columns)
    (verdict,) = observation.reports
    assert verdict.drifted == []
    assert float(_psi(verdict).max()) < 0.2


def test_unexpected_missing_counted() -> None:
    """NaN in a feature that had none in training is counted."""
    monitor = _monitor()
    live = DATA[:10].copy()
    live[:4, 7] = np.nan
    columns = monitor.columns_for([f"x{i}" for i in range(30)])
    assert columns is not None
    counts = monitor.observe(live, columns).range_counts()
    assert counts is not None
    assert counts[1][7] == 4
    assert counts[1].sum() == 4


def test_columns_by_name_and_position() -> None:
    """Inputs map to the baseline by name, or by position when unnamed."""
    names = [f"f{i}" for i in range(3)]
    baseline = Baseline.fit(DATA[:, :3], feature_names=names)
    monitor = DriftMonitor(baseline, DriftSettings(window_rows=10))
    reordered = monitor.columns_for(["extra", "f2", "f0", "f1"])
    assert reordered is not None
    assert reordered.tolist() == [2, 3, 1]
    positional = monitor.columns_for(["x0", "x1", "x2"])
    assert positional is not None
    assert positional.tolist() == [0, 1, 2]
    assert monitor.columns_for(["f0", "g1"]) is None


@pytest.mark.parametrize("window", [1, 7, 1000])
def test_window_row_count(window: int) -> None:
    """Windows close at exactly the configured row count."""
    verdicts = _feed(_monitor(window=window), DATA[:50], [13, 14, 40])
    assert all(verdict.rows == window for verdict in verdicts)
    assert len(verdicts) == 50 // window
