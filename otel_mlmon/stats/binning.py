"""Count feature values into a baseline's bins, vectorised over the batch.

Each numeric feature has ``b`` bins cut by ``b - 1`` non-decreasing inner
edges taken from training quantiles; the outer bins are open to -inf and
+inf. For counting, the edges are framed by the training minimum and the
number just above the training maximum, so one pass also yields the values
outside the training range. Per feature, the counting slots are::

    0            below the training minimum
    1 .. b       the b drift bins
    b + 1        above the training maximum
    b + 2        missing or not finite

Equal edges (a constant or zero-inflated feature) leave the bins between
them empty in training and live data alike, so no deduplication is needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
SlotIndex = npt.NDArray[np.integer[Any]]
"""Slot numbers per value: uint8 for up to 253 edges, int64 above."""

# Below this many rows, one broadcast comparison against all edges is
# cheaper than a pass per edge, because it makes fewer numpy calls. Above
# it, a pass per edge touches less memory.
_BROADCAST_MAX_ROWS = 16


def counting_edges(
    inner_edges: FloatArray, low: FloatArray, high: FloatArray
) -> FloatArray:
    """Frame each feature's inner edges by its training min and max.

    Args:
        inner_edges: Shape (features, bins - 1), non-decreasing per row.
        low: Training minimum per feature.
        high: Training maximum per feature.

    Returns:
        Shape (features, bins + 1): ``[low, inner..., next float > high]``.
    """
    above = np.nextafter(high, np.inf)
    return np.column_stack([low, inner_edges, above]).astype(np.float64)


def slot_index(values: FloatArray, edges: FloatArray) -> SlotIndex:
    """Return the counting slot of every value of a dense batch.

    Args:
        values: Shape (rows, features), aligned with ``edges``.
        edges: Shape (features, bins + 1), from :func:`counting_edges`.

    Returns:
        Shape (rows, features): slot numbers, laid out as in the module
        docstring.
    """
    framed = edges.shape[1]
    index: SlotIndex
    if values.shape[0] <= _BROADCAST_MAX_ROWS:
        index = (values[:, :, None] >= edges).sum(axis=2)
    else:
        # One byte per value is enough for up to 253 edges, and moves an
        # eighth of the memory of int64.
        small = framed + 1 <= np.iinfo(np.uint8).max
        index = np.zeros(values.shape, dtype=np.uint8 if small else np.int64)
        for column in range(framed):
            index += values >= edges[:, column]
    if not all_finite(values):
        index[~np.isfinite(values)] = framed + 1
    return index


def all_finite(values: FloatArray) -> bool:
    """Tell whether every value of a 2-D float array is finite.

    A finite sum (one row) or a finite range (more rows) implies it. Both
    cost less than a mask and a reduction, and Python float arithmetic
    never warns. An overflow to inf only gives a false "no".
    """
    if values.shape[0] == 1:
        return math.isfinite(sum(values[0].tolist()))
    if not values.size:
        return True
    return math.isfinite(float(values.max()) - float(values.min()))


def count_slots(index: SlotIndex, slots: int) -> IntArray:
    """Count slot numbers from :func:`slot_index` per feature.

    Returns:
        Shape (features, slots).
    """
    features = index.shape[1]
    flat = index + _offsets(features, slots)
    counts = np.bincount(flat.ravel(), minlength=features * slots)
    shaped: IntArray = counts.reshape(features, slots)
    return shaped


def slot_counts(values: FloatArray, edges: FloatArray) -> IntArray:
    """Count a dense batch into the counting slots of each feature.

    Returns:
        Shape (features, bins + 3) counts, laid out as in the module docstring.
    """
    return count_slots(slot_index(values, edges), edges.shape[1] + 2)


_offset_cache: dict[tuple[int, int], IntArray] = {}


def _offsets(features: int, slots: int) -> IntArray:
    key = (features, slots)
    offsets = _offset_cache.get(key)
    if offsets is None:
        offsets = np.arange(features, dtype=np.int64) * slots
        if len(_offset_cache) < 64:
            _offset_cache[key] = offsets
    return offsets


def slot_counts_sparse(matrix: Any, edges: FloatArray) -> IntArray:
    """Count a scipy.sparse batch into slots, reading stored values only.

    Implicit zeros are counted per feature in the slot that 0.0 falls in.
    """
    features, framed = edges.shape
    slots = framed + 2
    coo = matrix.tocoo()
    rows = coo.shape[0]
    columns = coo.col.astype(np.int64)
    data = np.asarray(coo.data, dtype=np.float64)
    # One pass per edge keeps the temporary at one value per stored entry.
    index = np.zeros(data.shape, dtype=np.int64)
    for column in range(framed):
        index += data >= edges[columns, column]
    index = np.where(np.isfinite(data), index, framed + 1)
    flat = index + columns * slots
    counts = np.bincount(flat, minlength=features * slots)
    counts = counts.reshape(features, slots)
    stored = np.bincount(columns, minlength=features)
    zero_slot = (edges <= 0.0).sum(axis=1)
    counts[np.arange(features), zero_slot] += rows - stored
    return counts


def drift_bins(slots: IntArray) -> IntArray:
    """Fold counting slots into drift bins plus a last missing bin.

    Values below the training minimum join the first bin and values above
    the maximum join the last, because the outer bins are open.

    Returns:
        Shape (features, bins + 1): the bins, then the missing count.
    """
    bins = slots[:, 1:-1].copy()
    bins[:, 0] += slots[:, 0]
    bins[:, -2] += slots[:, -2]
    bins[:, -1] = slots[:, -1]
    return bins
