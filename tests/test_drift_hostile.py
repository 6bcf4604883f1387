"""Drift on hostile inputs, and properties of the streaming counts."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from otel_mlmon import Baseline
from otel_mlmon.drift import DriftMonitor
from otel_mlmon.drift_report import DriftSettings
from otel_mlmon.stats.binning import drift_bins, slot_counts

RNG = np.random.default_rng(11)


def _monitor(train: Any, **changes: Any) -> DriftMonitor:
    options = {"window_rows": 1000, "min_rows": 1, **changes}
    return DriftMonitor(Baseline.fit(train), DriftSettings(**options))


def _observe(monitor: DriftMonitor, rows: np.ndarray) -> list:
    columns = monitor.columns_for([f"x{i}" for i in range(rows.shape[1])])
    assert columns is not None
    return monitor.observe(rows, columns).reports


def _close(monitor: DriftMonitor, rows: np.ndarray) -> Any:
    reports = _observe(monitor, rows)
    if reports:
        return reports[-1]
    report = monitor.close_window()
    assert report is not None
    return report


@pytest.fixture(autouse=True)
def _no_runtime_warnings() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


def test_constant_training_feature() -> None:
    """A constant training feature: same value no drift, other values drift."""
    train = np.column_stack([np.full(500, 3.0), RNG.normal(size=500)])
    same = _close(_monitor(train), np.column_stack([np.full(200, 3.0), RNG.normal(size=200)]))
    assert not same.feature("x0").drifted
    assert same.feature("x0").scores["psi"] == 0.0
    moved = _close(_monitor(train), np.column_stack([np.full(200, 2.0), RNG.normal(size=200)]))
    assert moved.feature("x0").drifted
    assert np.isfinite(moved.feature("x0").scores["wasserstein"])


def test_zero_inflated_feature() -> None:
    """Equal zero edges: the zero share changing is flagged, not noise."""
    def sample(size: int, zeros: float) -> np.ndarray:
        values = RNG.exponential(2.0, size)
        values[RNG.random(size) < zeros] = 0.0
        return values[:, None]

    train = sample(5000, 0.7)
    assert not _close(_monitor(train), sample(2000, 0.7)).drift_detected
    report = _close(_monitor(train), sample(2000, 0.3))
    assert report.feature("x0").drifted


def test_values_beyond_training_range() -> None:
    """Live values past the training max count in the open last bin."""
    train = RNG.normal(size=(2000, 1))
    monitor = _monitor(train)
    live = RNG.normal(loc=6.0, size=(500, 1))
    columns = monitor.columns_for(["x0"])
    assert columns is not None
    observation = monitor.observe(live, columns)
    counts = observation.range_counts()
    assert counts is not None
    assert counts[0][0] == int((live[:, 0] > train.max()).sum())
    report = monitor.close_window()
    assert report is not None
    numeric, _ = monitor.cumulative_counts()
    assert numeric.sum() == 500
    assert report.feature("x0").drifted
    # Binned KS reaches at most the share below the last inner edge, 0.9.
    assert report.feature("x0").scores["ks"] == pytest.approx(0.9)


def test_category_unseen_in_training() -> None:
    """A category new since training goes to the unseen bin and drifts."""
    train = pd.DataFrame({"x": RNG.normal(size=1000), "c": RNG.choice(["a", "b"], 1000)})
    monitor = _monitor(train, statistic="chi_square")
    live = pd.DataFrame({"x": RNG.normal(size=400), "c": RNG.choice(["a", "b", "new"], 400)})
    index = monitor.category_index(live)
    assert index is not None
    # Bins: a, b, other, unseen, missing.
    assert (index[:, 0] == 3).sum() == (live["c"] == "new").sum()
    columns = monitor.columns_for(["x"])
    assert columns is not None
    monitor.observe(live[["x"]].to_numpy(), columns, index)
    report = monitor.close_window()
    assert report is not None
    feature = report.feature("c")
    assert feature.drifted
    assert np.isfinite(feature.scores["chi_square"])


def test_feature_missing_for_whole_window() -> None:
    """A feature missing in every row: PSI flags it, KS has no value."""
    train = RNG.normal(size=(1000, 2))
    live = RNG.normal(size=(300, 2))
    live[:, 1] = np.nan
    report = _close(_monitor(train), live)
    missing = report.feature("x1")
    assert missing.drifted
    assert np.isnan(missing.scores["ks"])
    assert np.isnan(missing.scores["wasserstein"])
    assert not report.feature("x0").drifted


def test_single_row_window() -> None:
    """Windows of one row close with scores and no errors."""
    monitor = _monitor(RNG.normal(size=(500, 2)), window_rows=1)
    reports = _observe(monitor, RNG.normal(size=(3, 2)))
    assert len(reports) == 3
    assert all(report.rows == 1 for report in reports)
    assert all(np.isfinite(f.scores["psi"]) for f in reports[0].features)
    strict = _monitor(RNG.normal(size=(500, 2)), window_rows=1, min_rows=100)
    (report,) = _observe(strict, RNG.normal(size=(1, 2)))
    assert not report.judged


def test_baseline_from_ten_rows() -> None:
    """A 10-row baseline still judges: a large shift drifts, a copy does not."""
    train = RNG.normal(size=(10, 2))
    assert not _close(_monitor(train), train.copy()).drift_detected
    report = _close(_monitor(train), train + 10.0)
    assert report.feature("x0").drifted
    assert report.feature("x1").drifted


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(5, 200), st.integers(1, 4)),
        elements=st.one_of(st.floats(-1e6, 1e6), st.just(np.nan)),
    )
)
def test_identical_samples_no_drift(data: np.ndarray) -> None:
    """The training data replayed as the live window never drifts."""
    report = _close(_monitor(data), data.copy())
    assert not report.drift_detected
    for feature in report.features:
        assert feature.scores["psi"] == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 500),
    st.lists(st.integers(1, 599), max_size=10),
    st.integers(0, 2**32 - 1),
)
def test_streaming_equals_pooled(
    window: int, cuts: list[int], seed: int
) -> None:
    """Any split of the rows into batches gives the pooled result."""
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(300, 3))
    rows = rng.normal(0.3, 1.2, size=(600, 3))
    rows[rng.random(rows.shape) < 0.05] = np.nan
    pooled = _observe(_monitor(train, window_rows=window), rows)
    streamed_monitor = _monitor(train, window_rows=window)
    streamed = []
    edges = sorted(set(cuts))
    for start, end in zip([0, *edges], [*edges, 600]):
        streamed += _observe(streamed_monitor, rows[start:end])
    assert len(streamed) == len(pooled) == 600 // window
    for left, right in zip(pooled, streamed):
        assert left.rows == right.rows
        for one, other in zip(left.features, right.features):
            assert one.scores == pytest.approx(other.scores, nan_ok=True)
            assert one.drifted == other.drifted
    assert streamed_monitor.cumulative_counts()[0].sum() == 600 * 3


def test_clock_step_back_keeps_newest() -> None:
    """A wall clock stepped back does not keep the older window's report."""
    now = [1000.0]
    train = RNG.normal(size=(500, 2))
    monitor = DriftMonitor(
        Baseline.fit(train),
        DriftSettings(window_rows=100, min_rows=1),
        clock=lambda: now[0],
    )
    _observe(monitor, RNG.normal(size=(100, 2)))
    now[0] = 400.0
    reports = _observe(monitor, RNG.normal(size=(100, 2)) + 5.0)
    assert len(reports) == 1
    assert monitor.last_report is reports[0]
    assert monitor.last_judged_report is reports[0]


@pytest.mark.parametrize("sparse", [False, True])
def test_streaming_counts_equal_pooled(sparse: bool) -> None:
    """Batches closing no, one and many windows count like one pooled batch."""
    train = np.column_stack([RNG.normal(size=2000), np.full(2000, 2.0)])
    monitor = _monitor(train, window_rows=100)
    columns = monitor.columns_for(["x0", "x1"])
    assert columns is not None
    batches = []
    for size in (1, 16, 17, 65, 1, 100, 250, 1000, 3, 17):
        batch = RNG.normal(scale=2.0, size=(size, 2))
        batch[:, 1] = RNG.choice([2.0, 1.0, 0.0], size)
        batches.append(batch)
        monitor.observe(sp.csr_matrix(batch) if sparse else batch, columns)
    pooled = drift_bins(slot_counts(np.vstack(batches), monitor._edges))
    np.testing.assert_array_equal(monitor.cumulative_counts()[0], pooled)
