"""Drift memory is fixed by features x bins: 10 million rows, flat RSS."""

from __future__ import annotations

import gc

import numpy as np

from otel_mlmon import Baseline
from otel_mlmon.drift import DriftMonitor
from otel_mlmon.drift_report import DriftSettings
from otel_mlmon.metrics import resident_set_size

FEATURES = 20
BATCH = 10_000
TOTAL_ROWS = 10_000_000
# Allocator noise; growth with traffic would be 160 MB per million rows
# if rows were kept.
MAX_GROWTH_BYTES = 8 * 1024 * 1024


def test_rss_flat_over_ten_million_rows() -> None:
    """Replaying 10 million rows leaves the resident set size flat."""
    rng = np.random.default_rng(3)
    baseline = Baseline.fit(rng.normal(size=(5000, FEATURES)), bins=10)
    monitor = DriftMonitor(
        baseline, DriftSettings(window_rows=100_000, min_rows=100)
    )
    columns = monitor.columns_for([f"x{i}" for i in range(FEATURES)])
    assert columns is not None
    batches = [rng.normal(0.1 * k, 1.0, size=(BATCH, FEATURES)) for k in range(4)]
    for step in range(50):
        monitor.observe(batches[step % 4], columns)
    gc.collect()
    before = resident_set_size()
    reports = 0
    for step in range(TOTAL_ROWS // BATCH):
        reports += len(monitor.observe(batches[step % 4], columns).reports)
    gc.collect()
    after = resident_set_size()
    assert reports == (TOTAL_ROWS + 50 * BATCH) // 100_000 - 5
    assert after - before < MAX_GROWTH_BYTES, (before, after)
    numeric, _ = monitor.cumulative_counts()
    assert int(numeric[0].sum()) == TOTAL_ROWS + 50 * BATCH
