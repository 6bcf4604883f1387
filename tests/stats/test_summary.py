"""Batch summaries against plain numpy, on dense and sparse input."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from otel_mlmon.stats.summary import summarise_dense, summarise_sparse


def test_dense_matches_numpy() -> None:
    """Without missing values, summaries equal numpy's reductions."""
    values = np.random.default_rng(0).normal(size=(500, 7))
    summary = summarise_dense(values)
    np.testing.assert_allclose(summary.mean, values.mean(axis=0))
    np.testing.assert_allclose(summary.std, values.std(axis=0))
    assert summary.min == values.min(axis=0).tolist()
    assert summary.max == values.max(axis=0).tolist()
    assert summary.null_count == [0] * 7


def test_dense_ignores_non_finite() -> None:
    """NaN and inf are nulls; all-NaN columns give zeros, no warning."""
    values = np.array([[1.0, np.nan, np.inf], [3.0, np.nan, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = summarise_dense(values)
    assert summary.mean == [2.0, 0.0, 5.0]
    assert summary.std == [1.0, 0.0, 0.0]
    assert summary.min == [1.0, 0.0, 5.0]
    assert summary.null_count == [0, 2, 1]
    assert all(type(v) is float for v in summary.mean)
    assert all(type(v) is int for v in summary.null_count)


def test_one_row_is_the_row() -> None:
    """A one-row batch summarises to the row itself."""
    summary = summarise_dense(np.array([[1.5, -2.0]]))
    assert summary.mean == [1.5, -2.0]
    assert summary.std == [0.0, 0.0]


def test_sparse_matches_dense() -> None:
    """Sparse summaries equal dense ones, implicit zeros included."""
    matrix = sp.random(300, 20, density=0.1, format="csr", random_state=3)
    matrix.data[::7] = np.nan
    dense = summarise_dense(matrix.toarray())
    sparse = summarise_sparse(matrix)
    np.testing.assert_allclose(sparse.mean, dense.mean)
    np.testing.assert_allclose(sparse.std, dense.std, atol=1e-12)
    assert sparse.min == dense.min
    assert sparse.max == dense.max
    assert sparse.null_count == dense.null_count
