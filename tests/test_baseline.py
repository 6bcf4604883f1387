"""Baseline: fitting on training data, saving and loading, bad input."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from otel_mlmon import Baseline, BaselineError
from otel_mlmon.baseline import SCHEMA_VERSION


def test_fit_counts_every_row() -> None:
    """Each feature's bins plus the missing bin count every training row."""
    x, _ = load_diabetes(return_X_y=True)
    baseline = Baseline.fit(x, bins=10)
    assert baseline.counts.shape == (10, 11)
    assert (baseline.counts.sum(axis=1) == len(x)).all()
    assert baseline.inner_edges.shape == (10, 9)
    np.testing.assert_allclose(baseline.low, x.min(axis=0))
    np.testing.assert_allclose(baseline.mean, x.mean(axis=0))


def test_fit_quantile_bins_balanced() -> None:
    """Quantile edges put about a tenth of the rows in each bin."""
    x, _ = load_breast_cancer(return_X_y=True)
    baseline = Baseline.fit(x, bins=10)
    shares = baseline.fractions[:, :-1]
    assert np.abs(shares[:, 1:-1] - 0.1).max() < 0.03


def test_fit_dataframe_names_and_predictions() -> None:
    """DataFrame columns name the features; labels are profiled."""
    data = load_breast_cancer(as_frame=True)
    baseline = Baseline.fit(data.data, predictions=data.target.to_numpy())
    assert baseline.feature_names[0] == "mean radius"
    assert baseline.predictions is not None
    assert baseline.predictions["kind"] == "labels"
    assert sum(baseline.predictions["fractions"]) == pytest.approx(1.0)


def test_fit_nan_and_constant_columns() -> None:
    """All-NaN and constant columns fit without warnings or NaN values."""
    x = np.ones((20, 3))
    x[:, 1] = np.nan
    x[::2, 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        baseline = Baseline.fit(x)
    assert baseline.counts[1, -1] == 20
    assert baseline.counts[2, -1] == 10
    assert np.isfinite(baseline.inner_edges).all()
    assert baseline.null_rate.tolist() == [0.0, 1.0, 0.5]


def test_save_load_round_trip(tmp_path: Path) -> None:
    """A saved baseline loads back equal, as versioned JSON."""
    x, _ = load_diabetes(return_X_y=True)
    baseline = Baseline.fit(x, feature_names=[f"f{i}" for i in range(10)])
    path = tmp_path / "baseline.json"
    baseline.save(path)
    document = json.loads(path.read_text())
    assert document["schema"] == "otel_mlmon.baseline"
    assert document["version"] == SCHEMA_VERSION
    loaded = Baseline.load(path)
    assert loaded.feature_names == baseline.feature_names
    np.testing.assert_array_equal(loaded.counts, baseline.counts)
    np.testing.assert_array_equal(loaded.inner_edges, baseline.inner_edges)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("{not json", "is not valid JSON"),
        ('{"schema": "other"}', "is not an otel_mlmon baseline"),
        (
            '{"schema": "otel_mlmon.baseline", "version": 99}',
            "schema version 99",
        ),
        (
            '{"schema": "otel_mlmon.baseline", "version": 1, "features": []}',
            "malformed",
        ),
    ],
)
def test_load_bad_file(tmp_path: Path, content: str, message: str) -> None:
    """A bad baseline file gets an error naming the problem and the fix."""
    path = tmp_path / "baseline.json"
    path.write_text(content)
    with pytest.raises(BaselineError, match=message) as caught:
        Baseline.load(path)
    assert str(path) in str(caught.value)
    assert "otel-mlmon baseline" in str(caught.value)


def test_load_csv_advice_keeps_file(tmp_path: Path) -> None:
    """A CSV passed as the baseline is never suggested as the output path."""
    path = tmp_path / "train.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(BaselineError, match="is not valid JSON") as caught:
        Baseline.load(path)
    assert f"--out {path}" not in str(caught.value)
    assert "--out baseline.json" in str(caught.value)


def test_load_missing_file(tmp_path: Path) -> None:
    """A missing file gets an error naming it and how to build one."""
    with pytest.raises(BaselineError, match="not found") as caught:
        Baseline.load(tmp_path / "absent.json")
    assert "otel-mlmon baseline TRAIN.csv --out" in str(caught.value)


def test_fit_text_column_categorical() -> None:
    """A text column becomes a categorical feature with top categories."""
    import pandas as pd

    frame = pd.DataFrame(
        {"age": [1.0, 2.0, 3.0, 4.0], "city": ["a", "b", "a", None]}
    )
    baseline = Baseline.fit(frame)
    assert baseline.feature_names == ("age",)
    (city,) = baseline.categorical
    assert city.categories == ("a", "b")
    # Top categories, then other, unseen and missing.
    assert city.counts.tolist() == [2, 1, 0, 0, 1]


def test_fit_categorical_named_column() -> None:
    """categorical= profiles integer codes as categories."""
    import pandas as pd

    frame = pd.DataFrame({"x": [0.5, 1.5, 2.5], "code": [3, 3, 7]})
    baseline = Baseline.fit(frame, categorical=["code"])
    assert baseline.feature_names == ("x",)
    assert baseline.categorical[0].categories == ("3", "7")
    with pytest.raises(BaselineError, match="Categorical column 'nope' is not in the data"):
        Baseline.fit(frame, categorical=["nope"])


def test_fit_many_categories_other_bin() -> None:
    """Categories past the top ones count as other, and are listed."""
    import pandas as pd

    values = [f"c{i % 30}" for i in range(300)] + [f"c{i}" for i in range(10)]
    baseline = Baseline.fit(pd.DataFrame({"c": values, "x": range(310)}))
    (profile,) = baseline.categorical
    assert len(profile.categories) == 20
    assert profile.counts[-3] == 300 - 20 * 10
    assert profile.known_other is not None
    assert len(profile.known_other) == 10
    assert profile.distinct == 30


def test_version_2_round_trip(tmp_path: Path) -> None:
    """Categories, predictions and confidence survive save and load."""
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=200), "c": rng.choice(["u", "v"], 200)}
    )
    probabilities = rng.dirichlet([1, 1], 200)
    baseline = Baseline.fit(
        frame,
        predictions=probabilities.argmax(axis=1),
        confidence=probabilities,
    )
    path = tmp_path / "b.json"
    baseline.save(path)
    loaded = Baseline.load(path)
    assert json.loads(path.read_text())["version"] == 2
    assert loaded.categorical[0].categories == baseline.categorical[0].categories
    np.testing.assert_array_equal(
        loaded.categorical[0].counts, baseline.categorical[0].counts
    )
    assert loaded.confidence is not None
    assert sum(loaded.confidence["counts"]) == 200
    assert loaded.predictions is not None
    assert sum(loaded.predictions["counts"]) == 200


def test_version_1_file_loads(tmp_path: Path) -> None:
    """A version 1 file, numeric features only, still loads."""
    x, _ = load_diabetes(return_X_y=True)
    document = Baseline.fit(x[:, :3]).to_dict()
    document["version"] = 1
    del document["confidence"]
    document["predictions"] = {
        "kind": "labels", "rows": 10, "labels": ["a", "b"], "fractions": [0.7, 0.3]
    }
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(document))
    loaded = Baseline.load(path)
    assert loaded.feature_names == ("x0", "x1", "x2")
    assert loaded.categorical == ()
    assert loaded.predictions is not None
    assert loaded.predictions["counts"] == [7, 3]


@pytest.mark.parametrize("bins", [1, 101, 2.5, True])
def test_fit_rejects_bad_bins(bins: object) -> None:
    """bins outside 2..100 gets an error naming the value."""
    with pytest.raises(BaselineError, match="Invalid bins"):
        Baseline.fit(np.ones((5, 2)), bins=bins)  # type: ignore[arg-type]


def test_fit_rejects_empty_data() -> None:
    """Zero rows gets an error naming the shape."""
    with pytest.raises(BaselineError, match=r"shape \(0, 3\)"):
        Baseline.fit(np.empty((0, 3)))
