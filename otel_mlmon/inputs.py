"""Read a model's input into a numeric feature view, without copying it.

Supported inputs are numpy arrays (1-D and 2-D), pandas DataFrames and
Series, scipy.sparse matrices and Python lists. The caller's object is never
modified: numeric data are read through views, or copied once when a dtype
conversion is needed. Anything else gets no summary and a reason, which the
span reports.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from otel_mlmon.stats.tensor import is_tensor

FloatArray = npt.NDArray[np.float64]

_NUMERIC_KINDS = frozenset("biuf")
_positional_names_cache: dict[int, tuple[str, ...]] = {}


@dataclasses.dataclass
class CategoricalSummary:
    """Counts for string and categorical features; their values stay here."""

    names: list[str]
    distinct_counts: list[int]
    null_counts: list[int]


@dataclasses.dataclass(slots=True)
class InputView:
    """A model input as numeric columns, with names and a row count.

    ``numeric`` is a 2-D float array or a scipy.sparse matrix of shape
    (rows, features) aligned with ``names``. It is None when the input could
    not be read, and then ``skipped`` gives the reason. ``rows`` is None
    when the row count is not known.
    """

    kind: str
    rows: int | None
    numeric: Any = None
    names: tuple[str, ...] = ()
    categorical: CategoricalSummary | None = None
    skipped: str | None = None


def positional_names(count: int) -> tuple[str, ...]:
    """Return the names ``x0 .. x{count-1}`` used when a model has none."""
    names = _positional_names_cache.get(count)
    if names is None:
        names = tuple(f"x{index}" for index in range(count))
        if len(_positional_names_cache) < 64:
            _positional_names_cache[count] = names
    return names


def read_input(data: Any, names: Sequence[str] | None = None) -> InputView:
    """Read ``data`` into an :class:`InputView`.

    Args:
        data: The first argument of the model call.
        names: Feature names to use for arrays and lists, whose columns
            have no names of their own. Ignored where their count does not
            match the input's width.
    """
    if isinstance(data, np.ndarray):
        return _read_array(data, "numpy", names)
    module = type(data).__module__
    if module.startswith("pandas"):
        return _read_pandas(data, names)
    if module.startswith("scipy.sparse"):
        return _read_sparse(data, names)
    if isinstance(data, (list, tuple)):
        return _read_list(data, names)
    if is_tensor(data):
        return _read_tensor(data, names)
    if isinstance(data, Mapping):
        feed = _read_feed(data, names)
        if feed is not None:
            return feed
    return InputView(
        kind=type(data).__name__,
        rows=None,
        skipped=f"unsupported input type {module}.{type(data).__qualname__}",
    )


def _read_array(
    array: npt.NDArray[Any], kind: str, names: Sequence[str] | None
) -> InputView:
    if array.ndim == 1:
        width = len(names) if names else 0
        if width == array.shape[0] and width != 1:
            array = array.reshape(1, -1)
        else:
            array = array.reshape(-1, 1)
    if array.ndim != 2:
        return InputView(
            kind=kind,
            rows=int(array.shape[0]) if array.ndim else None,
            skipped=f"input has {array.ndim} dimensions, not 1 or 2",
        )
    rows = int(array.shape[0])
    if array.dtype.kind not in _NUMERIC_KINDS:
        numeric = _to_float_or_none(array)
        if numeric is None:
            return InputView(
                kind=kind,
                rows=rows,
                skipped=f"non-numeric array of dtype {array.dtype.str}",
            )
        array = numeric
    elif array.dtype != np.float64:
        # Values beyond float64's range (long double) become inf, and so
        # count as nulls; the cast's overflow warning is expected.
        with np.errstate(over="ignore"):
            array = array.astype(np.float64)
    return InputView(
        kind=kind,
        rows=rows,
        numeric=array,
        names=_names_for(array.shape[1], names),
    )


def _read_tensor(tensor: Any, names: Sequence[str] | None) -> InputView:
    """Read a torch tensor, which stays on its device (see stats.tensor)."""
    if tensor.dim() == 1:
        width = len(names) if names else 0
        if width == tensor.shape[0] and width != 1:
            tensor = tensor.reshape(1, -1)
        else:
            tensor = tensor.reshape(-1, 1)
    if tensor.dim() != 2:
        return InputView(
            kind="torch",
            rows=int(tensor.shape[0]) if tensor.dim() else None,
            skipped=f"input has {tensor.dim()} dimensions, not 1 or 2",
        )
    if tensor.is_complex():
        return InputView(
            kind="torch",
            rows=int(tensor.shape[0]),
            skipped=f"non-numeric tensor of dtype {tensor.dtype}",
        )
    return InputView(
        kind="torch",
        rows=int(tensor.shape[0]),
        numeric=tensor,
        names=_names_for(int(tensor.shape[1]), names),
    )


def _read_feed(
    feed: Mapping[Any, Any], names: Sequence[str] | None
) -> InputView | None:
    """Read the first 2-D numeric array of an input feed (name -> array).

    ONNX Runtime sessions take their inputs as such a mapping. Returns None
    when the mapping contains no such array (a dict of columns, say).
    """
    for value in feed.values():
        if (
            isinstance(value, np.ndarray)
            and value.ndim == 2
            and value.dtype.kind in _NUMERIC_KINDS
        ):
            return _read_array(value, "numpy", names)
    return None


def _to_float_or_none(array: npt.NDArray[Any]) -> FloatArray | None:
    if array.dtype.kind != "O":
        return None
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        # OverflowError: a Python int beyond float64's range, such as 10**400.
        return None


def _names_for(width: int, names: Sequence[str] | None) -> tuple[str, ...]:
    if names is not None and len(names) == width:
        return tuple(names)
    return positional_names(width)


def _read_list(data: Sequence[Any], names: Sequence[str] | None) -> InputView:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.asarray(data)
    except (TypeError, ValueError):
        return InputView(
            kind="list", rows=len(data), skipped="ragged or mixed list"
        )
    if array.size == 0 and array.ndim == 1:
        return InputView(kind="list", rows=0, skipped="empty input")
    return _read_array(array, "list", names)


def _read_sparse(matrix: Any, names: Sequence[str] | None) -> InputView:
    shape: tuple[int, ...] = tuple(getattr(matrix, "shape", ()))
    if len(shape) != 2:
        return InputView(
            kind="sparse", rows=None, skipped="sparse input is not 2-D"
        )
    if matrix.dtype.kind not in _NUMERIC_KINDS:
        return InputView(
            kind="sparse",
            rows=int(shape[0]),
            skipped=f"non-numeric sparse dtype {matrix.dtype.str}",
        )
    return InputView(
        kind="sparse",
        rows=int(shape[0]),
        # COO, DIA and DOK cannot slice columns (the max_features cap), so
        # they are read as CSR, which stays sparse and sums COO duplicates.
        numeric=matrix if matrix.format in ("csr", "csc") else matrix.tocsr(),
        names=_names_for(int(shape[1]), names),
    )


def _read_pandas(data: Any, names: Sequence[str] | None) -> InputView:
    import pandas as pd

    if isinstance(data, pd.Series):
        data = data.to_frame()
    if not isinstance(data, pd.DataFrame):
        return InputView(
            kind="pandas",
            rows=None,
            skipped=f"unsupported pandas type {type(data).__name__}",
        )
    columns = [str(column) for column in data.columns]
    # select_dtypes costs tens of microseconds a call, most of what reading a
    # one-row frame costs, so frames of plain numpy numbers skip it.
    dtypes = set(data.dtypes.tolist())
    textual = None
    if all(isinstance(dtype, np.dtype) and dtype.kind in "biuf" for dtype in dtypes):
        numeric = data
        numeric_names = tuple(columns)
    else:
        # Complex columns are left out: casting them to float64 would drop
        # the imaginary part and warn in the caller's code.
        numeric = data.select_dtypes(
            include=["number", "bool"], exclude=["complex"]
        )
        textual = data.select_dtypes(include=["object", "string", "category"])
        numeric_names = tuple(str(column) for column in numeric.columns)
    values: FloatArray = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    if len(set(columns)) != len(columns):
        numeric_names = positional_names(len(numeric_names))
    elif _is_unnamed(data.columns) and numeric.shape[1] == data.shape[1]:
        # pd.DataFrame(array) numbers its columns 0, 1, ...: it has no names
        # of its own, so it is named like the array it came from.
        numeric_names = _names_for(len(numeric_names), names)
    categorical = None
    if textual is not None and textual.shape[1]:
        categorical = CategoricalSummary(
            names=[str(column) for column in textual.columns],
            distinct_counts=_distinct_counts(textual),
            null_counts=[int(n) for n in textual.isna().sum().tolist()],
        )
    return InputView(
        kind="pandas",
        rows=int(data.shape[0]),
        numeric=values,
        names=numeric_names,
        categorical=categorical,
    )


def _is_unnamed(columns: Any) -> bool:
    import pandas as pd

    return (
        isinstance(columns, pd.RangeIndex)
        and columns.start == 0
        and columns.step == 1
    )


def _distinct_counts(frame: Any) -> list[int]:
    try:
        return [int(n) for n in frame.nunique().tolist()]
    except TypeError:
        # Unhashable cells, such as lists, are compared by their repr. Columns
        # are taken by position, because their names may repeat.
        return [
            int(frame.iloc[:, position].map(repr).nunique())
            for position in range(frame.shape[1])
        ]
