"""Offline drift check of a CSV file against a baseline.

:func:`check_csv` is what ``otel-mlmon drift BASELINE CURRENT.csv`` runs:
the whole file is one window, judged with the same statistics and
thresholds as live traffic.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from otel_mlmon._csv import (
    CsvError,
    is_missing,
    parse_numeric_column,
    read_csv_columns,
)
from otel_mlmon.baseline import Baseline
from otel_mlmon.drift import DriftMonitor
from otel_mlmon.drift_report import DriftReport, DriftSettings


def check_csv(
    baseline: Baseline, path: str | Path, settings: DriftSettings
) -> DriftReport:
    """Judge every row of a CSV file against a baseline as one window.

    Columns are matched to the baseline's features by name; other columns
    are ignored.

    Raises:
        CsvError: The file is missing or empty, lacks a baseline feature,
            or has a non-numeric value in a numeric feature.
    """
    names, columns = read_csv_columns(path)
    by_name = dict(zip(names, columns))
    expected = [*baseline.feature_names, *(p.name for p in baseline.categorical)]
    absent = [name for name in expected if name not in by_name]
    if absent:
        raise CsvError(
            f"{path} lacks the column{'s' if len(absent) > 1 else ''} "
            f"{', '.join(repr(name) for name in absent)} that the baseline "
            f"has; its columns are: {', '.join(names)}"
        )
    rows = len(columns[0])
    numeric = np.empty((rows, len(baseline.feature_names)))
    for index, name in enumerate(baseline.feature_names):
        numeric[:, index] = parse_numeric_column(by_name[name], name, path)
    # One window of exactly the file's rows, closed by its last row.
    whole_file = dataclasses.replace(
        settings, window_rows=rows, window_seconds=0.0
    )
    monitor = DriftMonitor(baseline, whole_file, clock=time.time)
    categories = None
    if baseline.categorical:
        categories = monitor.category_index(_category_frame(baseline, by_name))
    columns_index = np.arange(len(baseline.feature_names), dtype=np.int64)
    observation = monitor.observe(numeric, columns_index, categories)
    if observation.reports:
        return observation.reports[-1]
    report = monitor.close_window()
    assert report is not None
    return report


def _category_frame(baseline: Baseline, by_name: dict[str, list[str]]) -> object:
    import pandas as pd

    data = {
        profile.name: [
            None if is_missing(cell) else cell for cell in by_name[profile.name]
        ]
        for profile in baseline.categorical
    }
    return pd.DataFrame(data, dtype="object")


def format_table(report: DriftReport) -> str:
    """Render a report as a text table, one line per feature."""
    header = ("feature", "kind", "statistic", "score", "threshold", "drifted")
    lines = [header]
    for feature in report.features:
        score = feature.score
        lines.append(
            (
                feature.name,
                feature.kind,
                feature.statistic,
                "n/a" if math.isnan(score) else f"{score:.4g}",
                f"{feature.threshold:g}",
                "yes" if feature.drifted else "no",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
        for line in lines
    ]
    drifted = [feature.name for feature in report.drifted]
    summary = (
        f"Drift in {len(drifted)} of {len(report.features)} features over "
        f"{report.rows} rows: {', '.join(drifted)}"
        if drifted
        else f"No drift in {len(report.features)} features over {report.rows} rows"
    )
    if not report.judged:
        summary = (
            f"No verdict: {report.rows} rows is below the minimum of "
            f"{report.min_rows}"
        )
    return "\n".join([*text, "", summary])


def format_json(report: DriftReport) -> str:
    """Render a report as JSON."""
    return json.dumps(report.to_dict(), indent=1, allow_nan=False)
