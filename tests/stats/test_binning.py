"""Baseline binning against a per-feature searchsorted reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from otel_mlmon.stats.binning import counting_edges, drift_bins, slot_counts, slot_counts_sparse


def _edges(rng: np.random.Generator, features: int) -> np.ndarray:
    inner = np.sort(rng.normal(size=(features, 9)), axis=1)
    inner[0] = 0.0
    return counting_edges(inner, inner[:, 0] - 1, inner[:, -1] + 1)


def _reference(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    slots = edges.shape[1] + 2
    counts = np.zeros((values.shape[1], slots), dtype=np.int64)
    for j in range(values.shape[1]):
        column = values[:, j]
        finite = np.isfinite(column)
        index = np.searchsorted(edges[j], column[finite], side="right")
        counts[j] = np.bincount(index, minlength=slots)
        counts[j, -1] = (~finite).sum()
    return counts


@pytest.mark.parametrize("rows", [1, 5, 16, 17, 2000])
def test_slots_match_reference(rows: int) -> None:
    """Both code paths count like searchsorted, one feature at a time."""
    rng = np.random.default_rng(rows)
    edges = _edges(rng, 6)
    values = rng.normal(scale=2.0, size=(rows, 6))
    values[0, 1] = np.nan
    values[-1, 2] = -np.inf
    np.testing.assert_array_equal(
        slot_counts(values, edges), _reference(values, edges)
    )


def test_sparse_matches_dense() -> None:
    """Sparse counting equals dense counting, implicit zeros included."""
    rng = np.random.default_rng(5)
    edges = _edges(rng, 8)
    matrix = sp.random(400, 8, density=0.2, format="csr", random_state=9)
    np.testing.assert_array_equal(
        slot_counts_sparse(matrix, edges), slot_counts(matrix.toarray(), edges)
    )


def test_drift_bins_fold_outer_slots() -> None:
    """Below-min and above-max slots join the open outer bins."""
    slots = np.array([[1, 2, 3, 4, 5, 6]])
    assert drift_bins(slots).tolist() == [[3, 3, 9, 6]]


@pytest.mark.parametrize("bins", [252, 253, 254, 300])
@pytest.mark.parametrize("rows", [16, 17])
def test_many_bins_slot_width(bins: int, rows: int) -> None:
    """Slot numbers near and above the uint8 limit count like searchsorted."""
    rng = np.random.default_rng(bins + rows)
    inner = np.sort(rng.normal(size=(3, bins - 1)), axis=1)
    inner[1] = 0.0
    edges = counting_edges(inner, inner[:, 0] - 1, inner[:, -1] + 1)
    values = rng.normal(scale=3.0, size=(rows, 3))
    values[0, 0] = np.nan
    values[1, 2] = np.inf
    values[2, 1] = 0.0
    np.testing.assert_array_equal(
        slot_counts(values, edges), _reference(values, edges)
    )
