"""otel-mlmon review and replay, on a real store filled by a served model."""

from __future__ import annotations

import csv
import io
import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest
from sklearn.dummy import DummyClassifier

from otel_mlmon import MonitorConfig, wrap_model
from otel_mlmon.cli import main
from otel_mlmon.feedback import PredictionStore, read_review_export
from otel_mlmon.feedback._monitor import close_recorders


@pytest.fixture(autouse=True)
def _close_recorders() -> Iterator[None]:
    yield
    close_recorders()


def _fill(store_path: Path, iris_model: Any, capture: bool, **providers: Any) -> None:
    model, x, _ = iris_model
    wrapped = wrap_model(
        model,
        name="iris",
        version="3",
        config=MonitorConfig(
            low_confidence_threshold=1.0, capture_inputs=capture, max_flagged_rows=8
        ),
        feedback_store=store_path,
        **providers,
    )
    wrapped.predict_proba(x[50:150])
    close_recorders()


@pytest.fixture(name="filled")
def fixture_filled(
    store_path: Path, iris_model: Any, tracer_provider: Any, meter_provider: Any
) -> Path:
    """A store with 8 open low-confidence items with captured inputs."""
    _fill(
        store_path,
        iris_model,
        True,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    return store_path


def test_review_list(filled: Path, capsys: Any) -> None:
    """review list prints the counts and one line per open item."""
    assert main(["review", "list", "--db", str(filled)]) == 0
    output = capsys.readouterr().out.splitlines()
    assert output[0] == f"8 open, 0 resolved review items in {filled}"
    rows = output[2:]
    assert len(rows) == 8
    assert all("low_confidence" in row and "iris:3" in row for row in rows)


def test_review_list_from_variable(filled: Path, capsys: Any, monkeypatch: Any) -> None:
    """Without --db, OTEL_MLMON_FEEDBACK_DB names the store."""
    monkeypatch.setenv("OTEL_MLMON_FEEDBACK_DB", str(filled))
    assert main(["review", "list", "--limit", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
def test_review_export_file(filled: Path, tmp_path: Path, export_format: str) -> None:
    """review export writes every item, read back by read_review_export."""
    out = tmp_path / f"review.{export_format}"
    status = main(
        ["review", "export", "--db", str(filled), "--format", export_format, "--out", str(out)]
    )
    assert status == 0
    items = read_review_export(out, export_format)
    assert len(items) == 8
    assert all(len(item.input_row) == 4 for item in items)


def test_review_export_stdout(filled: Path, capsys: Any) -> None:
    """Without --out, the CSV goes to standard output with a header."""
    assert main(["review", "export", "--db", str(filled)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 8
    assert rows[0]["reason"] == "low_confidence"


def test_review_export_dash_stdout(filled: Path, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    """--out - writes to standard output, not to a file named -."""
    monkeypatch.chdir(tmp_path)
    assert main(["review", "export", "--db", str(filled), "--out", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 8
    assert not (tmp_path / "-").exists()


def test_review_resolve_records_label(filled: Path, capsys: Any) -> None:
    """review resolve closes the item and stores the label as feedback."""
    with PredictionStore(filled) as store:
        first = store.review_list()[0]
    assert main(["review", "resolve", str(first.review_id), "--label", "2", "--db", str(filled)]) == 0
    assert "matched" in capsys.readouterr().out
    with PredictionStore(filled) as store:
        (pair,) = store.labelled_pairs("iris", "3")
        resolved = store.review_list("resolved")
    assert pair.prediction_id == first.prediction_id
    assert pair.actual == 2
    assert [item.review_id for item in resolved] == [first.review_id]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["resolve", "99999", "--label", "1"], "No review item with id 99999"),
        (["resolve", "1", "--label", '"setosa"'], "must be of type int"),
        (["list", "--limit", "0"], "--limit must be 1 or more"),
    ],
)
def test_review_errors(filled: Path, capsys: Any, arguments: list[str], message: str) -> None:
    """Bad review requests exit 2 with the reason."""
    assert main(["review", *arguments, "--db", str(filled)]) == 2
    assert message in capsys.readouterr().err


def test_review_missing_store(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    """A missing file, or no file given at all, exits 2 without creating one."""
    missing = tmp_path / "none.sqlite3"
    assert main(["review", "list", "--db", str(missing)]) == 2
    assert "not found" in capsys.readouterr().err
    assert not missing.exists()
    monkeypatch.delenv("OTEL_MLMON_FEEDBACK_DB", raising=False)
    assert main(["review", "list"]) == 2
    assert "pass --db PATH or set OTEL_MLMON_FEEDBACK_DB" in capsys.readouterr().err


def _export(store_path: Path, tmp_path: Path) -> Path:
    out = tmp_path / "review.jsonl"
    assert main(["review", "export", "--db", str(store_path), "--format", "jsonl", "--out", str(out)]) == 0
    return out


def test_replay_same_model_unchanged(
    filled: Path, tmp_path: Path, iris_model: Any, capsys: Any
) -> None:
    """The model that made the predictions changes none of them."""
    export = _export(filled, tmp_path)
    model_file = tmp_path / "model.joblib"
    joblib.dump(iris_model[0], model_file)
    assert main(["replay", str(model_file), str(export)]) == 0
    assert "Replayed 8 of 8 review items: 0 predictions changed, 0 skipped" in (
        capsys.readouterr().out
    )


def test_replay_other_model_reports_changes(
    filled: Path, tmp_path: Path, iris_model: Any, capsys: Any
) -> None:
    """A pickled model that always predicts 0 changes every other row."""
    _, x, y = iris_model
    export = _export(filled, tmp_path)
    model_file = tmp_path / "model.pkl"
    model_file.write_bytes(pickle.dumps(DummyClassifier(strategy="constant", constant=0).fit(x, y)))
    assert main(["replay", str(model_file), str(export)]) == 0
    output = capsys.readouterr().out
    stored = [json.loads(line)["predicted"] for line in export.read_text().splitlines()]
    changed = sum(1 for value in stored if value != 0)
    assert changed > 0
    assert f"{changed} predictions changed" in output
    assert output.count(" -> 0") == changed


def test_replay_skips_uncaptured_rows(
    store_path: Path,
    tmp_path: Path,
    iris_model: Any,
    tracer_provider: Any,
    meter_provider: Any,
    capsys: Any,
) -> None:
    """Items stored with capture off have no input and are skipped."""
    _fill(store_path, iris_model, False, tracer_provider=tracer_provider, meter_provider=meter_provider)
    export = _export(store_path, tmp_path)
    model_file = tmp_path / "model.joblib"
    joblib.dump(iris_model[0], model_file)
    assert main(["replay", str(model_file), str(export)]) == 0
    assert "Replayed 0 of 8 review items: 0 predictions changed, 8 skipped" in (
        capsys.readouterr().out
    )


def test_replay_bad_model_file(filled: Path, tmp_path: Path, capsys: Any) -> None:
    """A file that is no pickle exits 2 naming it."""
    export = _export(filled, tmp_path)
    model_file = tmp_path / "model.pkl"
    model_file.write_bytes(b"not a pickle")
    assert main(["replay", str(model_file), str(export)]) == 2
    assert f"cannot load a model from {model_file}" in capsys.readouterr().err


def test_replay_csv_as_model(filled: Path, tmp_path: Path, capsys: Any) -> None:
    """A CSV given as the model exits 2 with one line, not a traceback."""
    export = _export(filled, tmp_path)
    capsys.readouterr()
    model_file = tmp_path / "train.csv"
    model_file.write_text("a,b\n1,2\n3,4\n")
    assert main(["replay", str(model_file), str(export)]) == 2
    error = capsys.readouterr().err
    assert f"cannot load a model from {model_file}" in error
    assert len(error.strip().splitlines()) == 1


def test_replay_missing_export(filled: Path, tmp_path: Path, capsys: Any) -> None:
    """A missing review file exits 2 naming the file and the reason."""
    model_file = tmp_path / "model.pkl"
    model_file.write_bytes(pickle.dumps(DummyClassifier().fit([[0.0]], [0])))
    missing = tmp_path / "absent.jsonl"
    assert main(["replay", str(model_file), str(missing)]) == 2
    error = capsys.readouterr().err
    assert f"cannot read {missing}: No such file or directory" in error


def test_replay_help_warns() -> None:
    """The installed command's help says to load only trusted files."""
    script = Path(sys.executable).with_name("otel-mlmon")
    completed = subprocess.run(
        [str(script), "replay", "--help"], capture_output=True, text=True, check=True
    )
    assert "Only load model files you trust" in " ".join(completed.stdout.split())
