"""The ``otel-mlmon`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status."""
    arguments = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if arguments.command == "demo":
        return _demo(arguments)
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
        names, values = read_numeric_csv(arguments.train, arguments.drop)
        baseline = Baseline.fit(values, feature_names=names, bins=arguments.bins)
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


if __name__ == "__main__":
    sys.exit(main())
