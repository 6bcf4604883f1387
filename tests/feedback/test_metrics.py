"""Quality metrics from labelled pairs, checked by hand and against sklearn."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from feedback_test_support import FakeClock, record
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_mlmon.feedback import PredictionStore, QualityWindow
from otel_mlmon.feedback.metrics import (
    OTHER_CLASS,
    ClassificationQuality,
    RegressionQuality,
    accuracy,
    class_name,
    classification_quality,
    mean_absolute_error,
    regression_quality,
    root_mean_squared_error,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def test_classification_by_hand():
    """Accuracy, precision and recall of a small case computed by hand."""
    predicted = ["cat", "cat", "dog", "dog", "bird"]
    actual = ["cat", "dog", "dog", "dog", "cat"]
    quality = classification_quality(predicted, actual)
    assert quality.count == 5
    assert quality.accuracy == pytest.approx(3 / 5)
    assert quality.classes["cat"].precision == pytest.approx(1 / 2)
    assert quality.classes["cat"].recall == pytest.approx(1 / 2)
    assert quality.classes["dog"].precision == pytest.approx(1.0)
    assert quality.classes["dog"].recall == pytest.approx(2 / 3)
    assert quality.classes["bird"].precision == pytest.approx(0.0)
    assert quality.classes["bird"].recall is None
    assert quality.classes["bird"].support == 0
    assert quality.classes["bird"].predicted == 1


def test_regression_by_hand():
    """MAE and RMSE of a small case computed by hand."""
    quality = regression_quality([1.0, 2.0, 4.0], [1.0, 4.0, 1.0])
    assert quality.count == 3
    assert quality.mae == pytest.approx(5 / 3)
    assert quality.rmse == pytest.approx(math.sqrt(13 / 3))


def test_shortcut_functions():
    """accuracy, MAE and RMSE functions equal the quality fields."""
    assert accuracy([1, 2, 3], [1, 2, 4]) == pytest.approx(2 / 3)
    assert mean_absolute_error([0.0, 1.0], [1.0, 1.0]) == pytest.approx(0.5)
    assert root_mean_squared_error([0.0, 2.0], [2.0, 2.0]) == pytest.approx(
        math.sqrt(2.0)
    )


def test_empty_inputs_give_none():
    """No pairs give None, not NaN or an error."""
    assert classification_quality([], []) == ClassificationQuality(0, None, {})
    assert regression_quality([], []) == RegressionQuality(0, None, None)


def test_missing_values_left_out():
    """Pairs with None or NaN on either side are not scored."""
    classes = classification_quality(["a", None, "b"], ["a", "a", None])
    values = regression_quality([1.0, math.nan, None, 3.0], [2.0, 1.0, 1.0, math.inf])
    assert classes.count == 1
    assert classes.accuracy == 1.0
    assert values.count == 1
    assert values.mae == 1.0


def test_mismatched_lengths_rejected():
    """Inputs of different lengths or dimensions raise ValueError."""
    with pytest.raises(ValueError, match="2 values but actual has 3"):
        classification_quality([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="must be 1-D"):
        regression_quality([[1.0]], [[1.0]])
    with pytest.raises(ValueError, match="must contain numbers"):
        regression_quality(["a"], [1.0])


def test_classes_folded_into_other():
    """Beyond max_classes, the least frequent classes are scored as "other"."""
    predicted = ["a", "a", "a", "b", "b", "c", "d", "e"]
    actual = ["a", "a", "b", "b", "b", "d", "c", "e"]
    quality = classification_quality(predicted, actual, max_classes=2)
    assert set(quality.classes) == {"a", "b", OTHER_CLASS}
    assert quality.accuracy == pytest.approx(5 / 8)
    other = quality.classes[OTHER_CLASS]
    assert other.support == 3
    assert other.predicted == 3
    assert other.precision == pytest.approx(1.0)
    assert other.recall == pytest.approx(1.0)
    unfolded = classification_quality(predicted, actual)
    assert quality.classes["a"] == unfolded.classes["a"]
    assert quality.classes["b"] == unfolded.classes["b"]


def test_real_class_named_other_folded():
    """A real class named "other" is reported in the folded bucket."""
    quality = classification_quality(["other", "a"], ["other", "a"], max_classes=5)
    assert set(quality.classes) == {"a", OTHER_CLASS}
    assert quality.classes[OTHER_CLASS].support == 1


def test_class_names():
    """Classes are named by value, booleans as in JSON, whole floats as ints."""
    assert class_name(True) == "true"
    assert class_name(np.bool_(False)) == "false"
    assert class_name(np.int64(3)) == "3"
    assert class_name("setosa") == "setosa"
    assert class_name(2.0) == "2"
    assert class_name(2.5) == "2.5"
    quality = classification_quality(np.array([1, 2]), np.array([1.0, 2.0]))
    assert set(quality.classes) == {"1", "2"}


labels = st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_classification_matches_sklearn(data: st.DataObject):
    """Unfolded scores equal sklearn's accuracy, precision and recall."""
    actual = data.draw(labels)
    predicted = data.draw(
        st.lists(
            st.integers(min_value=0, max_value=6),
            min_size=len(actual),
            max_size=len(actual),
        )
    )
    quality = classification_quality(predicted, actual, max_classes=10)
    classes = sorted(set(actual) | set(predicted))
    precision, recall, _, support = sklearn_metrics.precision_recall_fscore_support(
        actual, predicted, labels=classes, zero_division=np.nan
    )
    assert quality.accuracy == pytest.approx(
        sklearn_metrics.accuracy_score(actual, predicted)
    )
    for index, value in enumerate(classes):
        scores = quality.classes[str(value)]
        assert scores.support == support[index]
        _assert_score(scores.precision, precision[index])
        _assert_score(scores.recall, recall[index])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_folded_scores_match_sklearn(data: st.DataObject):
    """Folded scores equal sklearn's on labels mapped to kept or "other"."""
    actual = data.draw(labels)
    predicted = data.draw(
        st.lists(
            st.integers(min_value=0, max_value=6),
            min_size=len(actual),
            max_size=len(actual),
        )
    )
    quality = classification_quality(predicted, actual, max_classes=2)
    kept_names = [name for name in quality.classes if name != OTHER_CLASS]

    def fold(values: list[int]) -> list[str]:
        return [str(v) if str(v) in kept_names else OTHER_CLASS for v in values]

    names = sorted(quality.classes)
    precision, recall, _, _ = sklearn_metrics.precision_recall_fscore_support(
        fold(actual), fold(predicted), labels=names, zero_division=np.nan
    )
    assert len(kept_names) <= 2
    for index, name in enumerate(names):
        _assert_score(quality.classes[name].precision, precision[index])
        _assert_score(quality.classes[name].recall, recall[index])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-1e6, 1e6, allow_nan=False),
            st.floats(-1e6, 1e6, allow_nan=False),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_regression_matches_sklearn(pairs: list[tuple[float, float]]):
    """MAE and RMSE equal sklearn's."""
    predicted = [pair[0] for pair in pairs]
    actual = [pair[1] for pair in pairs]
    quality = regression_quality(predicted, actual)
    expected_mse = sklearn_metrics.mean_squared_error(actual, predicted)
    assert quality.mae == pytest.approx(
        sklearn_metrics.mean_absolute_error(actual, predicted), rel=1e-9, abs=1e-9
    )
    assert quality.rmse == pytest.approx(math.sqrt(expected_mse), rel=1e-9, abs=1e-9)


def _assert_score(value: float | None, expected: float) -> None:
    if math.isnan(expected):
        assert value is None
    else:
        assert value == pytest.approx(expected)


def test_window_keeps_last_pairs():
    """A count window scores only the last max_count pairs."""
    clock = FakeClock()
    window = QualityWindow("classification", max_count=3, clock=clock)
    window.extend(["a", "a", "b", "b", "b"], ["b", "b", "b", "b", "b"])
    quality = window.quality()
    assert len(window) == 3
    assert isinstance(quality, ClassificationQuality)
    assert quality.count == 3
    assert quality.accuracy == 1.0


def test_window_relabel_replaces_pair():
    """A second label for one prediction id replaces the first."""
    window = QualityWindow("classification", max_count=4, clock=FakeClock())
    window.add("a", "b", prediction_id="p-0")
    window.add("a", "a", prediction_id="p-1")
    window.add("a", "a", prediction_id="p-0")
    quality = window.quality()
    assert len(window) == 2
    assert isinstance(quality, ClassificationQuality)
    assert quality.accuracy == 1.0


def test_window_relabel_after_eviction():
    """An id whose pair left the window is added again as a new pair."""
    window = QualityWindow("regression", max_count=2, clock=FakeClock())
    window.add(1.0, 1.0, prediction_id="p-0")
    window.extend([2.0, 3.0], [2.0, 3.0])
    window.add(1.0, 5.0, prediction_id="p-0")
    quality = window.quality()
    assert len(window) == 2
    assert isinstance(quality, RegressionQuality)
    assert quality.mae == pytest.approx(2.0)


def test_window_by_time():
    """A time window drops pairs labelled more than max_age_s ago."""
    clock = FakeClock()
    window = QualityWindow("regression", max_count=100, max_age_s=60.0, clock=clock)
    window.add(0.0, 10.0)
    clock.advance(30.0)
    window.add(0.0, 1.0)
    clock.advance(31.0)
    quality = window.quality()
    assert isinstance(quality, RegressionQuality)
    assert quality.count == 1
    assert quality.mae == 1.0
    assert window.quality(now=clock.now - 31.0).count == 2


def test_window_batch_larger_than_window():
    """A batch bigger than the window keeps its last max_count pairs."""
    window = QualityWindow("regression", max_count=4)
    window.extend(list(range(10)), [0.0] * 10, at=1.0)
    quality = window.quality(now=1.0)
    assert isinstance(quality, RegressionQuality)
    assert quality.count == 4
    assert quality.mae == pytest.approx((6 + 7 + 8 + 9) / 4)


def test_window_equals_pure_function():
    """Window scores equal the pure function on the same last pairs."""
    generator = np.random.default_rng(7)
    predicted = generator.integers(0, 30, 5000).tolist()
    actual = generator.integers(0, 30, 5000).tolist()
    window = QualityWindow("classification", max_count=700, max_classes=5)
    for start in range(0, 5000, 250):
        window.extend(predicted[start : start + 250], actual[start : start + 250], 1.0)
    expected = classification_quality(predicted[-700:], actual[-700:], max_classes=5)
    assert window.quality(now=1.0) == expected


def test_window_forgets_old_classes():
    """A stream of ever-new classes keeps the class table bounded."""
    window = QualityWindow("classification", max_count=10, max_classes=3)
    for index in range(5000):
        window.add(f"class-{index}", f"class-{index}", at=1.0)
    quality = window.quality(now=1.0)
    expected = classification_quality(
        [f"class-{index}" for index in range(4990, 5000)],
        [f"class-{index}" for index in range(4990, 5000)],
        max_classes=3,
    )
    assert quality == expected
    assert len(window._class_names) <= 2 * 10 + 20


def test_window_missing_values():
    """None and NaN labels are kept in the window but not scored."""
    window = QualityWindow("classification", max_count=10)
    window.extend(["a", "b", None, "c"], ["a", None, "b", np.float32("nan")], at=1.0)
    quality = window.quality(now=1.0)
    assert len(window) == 4
    assert quality.count == 1


def test_window_whole_float_labels():
    """A label 1.0 for a prediction 1 counts as the same class."""
    window = QualityWindow("classification", max_count=10)
    window.extend([1, 2], [1.0, 3.0], at=1.0)
    quality = window.quality(now=1.0)
    assert isinstance(quality, ClassificationQuality)
    assert quality.accuracy == 0.5
    assert set(quality.classes) == {"1", "2", "3"}


def test_window_threads():
    """Concurrent adds from threads are all counted."""
    window = QualityWindow("regression", max_count=100_000)

    def work() -> None:
        for _ in range(1000):
            window.add(1.0, 2.0, at=1.0)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(window) == 8000
    assert window.quality(now=1.0).count == 8000


def test_window_from_store(tmp_path):
    """Pairs read from the store fill a window."""
    clock = FakeClock()
    with PredictionStore(tmp_path / "feedback.sqlite3", clock=clock) as store:
        store.add_predictions(
            [record("p1", 0), record("p2", 1), record("p3", 1), record("p4", 2)]
        )
        for prediction_id, label in [("p1", 0), ("p2", 1), ("p3", 0), ("p4", 2)]:
            clock.advance(1.0)
            store.record_label(prediction_id, label)
        pairs = store.labelled_pairs("iris")
    window = QualityWindow("classification", clock=clock)
    window.add_pairs(pairs)
    quality = window.quality()
    assert isinstance(quality, ClassificationQuality)
    assert quality.accuracy == pytest.approx(3 / 4)
    assert quality.classes["1"].precision == pytest.approx(1 / 2)
    assert quality.classes["0"].recall == pytest.approx(1 / 2)


def test_window_arguments_validated():
    """Invalid window settings raise ValueError naming the setting."""
    with pytest.raises(ValueError, match="kind"):
        QualityWindow("ranking")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_count"):
        QualityWindow("regression", max_count=0)
    with pytest.raises(ValueError, match="max_age_s"):
        QualityWindow("regression", max_age_s=0.0)
    with pytest.raises(ValueError, match="max_classes"):
        QualityWindow("classification", max_classes=0)
    window = QualityWindow("regression")
    with pytest.raises(ValueError, match="2 values but actual has 1"):
        window.extend([1.0, 2.0], [1.0])
