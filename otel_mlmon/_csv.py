"""Read a CSV file of numeric columns, with errors that name the problem."""

from __future__ import annotations

import contextlib
import csv
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_MISSING = frozenset({"", "na", "nan", "null", "none"})


class CsvError(ValueError):
    """A CSV file cannot be used; the message names the value and the fix."""


def read_numeric_csv(
    path: str | Path, drop: Sequence[str] = ()
) -> tuple[list[str], FloatArray]:
    """Read a CSV file with a header row into names and a float matrix.

    Empty cells and NA, NaN, null or None count as missing values.

    Args:
        path: The file.
        drop: Columns to leave out, such as the label.

    Raises:
        CsvError: The file is missing or empty, a column in ``drop`` is not
            in it, a row has the wrong number of cells, or a cell is not a
            number.
    """
    with _header_and_rows(path) as (names, reader):
        missing = [name for name in drop if name not in names]
        if missing:
            raise CsvError(
                f"Column {missing[0]!r} given to --drop is not in {path}; "
                f"its columns are: {', '.join(names)}"
            )
        keep = [i for i, name in enumerate(names) if name not in set(drop)]
        rows = _read_rows(reader, names, keep, path)
    if not rows:
        raise CsvError(f"{path} has a header but no data rows")
    return [names[i] for i in keep], np.array(rows, dtype=np.float64)


def _read_rows(
    reader: Iterator[list[str]], names: list[str], keep: list[int], path: str | Path
) -> list[list[float]]:
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not cells:
            continue
        if len(cells) != len(names):
            raise CsvError(
                f"{path}, line {line}: {len(cells)} cells, but the header "
                f"has {len(names)} columns"
            )
        row = []
        for index in keep:
            row.append(_parse(cells[index], names[index], line, path))
        rows.append(row)
    return rows


def _parse(cell: str, name: str, line: int, path: str | Path) -> float:
    text = cell.strip()
    if text.lower() in _MISSING:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise CsvError(
            f"{path}, line {line}: column {name!r} has the non-numeric "
            f"value {text!r}; profile it as categories with --categorical "
            f"{name!r}, encode it as numbers, or leave it out with --drop "
            f"{name!r}"
        ) from None


def read_csv_columns(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """Read a CSV file with a header row into names and text columns.

    Raises:
        CsvError: The file is missing or empty, has no data rows, or a row
            has the wrong number of cells.
    """
    with _header_and_rows(path) as (names, reader):
        columns: list[list[str]] = [[] for _ in names]
        for line, cells in enumerate(reader, start=2):
            if not cells:
                continue
            if len(cells) != len(names):
                raise CsvError(
                    f"{path}, line {line}: {len(cells)} cells, but the header "
                    f"has {len(names)} columns"
                )
            for column, cell in zip(columns, cells):
                column.append(cell.strip())
    if not columns[0]:
        raise CsvError(f"{path} has a header but no data rows")
    return names, columns


def parse_numeric_column(
    cells: Sequence[str], name: str, path: str | Path
) -> FloatArray:
    """Parse one column of :func:`read_csv_columns` into floats.

    Raises:
        CsvError: A cell is not a number; the message names its line.
    """
    values = np.empty(len(cells), dtype=np.float64)
    for index, cell in enumerate(cells):
        text = cell.strip()
        try:
            values[index] = math.nan if text.lower() in _MISSING else float(text)
        except ValueError:
            raise CsvError(
                f"{path}, line {index + 2}: column {name!r} has the "
                f"non-numeric value {text!r}, but the baseline profiles "
                f"{name!r} as a numeric feature; fix the value or rebuild "
                "the baseline"
            ) from None
    return values


def is_missing(cell: str) -> bool:
    """Tell whether a CSV cell stands for a missing value."""
    return cell.strip().lower() in _MISSING


@contextlib.contextmanager
def _header_and_rows(
    path: str | Path,
) -> Iterator[tuple[list[str], Iterator[list[str]]]]:
    """Open a CSV file; yield its column names and a reader of its rows.

    Raises:
        CsvError: The file is missing, unreadable or has no header row.
    """
    try:
        handle = Path(path).open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise CsvError(f"CSV file not found: {path}") from None
    except OSError as error:
        raise CsvError(f"Cannot read {path}: {error.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise CsvError(
                f"{path} is empty; it needs a header row of column names "
                "and one row per sample"
            )
        yield [cell.strip() for cell in header], reader
