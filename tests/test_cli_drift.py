"""otel-mlmon drift: the table, JSON, exit statuses and input errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from otel_mlmon.cli import main

RNG = np.random.default_rng(5)


@pytest.fixture(name="files")
def fixture_files(tmp_path: Path) -> dict[str, Path]:
    train = pd.DataFrame(
        {
            "age": RNG.normal(40, 10, 3000),
            "income": RNG.exponential(3.0, 3000),
            "city": RNG.choice(["paris", "lyon", "nice"], 3000),
        }
    )
    paths = {name: tmp_path / f"{name}.csv" for name in ("train", "same", "shifted")}
    train.to_csv(paths["train"], index=False)
    train.sample(1000, random_state=1).to_csv(paths["same"], index=False)
    shifted = train.sample(1000, random_state=2).copy()
    shifted["age"] += 8.0
    shifted.to_csv(paths["shifted"], index=False)
    paths["baseline"] = tmp_path / "baseline.json"
    status = main(
        ["baseline", str(paths["train"]), "--out", str(paths["baseline"]),
         "--categorical", "city"]
    )  # fmt: skip
    assert status == 0
    return paths


def test_drift_table_exit_1(files: dict[str, Path], capsys: Any) -> None:
    """Drift prints a row per feature and exits 1."""
    capsys.readouterr()
    status = main(["drift", str(files["baseline"]), str(files["shifted"])])
    out = capsys.readouterr().out
    assert status == 1
    lines = out.splitlines()
    assert lines[0].split() == [
        "feature", "kind", "statistic", "score", "threshold", "drifted"
    ]
    age = next(line.split() for line in lines if line.startswith("age"))
    assert age[1:3] == ["numeric", "psi"]
    assert age[-1] == "yes"
    city = next(line.split() for line in lines if line.startswith("city"))
    assert city[1] == "categorical"
    assert city[-1] == "no"
    assert "Drift in 1 of 3 features over 1000 rows: age" in out


def test_drift_none_exit_0(files: dict[str, Path], capsys: Any) -> None:
    """No drift exits 0."""
    status = main(["drift", str(files["baseline"]), str(files["same"])])
    assert status == 0
    assert "No drift in 3 features" in capsys.readouterr().out


def test_drift_json(files: dict[str, Path], capsys: Any) -> None:
    """--format json gives every statistic per feature."""
    capsys.readouterr()
    status = main(
        ["drift", str(files["baseline"]), str(files["shifted"]),
         "--format", "json", "--statistic", "ks"]
    )  # fmt: skip
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert document["drifted"] == ["age"]
    age = document["features"][0]
    assert age["statistic"] == "ks"
    assert age["threshold"] == 0.05
    assert set(age["scores"]) == {
        "psi", "jensen_shannon", "ks", "ks_p_value", "wasserstein"
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("age,income\n1,2\n", "lacks the column 'city'"),
        ("age,income,city\n", "has a header but no data rows"),
        ("age,income,city\n1,x,paris\n", "column 'income' has the non-numeric value 'x'"),
        ("age,income,city\n1,2\n", "line 2: 2 cells, but the header has 3"),
    ],
)
def test_drift_bad_input_exit_2(
    files: dict[str, Path], tmp_path: Path, capsys: Any, content: str, message: str
) -> None:
    """Invalid CSV input exits 2 with an error naming the problem."""
    current = tmp_path / "current.csv"
    current.write_text(content)
    status = main(["drift", str(files["baseline"]), str(current)])
    assert status == 2
    assert message in capsys.readouterr().err


def test_drift_bad_baseline_exit_2(tmp_path: Path, capsys: Any) -> None:
    """A missing baseline exits 2 and names the file."""
    current = tmp_path / "c.csv"
    current.write_text("a\n1\n")
    status = main(["drift", str(tmp_path / "absent.json"), str(current)])
    assert status == 2
    assert "Baseline file not found" in capsys.readouterr().err


def test_drift_bad_thresholds_exit_2(
    files: dict[str, Path], capsys: Any
) -> None:
    """Thresholds of the wrong shape exit 2 with the expected shape."""
    status = main(
        ["drift", str(files["baseline"]), str(files["same"]),
         "--thresholds", '{"psi": 0.1}']
    )  # fmt: skip
    assert status == 2
    assert "Invalid drift_thresholds" in capsys.readouterr().err
