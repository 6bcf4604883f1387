"""The ``otel-mlmon`` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from otel_mlmon._review_cli import add_review_commands
from otel_mlmon.version import __version__


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-mlmon",
        description="OpenTelemetry monitoring for ML models.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="serve a real model over HTTP and show its telemetry",
        description="Train a classifier on a real data set, serve it with "
        "Flask on 127.0.0.1, send traffic with drift and low-confidence "
        "rows, and print what the telemetry showed. Signals go to OTLP JSON "
        "lines files, or over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("otel-mlmon-demo"),
        help="folder for the telemetry files (default: ./otel-mlmon-demo)",
    )
    demo.add_argument(
        "--loops",
        type=int,
        default=1,
        help="times to send the traffic; 0 repeats until interrupted",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=0,
        help="port on 127.0.0.1 for the app (default: a free one)",
    )

    baseline = commands.add_parser(
        "baseline",
        help="profile training data into a baseline JSON file",
        description="Read a CSV file with a header row and numeric columns "
        "and write the baseline that drift detection compares live inputs "
        "against.",
    )
    baseline.add_argument("train", type=Path, help="training data, CSV")
    baseline.add_argument(
        "--out", type=Path, required=True, help="baseline file to write"
    )
    baseline.add_argument(
        "--bins", type=int, default=10, help="quantile bins per feature"
    )
    baseline.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="COLUMN",
        help="column to leave out, such as the label; repeatable",
    )
    baseline.add_argument(
        "--categorical",
        action="append",
        default=[],
        metavar="COLUMN",
        help="column to profile as categories (top values, other, missing); "
        "repeatable",
    )
    _add_drift_parser(commands)
    add_review_commands(commands)
    return parser


def _add_drift_parser(commands: Any) -> None:
    drift = commands.add_parser(
        "drift",
        help="judge a CSV file against a baseline; exit 1 on drift",
        description="Compare every row of a CSV file, as one window, with a "
        "baseline: PSI, Jensen-Shannon, KS and Wasserstein per numeric "
        "feature, PSI, Jensen-Shannon and chi-square per categorical one. "
        "Exit status: 0 without drift, 1 with drift, 2 on invalid input.",
    )
    drift.add_argument("baseline", type=Path, help="baseline JSON file")
    drift.add_argument("current", type=Path, help="current data, CSV")
    drift.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="output format (default: table)",
    )
    drift.add_argument(
        "--statistic",
        default=None,
        help="statistic that decides drift: psi (default), jensen_shannon, "
        "wasserstein, ks or chi_square; default OTEL_MLMON_DRIFT_STATISTIC",
    )
    drift.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="PSI threshold; default OTEL_MLMON_DRIFT_THRESHOLD, else 0.2",
    )
    drift.add_argument(
        "--thresholds",
        default=None,
        metavar="JSON",
        help='thresholds per statistic and feature, as {"default": {"ks": '
        '0.01}, "features": {"age": {"psi": 0.3}}}',
    )
    drift.add_argument(
        "--min-rows",
        type=int,
        default=1,
        help="rows the file needs for a verdict (default: 1); below about "
        "100 rows every statistic is noisy, and a warning says so",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status."""
    arguments = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(arguments)
    except ModuleNotFoundError as error:
        # Categorical features are read with pandas, an optional extra.
        if error.name != "pandas":
            raise
        print(
            f"otel-mlmon {arguments.command}: this needs pandas, which is not "
            "installed; install it with: pip install 'otel_mlmon[pandas]'",
            file=sys.stderr,
        )
        return 2
    except BrokenPipeError:
        # The reader of standard output went away (``| head``). Point
        # stdout at devnull so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(arguments: argparse.Namespace) -> int:
    handler = getattr(arguments, "handler", None)
    if handler is not None:
        return int(handler(arguments))
    if arguments.command == "demo":
        return _demo(arguments)
    if arguments.command == "drift":
        return _drift(arguments)
    return _baseline(arguments)


def _demo(arguments: argparse.Namespace) -> int:
    from otel_mlmon.demo import run_demo

    if arguments.loops < 0:
        print("otel-mlmon demo: --loops must be 0 or more", file=sys.stderr)
        return 2
    try:
        result = run_demo(
            arguments.out, loops=arguments.loops, port=arguments.port
        )
    except KeyboardInterrupt:
        return 130
    return 1 if result.errors else 0


def _baseline(arguments: argparse.Namespace) -> int:
    from otel_mlmon._csv import CsvError, read_numeric_csv
    from otel_mlmon.baseline import Baseline, BaselineError

    try:
        if arguments.categorical:
            frame = _read_mixed_csv(arguments.train, arguments.drop)
            names = [str(c) for c in frame.columns]
            baseline = Baseline.fit(
                frame, bins=arguments.bins, categorical=arguments.categorical
            )
        else:
            names, values = read_numeric_csv(arguments.train, arguments.drop)
            baseline = Baseline.fit(
                values, feature_names=names, bins=arguments.bins
            )
        baseline.save(arguments.out)
    except (CsvError, BaselineError) as error:
        print(f"otel-mlmon baseline: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(
            f"otel-mlmon baseline: cannot write {arguments.out}: "
            f"{error.strerror}",
            file=sys.stderr,
        )
        return 2
    print(
        f"Wrote {arguments.out}: {len(names)} features, {baseline.rows} rows, "
        f"{baseline.bins} bins"
    )
    return 0


def _read_mixed_csv(path: Path, drop: Sequence[str]) -> Any:
    import pandas as pd

    from otel_mlmon._csv import read_csv_columns

    names, columns = read_csv_columns(path)
    frame = pd.DataFrame(dict(zip(names, columns)), dtype="object")
    frame = frame.drop(columns=[name for name in drop if name in names])
    frame = frame.replace({"": None, "NA": None, "NaN": None, "nan": None})
    for name in frame.columns:
        converted = pd.to_numeric(frame[name], errors="coerce")
        if converted.notna().sum() == frame[name].notna().sum():
            frame[name] = converted.astype(float)
    return frame


# With no drift, PSI averages about (bins - 1) / rows, so small files give
# false alarms (0.09 for 10 bins and 100 rows, against a threshold of 0.2).
_RELIABLE_ROWS = 100


def _drift(arguments: argparse.Namespace) -> int:
    from otel_mlmon._csv import CsvError
    from otel_mlmon.baseline import Baseline, BaselineError
    from otel_mlmon.config import ConfigError, MonitorConfig
    from otel_mlmon.drift_check import check_csv, format_json, format_table
    from otel_mlmon.drift_report import DriftSettings

    overrides: dict[str, Any] = {}
    if arguments.statistic is not None:
        overrides["drift_statistic"] = arguments.statistic
    if arguments.threshold is not None:
        overrides["drift_threshold"] = arguments.threshold
    if arguments.min_rows < 1:
        print("otel-mlmon drift: --min-rows must be 1 or more", file=sys.stderr)
        return 2
    overrides["drift_min_rows"] = arguments.min_rows
    try:
        if arguments.thresholds is not None:
            overrides["drift_thresholds"] = json.loads(arguments.thresholds)
        config = MonitorConfig.from_env(**overrides)
        baseline = Baseline.load(arguments.baseline)
        report = check_csv(
            baseline, arguments.current, DriftSettings.from_config(config)
        )
    except json.JSONDecodeError as error:
        print(
            f"otel-mlmon drift: --thresholds is not valid JSON ({error.msg})",
            file=sys.stderr,
        )
        return 2
    except (CsvError, BaselineError, ConfigError) as error:
        print(f"otel-mlmon drift: {error}", file=sys.stderr)
        return 2
    if report.rows < _RELIABLE_ROWS:
        print(
            f"otel-mlmon drift: warning: {arguments.current} has only "
            f"{report.rows} rows; below about {_RELIABLE_ROWS} rows chance "
            "alone can exceed the thresholds, so treat the verdicts with "
            "care, or pass --min-rows to require more rows",
            file=sys.stderr,
        )
    if arguments.format == "json":
        print(format_json(report))
    else:
        print(format_table(report))
    return 1 if report.drift_detected else 0


if __name__ == "__main__":
    sys.exit(main())
