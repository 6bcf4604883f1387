"""Property tests: inputs of every dtype and shape through both entry points.

Hypothesis draws numpy arrays of every dtype (NaN, +-inf, 1e308, 5e-324,
object arrays of mixed values, strings, dates), pandas DataFrames with
numeric, nullable, categorical, string and datetime columns, scipy.sparse
matrices, Python lists, empty and 2,000-column inputs. Each input goes to a
real scikit-learn model through ``wrap_model`` and through the sklearn
instrumentor that ``opentelemetry-instrument`` loads, and for every input:

- the result equals the bare call's (values, dtype and shape, or the same
  exception type and message), with the same warnings;
- otel_mlmon and the OpenTelemetry SDK log no warning;
- every span and event attribute has a valid OpenTelemetry type, ints fit
  int64 and floats are finite (the README promises finite exported values);
- the span stays within its ``SpanLimits`` and the package's caps
  (``max_features``, ten output classes, ``max_flagged_rows``, 20 feature
  events), and reports ``ml.input.feature.truncated`` when the cap applies.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import logging
import math
import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from otel_mlmon import Baseline, MLSpanProcessor, MonitorConfig, semconv, wrap_model
from otel_mlmon.instrumentation.sklearn import SklearnInstrumentor
from otel_mlmon.outputs import MAX_CLASSES
from otel_mlmon.processor import MAX_FEATURE_EVENTS

sys.path.insert(0, str(Path(__file__).parent))

from launcher_support import LAUNCHER, attributes, launcher_environment  # noqa: E402
from otel_mlmon_test_support import HttpReceiver  # noqa: E402

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
NATIVE_TYPES = (str, bool, int, float)

SPECIAL_FLOATS = (
    0.0,
    -0.0,
    1.0,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    -1e308,
    1.7976931348623157e308,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
)
"""Float64 values at and beyond the edges of the finite range."""

HUGE_INTEGERS = (2**63, -(2**63) - 1, 2**64, 10**400, -(10**400))
"""Python ints that fit no numpy integer, and the last two not even float64."""

NUMPY_DTYPES = (
    "float16",
    "float32",
    "float64",
    "longdouble",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex64",
    "complex128",
    "datetime64[ns]",
    "datetime64[D]",
    "timedelta64[ns]",
    "<U6",
    "S4",
    "object",
)

FRAME_COLUMN_KINDS = (
    "float64",
    "float32",
    "int64",
    "uint64",
    "int8",
    "bool",
    "complex128",
    "category",
    "object text",
    "object mixed",
    "Int64",
    "Float64",
    "boolean",
    "string[python]",
    "str",
    "datetime64[ns]",
    "datetime64[ns, UTC]",
    "timedelta64[ns]",
)

SPARSE_FORMATS = ("csr", "csc", "coo", "lil", "dok", "bsr", "dia")
SPARSE_DTYPES = (
    "float32",
    "float64",
    "int8",
    "int64",
    "uint64",
    "bool",
    "complex128",
)

LIMIT_PROFILES = {
    "sdk defaults": SpanLimits(),
    "tight": SpanLimits(
        max_attributes=9,
        max_events=2,
        max_event_attributes=3,
        max_attribute_length=12,
    ),
}
"""Span limits per tracer provider; the tight ones drop and cut attributes."""

SDK_LIMIT_MESSAGES = ("exceeds max length", "Attributes dict is full")
"""Parts of the warnings that the SDK logs when it applies the span limits."""

# Fitting LogisticRegression on unscaled features stops at max_iter, which
# does not matter to these tests.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# Strategies for model inputs.


def float64_values() -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from(SPECIAL_FLOATS), st.floats())


def mixed_values() -> st.SearchStrategy[Any]:
    """Cell values of an object array or column: anything a user may put there."""
    return st.one_of(
        float64_values(),
        st.integers(),
        st.sampled_from(HUGE_INTEGERS),
        st.booleans(),
        st.none(),
        st.just(pd.NA),
        st.just(pd.NaT),
        st.text(max_size=5),
        st.binary(max_size=3),
        st.complex_numbers(),
        st.lists(st.integers(-3, 3), max_size=2),
        st.datetimes(
            min_value=datetime.datetime(1700, 1, 1),
            max_value=datetime.datetime(2200, 1, 1),
        ),
    )


def object_array(values: Sequence[Any], shape: tuple[int, ...]) -> np.ndarray:
    """Return an object array of ``shape`` holding ``values`` one per cell.

    Filled cell by cell, because np.array() would turn list cells into a
    further dimension.
    """
    array = np.empty(shape, dtype=object)
    flat = array.reshape(-1)
    for index, value in enumerate(values):
        flat[index] = value
    return array


@st.composite
def numpy_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(NUMPY_DTYPES)))
    shape = draw(
        st.one_of(
            st.tuples(st.integers(0, 12)),
            st.tuples(st.integers(0, 12), st.integers(0, 6)),
            st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
        )
    )
    size = math.prod(shape)
    if dtype.kind == "O":
        return object_array(draw(st.lists(mixed_values(), min_size=size, max_size=size)), shape)
    if dtype == np.float64:
        return draw(hnp.arrays(dtype, shape, elements=float64_values()))
    if dtype == np.longdouble:
        values = draw(hnp.arrays(np.float64, shape, elements=float64_values()))
        array = values.astype(np.longdouble)
        # Long double reaches beyond float64's range where the platform has it.
        return array * np.longdouble(draw(st.sampled_from([1.0, 1e300])))
    return draw(hnp.arrays(dtype, shape))


def frame_column(kind: str, rows: int) -> st.SearchStrategy[Any]:
    """Return a strategy for one DataFrame column of ``kind`` with ``rows`` rows."""

    def cells(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
        return st.lists(values, min_size=rows, max_size=rows)

    optional_text = st.one_of(st.none(), st.text(max_size=4))
    timestamps = st.datetimes(
        min_value=datetime.datetime(1700, 1, 1),
        max_value=datetime.datetime(2200, 1, 1),
    )
    builders: dict[str, st.SearchStrategy[Any]] = {
        "float64": cells(float64_values()).map(lambda v: pd.Series(v, dtype="float64")),
        "float32": cells(st.floats(width=32)).map(lambda v: pd.Series(v, dtype="float32")),
        "int64": cells(st.integers(INT64_MIN, INT64_MAX)).map(
            lambda v: pd.Series(v, dtype="int64")
        ),
        "uint64": cells(st.integers(0, 2**64 - 1)).map(lambda v: pd.Series(v, dtype="uint64")),
        "int8": cells(st.integers(-128, 127)).map(lambda v: pd.Series(v, dtype="int8")),
        "bool": cells(st.booleans()).map(lambda v: pd.Series(v, dtype="bool")),
        "complex128": cells(st.complex_numbers()).map(
            lambda v: pd.Series(v, dtype="complex128")
        ),
        "category": cells(st.one_of(st.none(), st.sampled_from(["a", "b", "ß", "", "🙂"]))).map(
            lambda v: pd.Series(pd.Categorical(v))
        ),
        "object text": cells(optional_text).map(lambda v: pd.Series(v, dtype=object)),
        "object mixed": cells(mixed_values()).map(
            lambda v: pd.Series(object_array(v, (rows,)), dtype=object)
        ),
        "Int64": cells(st.one_of(st.none(), st.integers(INT64_MIN, INT64_MAX))).map(
            lambda v: pd.Series(pd.array(v, dtype="Int64"))
        ),
        "Float64": cells(st.one_of(st.none(), float64_values())).map(
            lambda v: pd.Series(pd.array(v, dtype="Float64"))
        ),
        "boolean": cells(st.one_of(st.none(), st.booleans())).map(
            lambda v: pd.Series(pd.array(v, dtype="boolean"))
        ),
        "string[python]": cells(optional_text).map(
            lambda v: pd.Series(pd.array(v, dtype="string[python]"))
        ),
        "str": cells(optional_text).map(lambda v: pd.Series(v, dtype="str")),
        "datetime64[ns]": cells(st.one_of(st.none(), timestamps)).map(
            lambda v: pd.Series(v, dtype="datetime64[ns]")
        ),
        "datetime64[ns, UTC]": cells(st.one_of(st.none(), timestamps)).map(
            lambda v: pd.Series(v, dtype="datetime64[ns]").dt.tz_localize("UTC")
        ),
        "timedelta64[ns]": cells(
            st.one_of(
                st.none(),
                st.timedeltas(
                    min_value=datetime.timedelta(days=-10**5),
                    max_value=datetime.timedelta(days=10**5),
                ),
            )
        ).map(lambda v: pd.Series(v, dtype="timedelta64[ns]")),
    }
    return builders[kind]


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(0, 10))
    kinds = draw(st.lists(st.sampled_from(FRAME_COLUMN_KINDS), max_size=6))
    names = draw(
        st.lists(
            st.one_of(st.sampled_from(["a", "b", "", "x0"]), st.integers(-2, 2), st.text(max_size=3)),
            min_size=len(kinds),
            max_size=len(kinds),
        )
    )
    if not kinds:
        return pd.DataFrame(index=range(rows))
    columns = [draw(frame_column(kind, rows)).reset_index(drop=True) for kind in kinds]
    frame = pd.concat(columns, axis=1)
    # Assigned afterwards, so duplicate and non-string names are kept as drawn.
    frame.columns = pd.Index(names, dtype=object)
    return frame


@st.composite
def sparse_matrices(draw: st.DrawFn) -> Any:
    dtype = np.dtype(draw(st.sampled_from(SPARSE_DTYPES)))
    shape = (draw(st.integers(0, 12)), draw(st.integers(0, 8)))
    rows, columns = shape
    entries = draw(st.integers(0, rows * columns * 2 if rows and columns else 0))
    if dtype == np.float64:
        values: st.SearchStrategy[Any] = float64_values()
    else:
        values = hnp.from_dtype(dtype)
    data = np.array(
        draw(st.lists(values, min_size=entries, max_size=entries)), dtype=dtype
    ).reshape(entries)
    row_index = draw(hnp.arrays(np.int64, entries, elements=st.integers(0, max(rows - 1, 0))))
    column_index = draw(
        hnp.arrays(np.int64, entries, elements=st.integers(0, max(columns - 1, 0)))
    )
    # COO with repeated coordinates holds duplicates, which scipy sums
    # whenever it converts; the other formats are converted from it.
    matrix = sp.coo_matrix((data, (row_index, column_index)), shape=shape)
    if draw(st.booleans()):
        matrix = sp.coo_array(matrix)
    with np.errstate(over="ignore", invalid="ignore"):
        return matrix.asformat(draw(st.sampled_from(SPARSE_FORMATS)))


@st.composite
def python_lists(draw: st.DrawFn) -> list[Any]:
    cell = st.one_of(
        float64_values(),
        st.integers(),
        st.sampled_from(HUGE_INTEGERS),
        st.booleans(),
        st.none(),
        st.text(max_size=3),
    )
    shape = draw(st.sampled_from(["rows", "ragged", "flat", "empty rows"]))
    if shape == "flat":
        return draw(st.lists(cell, max_size=12))
    if shape == "empty rows":
        return [[] for _ in range(draw(st.integers(0, 3)))]
    if shape == "ragged":
        return draw(st.lists(st.lists(cell, max_size=4), max_size=6))
    width = draw(st.integers(1, 5))
    rows = draw(st.integers(0, 8))
    return [draw(st.lists(cell, min_size=width, max_size=width)) for _ in range(rows)]


@st.composite
def wide_inputs(draw: st.DrawFn) -> Any:
    """Inputs of 129 to 2,000 columns, built by numpy so drawing stays fast."""
    rows = draw(st.integers(1, 3))
    width = draw(st.sampled_from([129, 1001, 2000]))
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).normal(size=(rows, width))
    for _ in range(draw(st.integers(0, 4))):
        value = draw(st.sampled_from(SPECIAL_FLOATS))
        values[draw(st.integers(0, rows - 1)), draw(st.integers(0, width - 1))] = value
    container = draw(st.sampled_from(["array", "frame", "csr", "list", "float32"]))
    if container == "frame":
        return pd.DataFrame(values, columns=[f"f{i}" for i in range(width)])
    if container == "csr":
        return sp.csr_matrix(np.where(np.abs(values) < 1.0, 0.0, values))
    if container == "list":
        return values.tolist()
    if container == "float32":
        with np.errstate(over="ignore"):
            return values.astype(np.float32)
    return values


any_inputs = st.one_of(
    numpy_arrays(), frames(), sparse_matrices(), python_lists(), wide_inputs()
)
"""Every kind of input; a model that only counts rows accepts most of them."""


# Real models and the data they were fitted on.

_IRIS_X, _IRIS_Y = load_iris(return_X_y=True)
_DIABETES_X, _DIABETES_Y = load_diabetes(return_X_y=True)
_CANCER = load_breast_cancer(as_frame=True)
_CANCER_X = _CANCER.data.to_numpy()
_CANCER_Y = _CANCER.target.to_numpy()
_CANCER_NAMES = [str(name) for name in _CANCER.data.columns]


def _fit_models() -> dict[str, Any]:
    """Fit the models once per module: those that take any input, and numeric ones."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        raw_logistic = LogisticRegression(max_iter=200).fit(_CANCER_X, _CANCER_Y)
    string_labels = np.array(["setosa", "versicolor", "virginica"])[_IRIS_Y]
    return {
        # Models whose predictions need only a row count.
        "prior classifier": DummyClassifier(strategy="prior").fit(_IRIS_X, _IRIS_Y),
        "string label classifier": DummyClassifier(strategy="most_frequent").fit(
            _IRIS_X, string_labels
        ),
        "mean regressor": DummyRegressor().fit(_DIABETES_X, _DIABETES_Y),
        "passthrough pipeline": make_pipeline(
            FunctionTransformer(), DummyClassifier(strategy="prior")
        ).fit(_IRIS_X, _IRIS_Y),
        # Models that read the 30 breast-cancer features.
        "scaled logistic": make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=1000)
        ).fit(_CANCER_X, _CANCER_Y),
        "raw logistic": raw_logistic,
        "gradient boosting": HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(
            _CANCER.data, _CANCER_Y
        ),
        "linear regression": LinearRegression().fit(_CANCER_X, _CANCER_X[:, 0]),
    }


ANY_INPUT_MODELS = (
    "prior classifier",
    "string label classifier",
    "mean regressor",
    "passthrough pipeline",
)
NUMERIC_MODELS = ("scaled logistic", "raw logistic", "gradient boosting", "linear regression")
OPERATIONS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


BASELINE_MISMATCH = "match the input's columns to the baseline's features"
"""Part of the warning logged, as documented, for inputs whose columns the
baseline cannot map: other names, or another width."""


@dataclasses.dataclass(repr=False)
class Fitted:
    """The fitted models by name, and a baseline of the breast-cancer features."""

    models: dict[str, Any]
    baseline: Baseline

    def __repr__(self) -> str:
        # Hypothesis prints the arguments of a failing example; keep this short.
        return f"Fitted(models={sorted(self.models)})"


@pytest.fixture(name="fitted", scope="module")
def fixture_fitted() -> Fitted:
    return Fitted(_fit_models(), Baseline.fit(_CANCER_X, feature_names=_CANCER_NAMES))


def matches_baseline_columns(data: Any) -> bool:
    """Tell whether the input's columns map to the breast-cancer baseline's features.

    Object columns of a DataFrame count as categories, not as numbers.
    """
    if isinstance(data, pd.DataFrame):
        numeric = data.select_dtypes(include="number")
        return [str(column) for column in numeric.columns] == _CANCER_NAMES
    shape = data.shape if sp.issparse(data) else np.shape(data)
    if len(shape) == 1:
        return bool(shape[0] == len(_CANCER_NAMES))
    return len(shape) == 2 and shape[1] == len(_CANCER_NAMES)


@st.composite
def cancer_inputs(draw: st.DrawFn) -> Any:
    """Breast-cancer rows with special values, in every container and dtype.

    Most inputs have the 30 features the models expect, so the models run
    instead of rejecting the shape; a few have 29 or 31 columns.
    """
    rows = draw(st.integers(0, 12))
    width = draw(st.sampled_from([30] * 8 + [29, 31]))
    picked = draw(hnp.arrays(np.int64, rows, elements=st.integers(0, len(_CANCER_X) - 1)))
    values = np.resize(_CANCER_X[picked], (rows, width)).astype(np.float64)
    if rows:
        for _ in range(draw(st.integers(0, 6))):
            cell = (draw(st.integers(0, rows - 1)), draw(st.integers(0, width - 1)))
            values[cell] = draw(float64_values())
        scale = draw(st.sampled_from([1.0, 1.0, 1.5, 1e300, -1.0, 0.0]))
        with np.errstate(over="ignore", invalid="ignore"):
            values = values * scale
    dtype = draw(st.sampled_from(["float64", "float32", "float16", "int64", "uint8", "object"]))
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if dtype in ("int64", "uint8"):
            finite = np.where(np.isfinite(values), values, 0.0)
            values = np.clip(finite, *_integer_range(dtype)).astype(dtype)
        else:
            values = values.astype(dtype)
    container = draw(st.sampled_from(["array", "frame", "named frame", "csr", "list", "row"]))
    if container == "frame":
        return pd.DataFrame(values)
    if container == "named frame" and width == 30:
        return pd.DataFrame(values, columns=_CANCER_NAMES)
    if container == "csr" and dtype != "object" and dtype != "float16":
        return sp.csr_matrix(values)
    if container == "list":
        return values.tolist()
    if container == "row" and rows:
        return values[0]
    return values


def _integer_range(dtype: str) -> tuple[float, float]:
    info = np.iinfo(dtype)
    # The largest int64 is not a float64, so clip below it to stay in range.
    return float(info.min), float(info.max) / 2


@st.composite
def monitor_configs(draw: st.DrawFn, drift: bool = False) -> MonitorConfig:
    """Settings with tight caps in some examples: max_features=5, few flagged rows."""
    options: dict[str, Any] = {
        "max_features": draw(st.sampled_from([1, 5, 128])),
        "low_confidence_threshold": draw(st.sampled_from([0.5, 0.99])),
        "max_flagged_rows": draw(st.sampled_from([0, 3, 20])),
        "min_summary_rows": draw(st.sampled_from([1, 1, 3])),
        "capture_inputs": draw(st.booleans()),
    }
    if drift:
        options.update(
            drift_window_rows=draw(st.sampled_from([4, 8])),
            drift_min_rows=1,
            drift_statistic=draw(st.sampled_from(["psi", "jensen_shannon", "wasserstein", "ks"])),
        )
    return MonitorConfig(**options)


# Calls, compared.


@dataclasses.dataclass
class Outcome:
    """What one model call returned or raised, and the warnings it emitted."""

    result: Any = None
    error: BaseException | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)


def call_model(method: Callable[[Any], Any], data: Any) -> Outcome:
    """Call ``method(data)`` and record its result or exception and its warnings."""
    outcome = Outcome()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome.result = method(data)
        except Exception as error:  # noqa: BLE001 (compared with the bare call's)
            outcome.error = error
    outcome.warnings = [f"{item.category.__name__}: {item.message}" for item in caught]
    return outcome


def assert_same_outcome(actual: Outcome, expected: Outcome) -> None:
    """Assert that a traced call returned or raised exactly what the bare call did."""
    assert actual.warnings == expected.warnings
    if expected.error is not None:
        assert type(actual.error) is type(expected.error)
        assert str(actual.error) == str(expected.error)
        return
    assert actual.error is None, repr(actual.error)
    assert_same_result(actual.result, expected.result)


def assert_same_result(actual: Any, expected: Any) -> None:
    """Assert equal values, dtype and shape; NaN equals NaN at the same place."""
    assert type(actual) is type(expected)
    if isinstance(expected, list):
        assert len(actual) == len(expected)
        for actual_item, expected_item in zip(actual, expected):
            assert_same_result(actual_item, expected_item)
        return
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected, strict=True)


class RecordingHandler(logging.Handler):
    """A logging handler that keeps the records it receives."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def telemetry_warnings() -> Iterator[list[str]]:
    """Collect the WARNING and higher records of otel_mlmon and the OpenTelemetry SDK.

    The SDK logs, for example, attributes of invalid type that it drops.
    """
    handler = RecordingHandler()
    loggers = [logging.getLogger("otel_mlmon"), logging.getLogger("opentelemetry")]
    for logger in loggers:
        logger.addHandler(handler)
    found: list[str] = []
    try:
        yield found
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        found.extend(f"{record.name}: {record.getMessage()}" for record in handler.records)


# The checks of exported spans.


def iter_attributes(span: ReadableSpan) -> Iterator[tuple[str, Any]]:
    """Yield (place, value) for every attribute of the span and of its events."""
    for key, value in (span.attributes or {}).items():
        yield key, value
    for event in span.events:
        for key, value in (event.attributes or {}).items():
            yield f"{event.name}/{key}", value


def invalid_attribute_types(span: ReadableSpan) -> list[str]:
    """Return attributes that are not a native scalar or a homogeneous sequence of one."""
    problems = []
    for place, value in iter_attributes(span):
        if isinstance(value, tuple):
            kinds = {type(element) for element in value}
            if len(kinds) > 1 or not kinds <= set(NATIVE_TYPES):
                problems.append(f"{place}: sequence of {sorted(k.__name__ for k in kinds)}")
        elif type(value) not in NATIVE_TYPES:
            problems.append(f"{place}: {type(value).__module__}.{type(value).__name__}")
    return problems


def scalars_of(span: ReadableSpan) -> Iterator[tuple[str, Any]]:
    for place, value in iter_attributes(span):
        for element in value if isinstance(value, tuple) else (value,):
            yield place, element


def ints_beyond_int64(span: ReadableSpan) -> list[str]:
    return [
        f"{place}: {value}"
        for place, value in scalars_of(span)
        if type(value) is int and not INT64_MIN <= value <= INT64_MAX
    ]


def non_finite_floats(span: ReadableSpan) -> list[str]:
    return [
        f"{place}: {value}"
        for place, value in scalars_of(span)
        if isinstance(value, float) and not math.isfinite(value)
    ]


def strings_over_limit(span: ReadableSpan, limits: SpanLimits) -> list[str]:
    if limits.max_attribute_length is None:
        return []
    return [
        f"{place}: {len(value)} characters"
        for place, value in scalars_of(span)
        if isinstance(value, str) and len(value) > limits.max_attribute_length
    ]


def cap_problems(span: ReadableSpan, config: MonitorConfig) -> list[str]:
    """Return the package caps that the span's attributes and events exceed.

    Under tight span limits the SDK may have dropped an attribute, so each
    check applies to the attributes that are there.
    """
    attributes: dict[str, Any] = dict(span.attributes or {})
    problems = []
    count = attributes.get(semconv.ML_INPUT_FEATURE_COUNT)
    names = attributes.get(semconv.ML_INPUT_FEATURE_NAMES)
    truncated = attributes.get(semconv.ML_INPUT_FEATURE_TRUNCATED)
    if count is not None and names is not None:
        if len(names) != min(count, config.max_features):
            problems.append(f"{len(names)} feature names for {count} features")
        if count > config.max_features and truncated is not True:
            problems.append(f"{count} features over the cap, but truncated={truncated}")
    if count is not None and count <= config.max_features and truncated is not None:
        problems.append(f"{count} features within the cap, but truncated={truncated}")
    for key in (
        semconv.ML_INPUT_FEATURE_NAMES,
        semconv.ML_INPUT_FEATURE_MEAN,
        semconv.ML_INPUT_FEATURE_STD,
        semconv.ML_INPUT_FEATURE_MIN,
        semconv.ML_INPUT_FEATURE_MAX,
        semconv.ML_INPUT_FEATURE_NULL_COUNT,
        semconv.ML_INPUT_CATEGORICAL_NAMES,
        semconv.ML_INPUT_CATEGORICAL_DISTINCT_COUNT,
        semconv.ML_INPUT_CATEGORICAL_NULL_COUNT,
    ):
        value = attributes.get(key)
        if value is not None and len(value) > config.max_features:
            problems.append(f"{key} has {len(value)} values")
    batch = attributes.get(semconv.ML_BATCH_SIZE)
    nulls = attributes.get(semconv.ML_INPUT_FEATURE_NULL_COUNT, ())
    if batch is not None and any(not 0 <= n <= batch for n in nulls):
        problems.append(f"null counts {nulls} outside 0..{batch}")
    classes = attributes.get(semconv.ML_OUTPUT_CLASSES, ())
    if len(classes) > MAX_CLASSES:
        problems.append(f"{len(classes)} output classes")
    for event in span.events:
        rows: Any = (event.attributes or {}).get(semconv.ML_PREDICTION_ROWS, ())
        if len(rows) > config.max_flagged_rows:
            problems.append(f"{event.name} lists {len(rows)} rows")
    for name in (semconv.ML_DRIFT_DETECTED, semconv.ML_INPUT_OUT_OF_RANGE):
        events = [event for event in span.events if event.name == name]
        if len(events) > MAX_FEATURE_EVENTS:
            problems.append(f"{len(events)} {name} events")
    return problems


def unexpected_warnings(
    logged: list[str], limits: SpanLimits, allowed: Sequence[str] = ()
) -> list[str]:
    """Return the logged warnings, less the SDK's own under tight limits and ``allowed``."""
    expected = list(allowed)
    if limits is not LIMIT_PROFILES["sdk defaults"]:
        expected += SDK_LIMIT_MESSAGES
    return [
        message
        for message in logged
        if not any(part in message for part in expected)
    ]


def assert_span_within_limits(span: ReadableSpan, limits: SpanLimits) -> None:
    """Assert the SpanLimits on attributes and events; the SDK defaults drop nothing."""
    assert limits.max_attributes is not None
    assert limits.max_events is not None
    assert limits.max_event_attributes is not None
    assert len(span.attributes or {}) <= limits.max_attributes
    assert len(span.events) <= limits.max_events
    for event in span.events:
        assert len(event.attributes or {}) <= limits.max_event_attributes
    assert strings_over_limit(span, limits) == []
    if limits is LIMIT_PROFILES["sdk defaults"]:
        # A wide input costs a handful of array attributes, so the SDK's
        # default of 128 attributes is never reached.
        assert span.dropped_attributes == 0
        assert span.dropped_events == 0


def assert_valid_span(
    span: ReadableSpan, config: MonitorConfig, limits: SpanLimits, expected: Outcome
) -> None:
    """Assert the properties every prediction span must have, whatever the input."""
    assert invalid_attribute_types(span) == []
    assert ints_beyond_int64(span) == []
    assert non_finite_floats(span) == []
    assert_span_within_limits(span, limits)
    assert cap_problems(span, config) == []
    if expected.error is None:
        assert span.status.status_code is StatusCode.UNSET
    else:
        assert span.status.status_code is StatusCode.ERROR


# Telemetry shared by the examples of a test.


@dataclasses.dataclass(repr=False)
class Telemetry:
    """One tracer provider per span-limit profile, with in-memory exporters."""

    exporters: dict[str, InMemorySpanExporter]
    tracer_providers: dict[str, TracerProvider]
    meter_provider: MeterProvider
    logs: InMemoryLogRecordExporter

    def __repr__(self) -> str:
        return "Telemetry()"

    def clear(self) -> None:
        for exporter in self.exporters.values():
            exporter.clear()
        self.logs.clear()

    def finished_spans(self, profile: str) -> tuple[ReadableSpan, ...]:
        return self.exporters[profile].get_finished_spans()


@pytest.fixture(name="telemetry", scope="module")
def fixture_telemetry() -> Iterator[Telemetry]:
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    exporters = {}
    tracer_providers = {}
    for profile, limits in LIMIT_PROFILES.items():
        exporters[profile] = InMemorySpanExporter()
        provider = TracerProvider(span_limits=limits)
        provider.add_span_processor(MLSpanProcessor(logger_provider=logger_provider))
        provider.add_span_processor(SimpleSpanProcessor(exporters[profile]))
        tracer_providers[profile] = provider
    meter_provider = MeterProvider()
    yield Telemetry(exporters, tracer_providers, meter_provider, logs)
    for provider in tracer_providers.values():
        provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()


def check_wrapped_call(
    telemetry: Telemetry,
    model: Any,
    operation: str,
    data: Any,
    config: MonitorConfig,
    profile: str,
    baseline: Baseline | None = None,
    allowed: Sequence[str] = (),
) -> None:
    """Compare a wrap_model call with the bare call, and check the span it exported.

    ``allowed`` holds parts of warnings that the call may log.
    """
    telemetry.clear()
    # A new proxy per example, because a telemetry failure is logged only
    # once per model and kind.
    wrapped = wrap_model(
        model,
        tracer_provider=telemetry.tracer_providers[profile],
        meter_provider=telemetry.meter_provider,
        config=config,
        baseline=baseline,
    )
    expected = call_model(getattr(model, operation), data)
    with telemetry_warnings() as logged:
        actual = call_model(getattr(wrapped, operation), data)
    assert_same_outcome(actual, expected)
    assert unexpected_warnings(logged, LIMIT_PROFILES[profile], allowed) == []
    spans = telemetry.finished_spans(profile)
    assert len(spans) == 1
    assert_valid_span(spans[0], config, LIMIT_PROFILES[profile], expected)


# (a) wrap_model.

_CAPTURING = MonitorConfig(capture_inputs=True)


def _duplicated_columns(frame: pd.DataFrame) -> pd.DataFrame:
    frame.columns = pd.Index(["a"] * frame.shape[1], dtype=object)
    return frame


# Inputs that once made the telemetry fail or warn, kept as reproducers.
_REPRODUCERS = [
    # A Python int beyond float64's range raised OverflowError in the summary.
    ("predict_proba", np.array([[10**400, 1.0]], dtype=object)),
    # A sparse matrix without stored values failed to cast the zero variance.
    ("predict", sp.csr_matrix((1, 1), dtype=np.float32)),
    # COO duplicates, which scipy sums, gave a negative variance and a
    # RuntimeWarning in the caller's code.
    ("predict", sp.coo_matrix(([True, True], ([0, 0], [0, 0])), shape=(1, 1))),
    # A complex column warned ComplexWarning in the caller's code.
    ("predict", pd.DataFrame({"a": pd.Series([], dtype="complex128")})),
    # Repeated column names warned in to_dict when capturing inputs.
    ("predict_proba", _duplicated_columns(pd.DataFrame([[0.0, 0.0]]))),
    # Repeated column names with an unhashable cell broke the distinct counts.
    (
        "predict",
        _duplicated_columns(
            pd.DataFrame({"x": object_array([[]], (1,)), "y": pd.Series([pd.NA], dtype=object)})
        ),
    ),
]


def _with_reproducers(test: Callable[..., None]) -> Callable[..., None]:
    for operation, data in _REPRODUCERS:
        test = example(
            model_name="prior classifier",
            operation=operation,
            data=data,
            config=_CAPTURING,
            profile="sdk defaults",
        )(test)
    return test


@example(
    # A COO matrix wider than max_features failed: COO cannot slice columns.
    model_name="prior classifier",
    operation="predict",
    data=sp.coo_matrix((1, 6), dtype=np.float32),
    config=MonitorConfig(max_features=5),
    profile="sdk defaults",
)
@_with_reproducers
@settings(max_examples=100, deadline=None)
@given(
    model_name=st.sampled_from(ANY_INPUT_MODELS),
    operation=st.sampled_from(OPERATIONS[:3]),
    data=any_inputs,
    config=monitor_configs(),
    profile=st.sampled_from(sorted(LIMIT_PROFILES)),
)
def test_wrapped_any_input_matches_bare(
    telemetry: Telemetry,
    fitted: Fitted,
    model_name: str,
    operation: str,
    data: Any,
    config: MonitorConfig,
    profile: str,
) -> None:
    """Models that need only a row count: wrapped calls equal bare ones, spans valid."""
    model = fitted.models[model_name]
    if not hasattr(model, operation):
        operation = "predict"
    check_wrapped_call(telemetry, model, operation, data, config, profile)


@example(
    # Outputs near 1e308 overflowed the output std to inf, with a RuntimeWarning.
    model_name="linear regression",
    operation="predict",
    data=_CANCER_X[:3] * 1e300,
    config=MonitorConfig(),
    profile="sdk defaults",
    with_baseline=False,
)
@settings(max_examples=75, deadline=None)
@given(
    model_name=st.sampled_from(NUMERIC_MODELS),
    operation=st.sampled_from(OPERATIONS),
    data=cancer_inputs(),
    config=monitor_configs(drift=True),
    profile=st.sampled_from(sorted(LIMIT_PROFILES)),
    with_baseline=st.booleans(),
)
def test_wrapped_numeric_input_matches_bare(
    telemetry: Telemetry,
    fitted: Fitted,
    model_name: str,
    operation: str,
    data: Any,
    config: MonitorConfig,
    profile: str,
    with_baseline: bool,
) -> None:
    """Breast-cancer models on rows with NaN, inf and 1e308, with drift windows."""
    model = fitted.models[model_name]
    if not hasattr(model, operation):
        operation = "predict"
    baseline = fitted.baseline if with_baseline else None
    allowed = () if matches_baseline_columns(data) else (BASELINE_MISMATCH,)
    check_wrapped_call(
        telemetry, model, operation, data, config, profile, baseline, allowed
    )


# (b) The sklearn instrumentor that opentelemetry-instrument loads.


@contextlib.contextmanager
def sklearn_instrumented(
    telemetry: Telemetry, profile: str, config: MonitorConfig, environ: dict[str, str]
) -> Iterator[None]:
    """Instrument scikit-learn in this process, as the launcher does, then undo it.

    ``environ`` contains ``OTEL_MLMON_*`` variables read when instrumenting,
    such as the baseline's path.
    """
    saved = {key: os.environ.get(key) for key in environ}
    os.environ.update(environ)
    instrumentor = SklearnInstrumentor()
    try:
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_providers[profile],
            meter_provider=telemetry.meter_provider,
            config=config,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield
    finally:
        instrumentor.uninstrument()


def check_instrumented_calls(
    telemetry: Telemetry,
    fitted: Fitted,
    model_names: Sequence[str],
    inputs: st.SearchStrategy[Any],
    config: MonitorConfig,
    profile: str,
    environ: dict[str, str],
) -> None:
    """Run drawn inputs through instrumented models, against the suppressed calls."""

    @settings(
        max_examples=60,
        deadline=None,
        # Drawing a wide input takes longer than the health check allows.
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        model_name=st.sampled_from(model_names),
        operation=st.sampled_from(OPERATIONS),
        data=inputs,
    )
    def run(model_name: str, operation: str, data: Any) -> None:
        telemetry.clear()
        # A new model object gets a new monitor from the instrumentor, so
        # a telemetry failure is logged again in each example.
        model = copy.copy(fitted.models[model_name])
        if not hasattr(model, operation):
            operation = "predict"
        with suppress_instrumentation():
            expected = call_model(getattr(model, operation), data)
        assert telemetry.finished_spans(profile) == ()
        with telemetry_warnings() as logged:
            actual = call_model(getattr(model, operation), data)
        assert_same_outcome(actual, expected)
        allowed = (BASELINE_MISMATCH,) if environ and not matches_baseline_columns(data) else ()
        assert unexpected_warnings(logged, LIMIT_PROFILES[profile], allowed) == []
        spans = telemetry.finished_spans(profile)
        assert len(spans) == 1
        if profile == "sdk defaults":
            assert (spans[0].attributes or {}).get(semconv.ML_MODEL_FRAMEWORK) == "sklearn"
        assert_valid_span(spans[0], config, LIMIT_PROFILES[profile], expected)

    with sklearn_instrumented(telemetry, profile, config, environ):
        run()


@pytest.mark.parametrize(
    ("profile", "config"),
    [
        ("sdk defaults", MonitorConfig(low_confidence_threshold=0.99)),
        ("tight", MonitorConfig(max_features=5, max_flagged_rows=3, capture_inputs=True)),
    ],
    ids=["sdk defaults", "tight"],
)
def test_instrumented_any_input_matches_bare(
    telemetry: Telemetry, fitted: Fitted, profile: str, config: MonitorConfig
) -> None:
    """Instrumented models that need only a row count equal their bare calls."""
    check_instrumented_calls(
        telemetry, fitted, ANY_INPUT_MODELS, any_inputs, config, profile, {}
    )


def test_instrumented_numeric_input_matches_bare(
    telemetry: Telemetry, fitted: Fitted, tmp_path: Path
) -> None:
    """Instrumented breast-cancer models with a baseline from OTEL_MLMON_BASELINE."""
    path = tmp_path / "cancer.json"
    fitted.baseline.save(path)
    config = MonitorConfig(max_features=5, drift_window_rows=4, drift_min_rows=1)
    environ = {"OTEL_MLMON_BASELINE": str(path)}
    check_instrumented_calls(
        telemetry, fitted, NUMERIC_MODELS, cancer_inputs(), config, "sdk defaults", environ
    )


# The real launcher, in a subprocess.

LAUNCHED_SCRIPT = '''
import logging
import pickle
import sys
import warnings

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation


class Recording(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(f"{record.name}: {record.getMessage()}")


def call(method, data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome = ("result", method(data))
        except Exception as error:
            outcome = ("error", type(error).__qualname__, str(error))
    return outcome, [f"{item.category.__name__}: {item.message}" for item in caught]


handler = Recording()
logging.getLogger("otel_mlmon").addHandler(handler)
# Unpickling the models imports scikit-learn, which the launcher's
# instrumentor patches as it is imported.
with open(sys.argv[1], "rb") as file:
    models, cases = pickle.load(file)
outcomes = []
for name, operation, data in cases:
    method = getattr(models[name], operation)
    with suppress_instrumentation():
        bare = call(method, data)
    outcomes.append((bare, call(method, data)))
trace.get_tracer_provider().force_flush()
with open(sys.argv[2], "wb") as file:
    pickle.dump((outcomes, handler.messages), file)
'''
"""A script that calls each model bare (instrumentation suppressed) and traced."""

LAUNCHED_MAX_FEATURES = 5


def draw_launcher_cases(fitted: Fitted, count: int) -> list[tuple[str, str, Any]]:
    """Draw inputs with Hypothesis and keep ``count`` of different container types."""
    drawn: list[tuple[str, str, Any]] = []

    @settings(max_examples=40, deadline=None, database=None)
    @given(
        model_name=st.sampled_from(ANY_INPUT_MODELS),
        operation=st.sampled_from(OPERATIONS[:3]),
        data=any_inputs,
    )
    def collect(model_name: str, operation: str, data: Any) -> None:
        if not hasattr(fitted.models[model_name], operation):
            operation = "predict"
        drawn.append((model_name, operation, data))

    collect()
    by_type: dict[str, list[tuple[str, str, Any]]] = {}
    for case in reversed(drawn):
        by_type.setdefault(type(case[2]).__name__, []).append(case)
    picked: list[tuple[str, str, Any]] = []
    while len(picked) < count and any(by_type.values()):
        for cases in by_type.values():
            if cases and len(picked) < count:
                picked.append(cases.pop())
    return picked


def launched_span_problems(span: Any) -> list[str]:
    """Return the OTLP attributes of a span and its events that break the rules."""
    problems = []
    for place, values in [("span", attributes(span))] + [
        (event.name, attributes(event)) for event in span.events
    ]:
        for key, value in values.items():
            elements = value if isinstance(value, list) else [value]
            if len({type(element) for element in elements}) > 1:
                problems.append(f"{place}/{key}: mixed types")
            if any(isinstance(e, float) and not math.isfinite(e) for e in elements):
                problems.append(f"{place}/{key}: not finite")
            if key.startswith("ml.input.") and len(elements) > LAUNCHED_MAX_FEATURES:
                problems.append(f"{place}/{key}: {len(elements)} values")
    return problems


def test_launcher_drawn_inputs_match_bare(fitted: Fitted, tmp_path: Path) -> None:
    """Under opentelemetry-instrument, traced calls equal suppressed ones, OTLP valid."""
    cases = draw_launcher_cases(fitted, count=6)
    inputs = tmp_path / "cases.pickle"
    outputs = tmp_path / "outcomes.pickle"
    script = tmp_path / "launched.py"
    inputs.write_bytes(pickle.dumps((fitted.models, cases)))
    script.write_text(LAUNCHED_SCRIPT)
    receiver = HttpReceiver()
    try:
        environ = launcher_environment(
            receiver.endpoint,
            "sklearn",
            0,
            {"OTEL_MLMON_MAX_FEATURES": str(LAUNCHED_MAX_FEATURES)},
        )
        completed = subprocess.run(
            [LAUNCHER, sys.executable, str(script), str(inputs), str(outputs)],
            env=environ,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        outcomes, logged = pickle.loads(outputs.read_bytes())
        spans = [
            span
            for span in receiver.received.spans()
            if "ml.model.name" in attributes(span)
        ]
    finally:
        receiver.close()

    assert logged == []
    assert len(outcomes) == len(cases)
    for (bare, bare_warnings), (traced, traced_warnings) in outcomes:
        assert traced_warnings == bare_warnings
        assert traced[0] == bare[0]
        if bare[0] == "error":
            assert traced[1:] == bare[1:]
        else:
            assert_same_result(traced[1], bare[1])
    # One span per traced call, none for the suppressed calls.
    assert len(spans) == len(cases)
    for span in spans:
        assert launched_span_problems(span) == []
