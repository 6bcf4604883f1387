"""Per-feature summaries of a batch: count, nulls, mean, std, min and max.

Non-finite values (NaN, +-inf) count as nulls and are left out of the other
statistics. A feature with no finite value gets 0 for its mean, std, min and
max, so every exported value is finite; its null count tells it apart.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass
class FeatureSummary:
    """Statistics per feature, as plain Python lists ready for attributes."""

    mean: list[float]
    std: list[float]
    min: list[float]
    max: list[float]
    null_count: list[int]


def summarise_dense(values: FloatArray) -> FeatureSummary:
    """Summarise the columns of a 2-D float array with at least one row."""
    finite = np.isfinite(values)
    if finite.all():
        return _summarise_finite(values)
    counts = finite.sum(axis=0)
    divisor = np.maximum(counts, 1)
    zeroed = np.where(finite, values, 0.0)
    mean = zeroed.sum(axis=0) / divisor
    centred = np.where(finite, values - mean, 0.0)
    std = np.sqrt(np.square(centred).sum(axis=0) / divisor)
    low = np.where(finite, values, np.inf).min(axis=0)
    high = np.where(finite, values, -np.inf).max(axis=0)
    empty = counts == 0
    low[empty] = 0.0
    high[empty] = 0.0
    return FeatureSummary(
        mean=mean.tolist(),
        std=std.tolist(),
        min=low.tolist(),
        max=high.tolist(),
        null_count=(values.shape[0] - counts).tolist(),
    )


def _summarise_finite(values: FloatArray) -> FeatureSummary:
    if values.shape[0] == 1:
        row = values[0].tolist()
        zeros = [0.0] * len(row)
        return FeatureSummary(row, zeros, row, row, [0] * len(row))
    mean = values.mean(axis=0)
    std = np.sqrt(np.square(values - mean).mean(axis=0))
    return FeatureSummary(
        mean=mean.tolist(),
        std=std.tolist(),
        min=values.min(axis=0).tolist(),
        max=values.max(axis=0).tolist(),
        null_count=[0] * values.shape[1],
    )


def summarise_sparse(matrix: Any) -> FeatureSummary:
    """Summarise the columns of a scipy.sparse matrix without densifying it.

    Implicit zeros count as values. Only the stored entries are read, so the
    cost follows the number of stored values, not rows times columns.
    """
    coo = matrix.tocoo()
    rows, width = coo.shape
    columns = coo.col
    data = np.asarray(coo.data, dtype=np.float64)
    finite = np.isfinite(data)
    nulls = np.bincount(columns[~finite], minlength=width)
    columns = columns[finite]
    data = data[finite]
    counts = rows - nulls
    divisor = np.maximum(counts, 1)
    mean = np.bincount(columns, weights=data, minlength=width) / divisor
    squares = np.bincount(columns, weights=data * data, minlength=width)
    variance = np.maximum(squares / divisor - mean * mean, 0.0)
    stored = np.bincount(columns, minlength=width)
    has_zero = stored < counts
    low = np.where(has_zero, 0.0, np.inf)
    high = np.where(has_zero, 0.0, -np.inf)
    np.minimum.at(low, columns, data)
    np.maximum.at(high, columns, data)
    empty = counts == 0
    low[empty] = 0.0
    high[empty] = 0.0
    return FeatureSummary(
        mean=mean.tolist(),
        std=np.sqrt(variance).tolist(),
        min=low.tolist(),
        max=high.tolist(),
        null_count=nulls.tolist(),
    )
