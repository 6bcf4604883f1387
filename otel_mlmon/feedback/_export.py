"""CSV and JSON Lines files of review items, written and read back."""

from __future__ import annotations

import csv
import dataclasses
import enum
import json
import os
from collections.abc import Iterable
from typing import IO, Any, Literal

from otel_mlmon.feedback._codec import dump_json
from otel_mlmon.feedback.records import ReviewItem, ReviewReason, ReviewStatus

ExportFormat = Literal["csv", "jsonl"]

FIELDS = tuple(field.name for field in dataclasses.fields(ReviewItem))
# Columns that contain JSON values; in CSV they are JSON text.
JSON_FIELDS = frozenset({"resolved_label", "predicted", "input_row"})
_FLOAT_FIELDS = frozenset(
    {"created_at", "resolved_at", "confidence", "prediction_created_at"}
)


def validate_format(format: str) -> ExportFormat:
    """Return the format if it is "csv" or "jsonl".

    Raises:
        ValueError: Any other format.
    """
    if format == "csv":
        return "csv"
    if format == "jsonl":
        return "jsonl"
    raise ValueError(f"Export format must be 'csv' or 'jsonl', got {format!r}")


def write_items(items: Iterable[ReviewItem], out: IO[str], format: ExportFormat) -> int:
    """Write review items to an open text file and return items written.

    CSV cells are written verbatim. A spreadsheet may evaluate a cell that
    starts with "=", so open exports of untrusted labels as plain text.
    """
    if format == "jsonl":
        count = 0
        for item in items:
            out.write(json.dumps(_plain(item), ensure_ascii=False) + "\n")
            count += 1
        return count
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    count = 0
    for item in items:
        writer.writerow(_csv_cells(item))
        count += 1
    return count


def read_review_export(
    source: str | os.PathLike[str] | IO[str], format: str = "csv"
) -> list[ReviewItem]:
    """Read review items from a file written by ``review_export``.

    In CSV, JSON columns contain JSON text, an empty cell in any other
    column is None, and floats are written with Python's ``repr``, so the
    items read back equal the items written.

    Raises:
        ValueError: The format is unknown, or a row does not have the
            columns of a review export.
    """
    reader_format = validate_format(format)
    if isinstance(source, (str, os.PathLike)):
        with open(source, newline="", encoding="utf-8") as handle:
            return _read(handle, reader_format)
    return _read(source, reader_format)


def _read(handle: IO[str], format: ExportFormat) -> list[ReviewItem]:
    if format == "jsonl":
        return [
            _item_from_plain(json.loads(line), number)
            for number, line in enumerate(handle, start=1)
            if line.strip()
        ]
    reader = csv.DictReader(handle)
    if tuple(reader.fieldnames or ()) != FIELDS:
        raise ValueError(
            f"CSV header is not that of a review export; expected the "
            f"columns {', '.join(FIELDS)}"
        )
    return [
        _item_from_plain(_parse_cells(row), number)
        for number, row in enumerate(reader, start=2)
    ]


def _plain(item: ReviewItem) -> dict[str, Any]:
    values = dataclasses.asdict(item)
    for name, value in values.items():
        if isinstance(value, enum.Enum):
            values[name] = value.value
    return values


def _csv_cells(item: ReviewItem) -> list[str]:
    cells = []
    for name, value in _plain(item).items():
        if name in JSON_FIELDS:
            cells.append(dump_json(value))
        elif value is None:
            cells.append("")
        else:
            cells.append(repr(value) if isinstance(value, float) else str(value))
    return cells


def _parse_cells(row: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in FIELDS:
        cell = row.get(name)
        if cell is None:
            values[name] = None
        elif name in JSON_FIELDS:
            values[name] = json.loads(cell)
        elif cell == "":
            values[name] = None
        elif name in _FLOAT_FIELDS:
            values[name] = float(cell)
        elif name == "review_id":
            values[name] = int(cell)
        else:
            values[name] = cell
    return values


def _item_from_plain(values: dict[str, Any], line: int) -> ReviewItem:
    missing = [name for name in FIELDS if name not in values]
    if missing:
        raise ValueError(
            f"Line {line} of the review export has no {', '.join(missing)}"
        )
    fields = {name: values[name] for name in FIELDS}
    fields["reason"] = ReviewReason(values["reason"])
    fields["status"] = ReviewStatus(values["status"])
    return ReviewItem(**fields)
