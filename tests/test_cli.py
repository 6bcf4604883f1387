"""The otel-mlmon command: baseline from CSV, and its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from otel_mlmon import Baseline
from otel_mlmon.cli import main


def _write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_baseline_command_writes_file(tmp_path: Path, capsys: Any) -> None:
    """The command reads a real data set's CSV and writes a baseline."""
    data = load_diabetes(as_frame=True)
    frame = data.frame
    csv_path = tmp_path / "train.csv"
    frame.to_csv(csv_path, index=False)
    out = tmp_path / "baseline.json"
    status = main(
        ["baseline", str(csv_path), "--out", str(out), "--drop", "target"]
    )
    assert status == 0
    assert "10 features, 442 rows" in capsys.readouterr().out
    baseline = Baseline.load(out)
    assert baseline.feature_names == tuple(data.feature_names)
    np.testing.assert_allclose(baseline.mean, frame[data.feature_names].mean())


def test_baseline_missing_values(tmp_path: Path) -> None:
    """Empty and NA cells count as missing values."""
    csv_path = _write_csv(tmp_path / "t.csv", "a,b", ["1,", "NA,2", "3,4"])
    out = tmp_path / "b.json"
    assert main(["baseline", str(csv_path), "--out", str(out)]) == 0
    assert Baseline.load(out).counts[:, -1].tolist() == [1, 1]


@pytest.mark.parametrize(
    ("header", "rows", "extra", "message"),
    [
        ("a,b", ["1,x7"], [], "column 'b' has the non-numeric value 'x7'"),
        ("", [], [], "is empty"),
        ("a,b", [], [], "no data rows"),
        ("a,b", ["1,2,3"], [], "3 cells, but the header has 2 columns"),
        ("a,b", ["1,2"], ["--drop", "c"], "Column 'c' given to --drop"),
    ],
)
def test_baseline_bad_csv(
    tmp_path: Path,
    capsys: Any,
    header: str,
    rows: list[str],
    extra: list[str],
    message: str,
) -> None:
    """Bad CSV input exits 2 with a message naming the problem."""
    csv_path = _write_csv(tmp_path / "t.csv", header, rows)
    status = main(
        ["baseline", str(csv_path), "--out", str(tmp_path / "b.json"), *extra]
    )
    assert status == 2
    assert message in capsys.readouterr().err


def test_baseline_missing_file(tmp_path: Path, capsys: Any) -> None:
    """A missing CSV file exits 2 naming it."""
    status = main(
        ["baseline", str(tmp_path / "no.csv"), "--out", str(tmp_path / "b")]
    )
    assert status == 2
    assert "CSV file not found" in capsys.readouterr().err


def test_categorical_without_pandas(tmp_path: Path) -> None:
    """--categorical without pandas exits 2 naming the extra to install."""
    train = tmp_path / "train.csv"
    train.write_text("size,colour\n1.0,red\n2.0,blue\n3.0,red\n")
    # None in sys.modules makes ``import pandas`` fail as if not installed.
    script = (
        "import sys; sys.modules['pandas'] = None; "
        "from otel_mlmon.cli import main; "
        f"sys.exit(main(['baseline', {str(train)!r}, '--out', "
        f"{str(tmp_path / 'b.json')!r}, '--categorical', 'colour']))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2
    assert "pip install 'otel_mlmon[pandas]'" in completed.stderr
    assert "Traceback" not in completed.stderr
