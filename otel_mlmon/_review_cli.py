"""The ``review`` and ``replay`` subcommands of ``otel-mlmon``.

``review`` lists, exports and resolves the review queue of a feedback
store; ``replay`` runs a model file on the input rows of an exported queue
and reports the predictions that changed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import pickle
import sys
from pathlib import Path
from typing import Any, TextIO

from otel_mlmon import environment_variables as env

_TRUST_WARNING = (
    "Only load model files you trust: unpickling a file runs any code it "
    "contains."
)


def add_review_commands(commands: Any) -> None:
    """Add ``review`` and ``replay`` to the subparsers of ``otel-mlmon``."""
    review = commands.add_parser(
        "review",
        help="list, export and resolve the review queue of a feedback store",
        description="The review queue contains low-confidence predictions (and, "
        "with OTEL_MLMON_REVIEW_DRIFT, predictions made during drift).",
    )
    review.set_defaults(handler=_review)
    actions = review.add_subparsers(dest="review_command", required=True)

    listing = actions.add_parser("list", help="print review items")
    _add_db_option(listing)
    _add_status_option(listing, "open")
    listing.add_argument(
        "--limit", type=int, default=50, help="items printed at most (default: 50)"
    )

    export = actions.add_parser("export", help="write review items to a file")
    _add_db_option(export)
    _add_status_option(export, "all")
    export.add_argument(
        "--format", choices=("csv", "jsonl"), default="csv", help="file format"
    )
    export.add_argument(
        "--out",
        type=Path,
        default=None,
        help="file to write, or - for standard output (the default)",
    )

    resolve = actions.add_parser(
        "resolve",
        help="resolve an item with its true label, recorded as feedback too",
    )
    _add_db_option(resolve)
    resolve.add_argument("review_id", type=int, metavar="ID", help="review item id")
    resolve.add_argument(
        "--label",
        required=True,
        help="the true label; read as JSON when it parses (1, 2.5, true, "
        '"text"), else as a string',
    )

    replay = commands.add_parser(
        "replay",
        help="re-run reviewed inputs against a model file, report changes",
        description="Load a model from a pickle or joblib file, predict the "
        "input rows of a review export (from 'otel-mlmon review export'), "
        "and report which predictions differ from the stored ones. Rows "
        "need inputs captured (OTEL_MLMON_CAPTURE_INPUTS) and no redacted "
        f"feature the model uses. {_TRUST_WARNING}",
    )
    replay.set_defaults(handler=_replay)
    replay.add_argument("model", type=Path, help="model file (pickle or joblib)")
    replay.add_argument("export", type=Path, help="review export, JSON Lines or CSV")
    replay.add_argument(
        "--format",
        choices=("csv", "jsonl"),
        default=None,
        help="format of the export (default: from its suffix, else jsonl)",
    )


def _add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help=f"feedback store SQLite file (default: ${env.OTEL_MLMON_FEEDBACK_DB})",
    )


def _add_status_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--status",
        choices=("open", "resolved", "all"),
        default=default,
        help=f"items of this status (default: {default})",
    )


class _CommandError(Exception):
    """A user error: the message is printed and the command exits 2."""


def _review(arguments: argparse.Namespace) -> int:
    from otel_mlmon.feedback import (
        FeedbackStoreError,
        InvalidLabelError,
        ReviewNotFoundError,
    )

    name = f"otel-mlmon review {arguments.review_command}"
    try:
        store = _open_store(arguments.db)
        with store:
            if arguments.review_command == "list":
                return _list(store, arguments, sys.stdout)
            if arguments.review_command == "export":
                return _export(store, arguments)
            return _resolve(store, arguments)
    except BrokenPipeError:
        raise
    except (
        _CommandError,
        FeedbackStoreError,
        InvalidLabelError,
        ReviewNotFoundError,
        OSError,
    ) as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2


def _open_store(db: Path | None) -> Any:
    from otel_mlmon.feedback import PredictionStore

    if db is None:
        configured = os.environ.get(env.OTEL_MLMON_FEEDBACK_DB, "").strip()
        if not configured:
            raise _CommandError(
                f"no feedback store given: pass --db PATH or set "
                f"{env.OTEL_MLMON_FEEDBACK_DB}"
            )
        db = Path(configured)
    if not db.is_file():
        raise _CommandError(f"feedback store {db} not found")
    return PredictionStore(db)


def _status(arguments: argparse.Namespace) -> str | None:
    return None if arguments.status == "all" else str(arguments.status)


def _list(store: Any, arguments: argparse.Namespace, out: TextIO) -> int:
    if arguments.limit < 1:
        raise _CommandError("--limit must be 1 or more")
    items = store.review_list(_status(arguments), arguments.limit)
    counts = store.counts()
    print(
        f"{counts.open_reviews} open, {counts.resolved_reviews} resolved "
        f"review items in {store.path}",
        file=out,
    )
    if not items:
        return 0
    print(
        f"{'id':>6}  {'status':<8} {'reason':<14} {'model':<20} "
        f"{'predicted':<10} {'conf':>5}  {'label':<8} {'trace id':<32}  prediction id",
        file=out,
    )
    for item in items:
        model = f"{item.model_name or '?'}:{item.model_version or '?'}"
        confidence = "" if item.confidence is None else f"{item.confidence:.3f}"
        label = "" if item.resolved_label is None else json.dumps(item.resolved_label)
        print(
            f"{item.review_id:>6}  {item.status.value:<8} {item.reason.value:<14} "
            f"{model:<20} {json.dumps(item.predicted):<10} {confidence:>5}  "
            f"{label:<8} {item.trace_id or '-':<32}  {item.prediction_id}",
            file=out,
        )
    return 0


def _export(store: Any, arguments: argparse.Namespace) -> int:
    status = _status(arguments)
    if arguments.out is None or str(arguments.out) == "-":
        store.review_export(sys.stdout, arguments.format, status=status)
        return 0
    written = store.review_export(arguments.out, arguments.format, status=status)
    print(f"Wrote {written} review items to {arguments.out}", file=sys.stderr)
    return 0


def parse_label(text: str) -> Any:
    """Read a label given on the command line: JSON if it parses, else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _resolve(store: Any, arguments: argparse.Namespace) -> int:
    label = parse_label(arguments.label)
    outcome = store.review_resolve(arguments.review_id, label)
    print(
        f"Resolved review item {arguments.review_id} with label "
        f"{json.dumps(label)}; as feedback for prediction "
        f"{outcome.prediction_id}: {outcome.status.value}"
    )
    return 0


def _replay(arguments: argparse.Namespace) -> int:
    from otel_mlmon.feedback import read_review_export

    export_format = arguments.format or (
        "csv" if arguments.export.suffix.lower() == ".csv" else "jsonl"
    )
    try:
        model = load_model(arguments.model)
        items = read_review_export(arguments.export, export_format)
    except OSError as error:
        message = str(error)
        if error.filename is not None and error.strerror:
            message = f"cannot read {error.filename}: {error.strerror}"
        print(f"otel-mlmon replay: {message}", file=sys.stderr)
        return 2
    except (_CommandError, ValueError) as error:
        print(f"otel-mlmon replay: {error}", file=sys.stderr)
        return 2
    report = replay_items(model, items)
    for line in report.lines:
        print(line)
    print(
        f"Replayed {report.replayed} of {len(items)} review items: "
        f"{report.changed} predictions changed, {report.skipped} skipped "
        f"(no captured input, or features missing)"
    )
    return 0


def load_model(path: Path) -> Any:
    """Load a pickled or joblib model file. Only load files you trust.

    Raises:
        _CommandError: The file is missing or is not a pickle or joblib file.
    """
    if not path.is_file():
        raise _CommandError(f"model file {path} not found")
    joblib: Any
    try:
        joblib = importlib.import_module("joblib")
    except ImportError:
        joblib = None
    try:
        if joblib is not None:
            return joblib.load(path)
        with open(path, "rb") as handle:
            return pickle.load(handle)  # noqa: S301 - documented: trusted files only
    # A file that is not a pickle fails inside the unpickler with almost
    # any error (IndexError, for one, on a CSV file).
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        ImportError,
    ) as error:
        raise _CommandError(
            f"cannot load a model from {path} ({type(error).__name__}: "
            f"{error}); pass a pickle or joblib file"
        ) from None


class ReplayReport:
    """Rows replayed, skipped and changed, with one line per change."""

    def __init__(self) -> None:
        self.replayed = 0
        self.skipped = 0
        self.changed = 0
        self.lines: list[str] = []


def replay_items(model: Any, items: list[Any]) -> ReplayReport:
    """Predict the captured input rows again and compare with the stored ones."""
    report = ReplayReport()
    names = getattr(model, "feature_names_in_", None)
    names = None if names is None else [str(name) for name in names]
    rows: list[list[Any]] = []
    replayable: list[Any] = []
    for item in items:
        row = _input_vector(item.input_row, names)
        if row is None:
            report.skipped += 1
            continue
        rows.append(row)
        replayable.append(item)
    if not rows:
        return report
    predicted = _predict(model, rows, names)
    for item, value in zip(replayable, predicted):
        report.replayed += 1
        if not _same(item.predicted, value):
            report.changed += 1
            report.lines.append(
                f"review {item.review_id} (prediction {item.prediction_id}): "
                f"{json.dumps(item.predicted)} -> {json.dumps(value)}"
            )
    return report


def _input_vector(input_row: Any, names: list[str] | None) -> list[Any] | None:
    if isinstance(input_row, list):
        return input_row
    if not isinstance(input_row, dict) or not input_row:
        return None
    if names is None:
        return list(input_row.values())
    if any(name not in input_row for name in names):
        return None
    return [input_row[name] for name in names]


def _predict(model: Any, rows: list[list[Any]], names: list[str] | None) -> list[Any]:
    import numpy as np

    data: Any = np.array(rows, dtype=float)
    if names is not None:
        try:
            import pandas as pd

            data = pd.DataFrame(data, columns=names)
        except ImportError:
            pass
    values: list[Any] = np.asarray(model.predict(data)).tolist()
    return values


def _same(stored: Any, new: Any) -> bool:
    if isinstance(stored, float) or isinstance(new, float):
        if isinstance(stored, (int, float)) and isinstance(new, (int, float)):
            return math.isclose(stored, new, rel_tol=1e-9, abs_tol=1e-12)
    return bool(stored == new)
