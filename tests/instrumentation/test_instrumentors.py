"""The framework instrumentors in process, with providers passed explicitly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import types
from collections.abc import Iterator
from typing import Any

import lightgbm
import numpy as np
import onnxruntime
import pytest
import sklearn.base
import xgboost
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.ensemble._forest import ForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from otel_mlmon import Baseline, MonitorConfig
from otel_mlmon.instrumentation._auto import (
    ModelIdentity,
    defining_class,
    is_patched,
    parse_per_class,
)
from otel_mlmon.instrumentation.lightgbm import LightGBMInstrumentor
from otel_mlmon.instrumentation.onnxruntime import OnnxRuntimeInstrumentor
from otel_mlmon.instrumentation.sklearn import SklearnInstrumentor
from otel_mlmon.instrumentation.torch import TorchInstrumentor
from otel_mlmon.instrumentation.xgboost import XGBoostInstrumentor

# Logistic regression on the unscaled data stops at max_iter, which is
# irrelevant to these tests.
pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)

_X, _Y = load_breast_cancer(return_X_y=True)
_CONFIG = MonitorConfig()

# Methods the instrumentors patch, as (class, attribute) pairs; each is
# looked up on the class that defines it.
_PATCHED = [
    (sklearn.base.BaseEstimator, "__init_subclass__"),
    (ForestClassifier, "predict"),
    (ForestClassifier, "predict_proba"),
    (LinearClassifierMixin, "predict"),
    (LinearClassifierMixin, "decision_function"),
    (LogisticRegression, "predict_proba"),
    (Pipeline, "predict_proba"),
    (SVC, "predict"),
    (xgboost.core.Booster, "predict"),
    (xgboost.core.Booster, "inplace_predict"),
    (xgboost.XGBModel, "predict"),
    (xgboost.XGBClassifier, "predict"),
    (xgboost.XGBClassifier, "predict_proba"),
    (lightgbm.Booster, "predict"),
    (lightgbm.LGBMModel, "predict"),
    (lightgbm.LGBMClassifier, "predict_proba"),
    (onnxruntime.InferenceSession, "run"),
]
_PATCHED = [
    (cls if name == "__init_subclass__" else defining_class(cls, name), name)
    for cls, name in _PATCHED
]


@pytest.fixture(name="instrumented")
def fixture_instrumented(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> Iterator[list[Any]]:
    """Every framework instrumentor, instrumented with the test providers."""
    instrumentors = [
        SklearnInstrumentor(),
        XGBoostInstrumentor(),
        LightGBMInstrumentor(),
        OnnxRuntimeInstrumentor(),
    ]
    for instrumentor in instrumentors:
        instrumentor.instrument(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            config=_CONFIG,
        )
    try:
        yield instrumentors
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()


@contextlib.contextmanager
def _sklearn_instrumented(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> Iterator[None]:
    """Instrument scikit-learn alone, after the test has set its variables."""
    instrumentor = SklearnInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        config=_CONFIG,
    )
    try:
        yield
    finally:
        instrumentor.uninstrument()


@pytest.fixture(name="classifier", scope="module")
def fixture_classifier() -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        _X, _Y
    )


def _names(exporter: InMemorySpanExporter) -> list[str]:
    return [span.name for span in exporter.get_finished_spans()]


def test_uninstrument_restores_methods(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> None:
    originals = {
        (owner, name): owner.__dict__.get(name) for owner, name in _PATCHED
    }
    instrumentors = [
        SklearnInstrumentor(),
        XGBoostInstrumentor(),
        LightGBMInstrumentor(),
        OnnxRuntimeInstrumentor(),
    ]
    for instrumentor in instrumentors:
        instrumentor.instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    patched = {
        (owner, name): owner.__dict__.get(name) for owner, name in _PATCHED
    }
    for instrumentor in instrumentors:
        instrumentor.uninstrument()
    for key, original in originals.items():
        assert patched[key] is not original, key
        assert key[0].__dict__.get(key[1]) is original, key
    for key, replacement in patched.items():
        if key[1] != "__init_subclass__":
            assert is_patched(replacement), key


def test_inherited_method_patched_once(instrumented: list[Any]) -> None:
    assert "predict" not in RandomForestClassifier.__dict__
    assert is_patched(ForestClassifier.__dict__["predict"])
    assert "predict_proba" not in SVC.__dict__


def test_pipeline_gives_one_span(
    instrumented: list[Any], classifier: Any, span_exporter: InMemorySpanExporter
) -> None:
    result = classifier.predict_proba(_X[:3])
    assert result.shape == (3, 2)
    assert _names(span_exporter) == ["predict_proba Pipeline"]


def test_subclass_defined_later_traced(
    instrumented: list[Any], span_exporter: InMemorySpanExporter
) -> None:
    class Doubled(LogisticRegression):
        def predict(self, X: Any) -> Any:  # noqa: N803 (sklearn's name)
            return super().predict(X) * 2

    model = Doubled(max_iter=1000).fit(_X, _Y)
    span_exporter.clear()
    assert set(model.predict(_X[:4]).tolist()) <= {0, 2}
    assert _names(span_exporter) == ["predict Doubled"]


def test_class_created_after_uninstrument_untouched(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> None:
    instrumentor = SklearnInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    instrumentor.uninstrument()

    class Plain(LogisticRegression):
        def predict(self, X: Any) -> Any:  # noqa: N803 (sklearn's name)
            return super().predict(X)

    assert not is_patched(Plain.__dict__["predict"])


def test_no_predict_proba_stays_absent(
    instrumented: list[Any], span_exporter: InMemorySpanExporter
) -> None:
    model = SVC().fit(_X[:100], _Y[:100])
    assert not hasattr(model, "predict_proba")
    pipeline = make_pipeline(StandardScaler(), SVC()).fit(_X[:100], _Y[:100])
    assert not hasattr(pipeline, "predict_proba")
    span_exporter.clear()
    pipeline.predict(_X[:2])
    assert _names(span_exporter) == ["predict Pipeline"]


def test_xgboost_booster_call_gives_one_span(
    instrumented: list[Any], span_exporter: InMemorySpanExporter
) -> None:
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(_X, _Y)
    booster_type = xgboost.core.Booster
    traced = booster_type.__dict__["inplace_predict"]
    booster_calls = []

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        booster_calls.append(1)
        return traced(self, *args, **kwargs)

    booster_type.inplace_predict = counted  # type: ignore[method-assign]
    try:
        span_exporter.clear()
        model.predict(_X[:3])
    finally:
        booster_type.inplace_predict = traced  # type: ignore[method-assign]
    assert booster_calls
    assert _names(span_exporter) == ["predict XGBClassifier"]
    span_exporter.clear()
    model.get_booster().inplace_predict(_X[:3])
    assert _names(span_exporter) == ["inplace_predict Booster"]


def test_lightgbm_booster_traced(
    instrumented: list[Any], span_exporter: InMemorySpanExporter
) -> None:
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(_X, _Y)
    span_exporter.clear()
    model.predict_proba(_X[:2])
    model.booster_.predict(_X[:2])
    assert _names(span_exporter) == [
        "predict_proba LGBMClassifier",
        "predict Booster",
    ]


@pytest.mark.parametrize("option", ["raw_score", "pred_contrib"])
@pytest.mark.parametrize("rows", [1, 150])
def test_lightgbm_scores_give_no_confidence(
    instrumented: list[Any],
    span_exporter: InMemorySpanExporter,
    option: str,
    rows: int,
) -> None:
    # With these options LGBMClassifier.predict_proba returns scores or
    # feature contributions: negative values, not probabilities.
    features, labels = load_iris(return_X_y=True)
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(
        features, labels
    )
    batch = features[:rows]
    with suppress_instrumentation():
        expected = model.predict_proba(batch, **{option: True})
    span_exporter.clear()
    scores = model.predict_proba(batch, **{option: True})
    np.testing.assert_array_equal(scores, expected)
    assert np.asarray(expected).min() < 0.0
    (span,) = span_exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert "ml.prediction.confidence.min" not in attributes
    assert "ml.prediction.confidence" not in attributes
    reason = str(attributes["ml.prediction.confidence.skipped"])
    assert "outside the range" in reason


def test_onnx_session_confidence(
    instrumented: list[Any], classifier: Any, span_exporter: InMemorySpanExporter
) -> None:
    from skl2onnx import to_onnx

    graph = to_onnx(classifier, _X[:1].astype(np.float32))
    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    span_exporter.clear()
    name = session.get_inputs()[0].name
    labels, probabilities = session.run(None, {name: _X[:5].astype(np.float32)})
    assert len(labels) == 5
    (span,) = span_exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert span.name == "run InferenceSession"
    assert attributes["ml.batch.size"] == 5
    expected = min(max(row.values()) for row in probabilities)
    assert attributes["ml.prediction.confidence.min"] == pytest.approx(expected)
    assert sum(attributes["ml.output.class_counts"]) == 5


def test_monitor_per_model_object(instrumented: list[Any]) -> None:
    sklearn_instrumentor = instrumented[0]
    first = LogisticRegression(max_iter=1000).fit(_X, _Y)
    second = LogisticRegression(max_iter=1000).fit(_X, _Y)
    monitors = sklearn_instrumentor.monitors
    first.predict(_X[:1])
    second.predict(_X[:1])
    first.predict(_X[:1])
    assert monitors.get(first) is not monitors.get(second)
    count = len(monitors)
    del first
    gc.collect()
    assert len(monitors) == count - 1


def test_worker_thread_parent_is_current_span(
    instrumented: list[Any],
    classifier: Any,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    tracer = tracer_provider.get_tracer("test")

    def work() -> None:
        with tracer.start_as_current_span("worker"):
            classifier.predict(_X[:1])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    spans = {span.name: span for span in span_exporter.get_finished_spans()}
    assert spans["predict Pipeline"].parent is not None
    assert spans["predict Pipeline"].parent.span_id == spans["worker"].context.span_id


def test_asyncio_task_parent_is_current_span(
    instrumented: list[Any],
    classifier: Any,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    tracer = tracer_provider.get_tracer("test")

    async def request(name: str) -> None:
        with tracer.start_as_current_span(name):
            await asyncio.sleep(0.01)
            classifier.predict(_X[:1])

    async def serve() -> None:
        await asyncio.gather(request("first"), request("second"))

    asyncio.run(serve())
    spans = span_exporter.get_finished_spans()
    callers = {s.context.span_id: s.name for s in spans if s.name in ("first", "second")}
    parents = sorted(
        callers[s.parent.span_id]
        for s in spans
        if s.name == "predict Pipeline" and s.parent is not None
    )
    assert parents == ["first", "second"]


def test_suppressed_instrumentation_gives_no_span(
    instrumented: list[Any], classifier: Any, span_exporter: InMemorySpanExporter
) -> None:
    with suppress_instrumentation():
        classifier.predict(_X[:2])
    assert _names(span_exporter) == []


def test_broken_adapter_disables_only_itself(
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
    classifier: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BrokenXGBoost(XGBoostInstrumentor):
        _instance = None  # BaseInstrumentor keeps one instance per class

        def _patch(self, module: types.ModuleType, *args: Any) -> None:
            super()._patch(module, *args)
            raise RuntimeError("adapter bug")

    broken = BrokenXGBoost()
    working = SklearnInstrumentor()
    with caplog.at_level(logging.WARNING):
        broken.instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        working.instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    try:
        assert not is_patched(xgboost.XGBClassifier.__dict__["predict"])
        classifier.predict(_X[:1])
        assert _names(span_exporter) == ["predict Pipeline"]
        warnings = [r for r in caplog.records if "xgboost" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        working.uninstrument()
        broken.uninstrument()


def test_absent_framework_stays_idle(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> None:
    class Absent(TorchInstrumentor):
        _instance = None  # BaseInstrumentor keeps one instance per class
        requirements = ("otel-mlmon-no-such-framework >= 1",)

    instrumentor = Absent()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    try:
        assert instrumentor.monitors is None
    finally:
        instrumentor.uninstrument()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, (None, {})),
        ("churn", ("churn", {})),
        ("/data/a=b.json", ("/data/a=b.json", {})),
        ("Pipeline=churn, *=other", ("other", {"Pipeline": "churn"})),
        ("A=x,B=y", (None, {"A": "x", "B": "y"})),
    ],
)
def test_parse_per_class(text: str | None, expected: Any) -> None:
    assert parse_per_class(text) == expected


def test_identity_from_variables(tmp_path: Any) -> None:
    path = tmp_path / "baseline.json"
    Baseline.fit(_X).save(path)
    identity = ModelIdentity(
        {
            "OTEL_MLMON_MODEL_NAME": "SVC=svc_model",
            "OTEL_MLMON_MODEL_VERSION": "4",
            "OTEL_MLMON_BASELINE": f"SVC={path},*={tmp_path / 'missing.json'}",
        }
    )
    svc, forest = SVC(), RandomForestClassifier()
    assert identity.name_for(svc) == "svc_model"
    assert identity.name_for(forest) == "RandomForestClassifier"
    assert identity.version_for(forest) == "4"
    baseline = identity.baseline_for(svc)
    assert baseline is not None
    assert baseline.feature_names == tuple(f"x{i}" for i in range(30))
    assert identity.baseline_for(forest) is None


def test_torch_module_outermost_only(
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    torch = pytest.importorskip(
        "torch", reason="torch is not installed (it is several GB from PyPI)"
    )
    instrumentor = TorchInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    try:
        model = torch.nn.Sequential(
            torch.nn.Linear(30, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
        ).eval()
        model(torch.tensor(_X[:4], dtype=torch.float32))
        assert _names(span_exporter) == ["forward Sequential"]
        (span,) = span_exporter.get_finished_spans()
        attributes = dict(span.attributes or {})
        assert attributes["ml.input.type"] == "torch"
        assert attributes["ml.input.feature.count"] == 30
        assert attributes["ml.input.feature.max"][0] == pytest.approx(
            _X[:4, 0].max(), rel=1e-5
        )
        span_exporter.clear()
        model.train()
        model(torch.tensor(_X[:4], dtype=torch.float32))
        assert _names(span_exporter) == []
    finally:
        instrumentor.uninstrument()


def test_mixed_per_class_entries_warn(caplog: pytest.LogCaptureFixture) -> None:
    """A value mixing ClassName=value and plain entries is logged as a typo."""
    text = "SVC=svc_model,RandomForestClassifier"
    with caplog.at_level(logging.WARNING):
        identity = ModelIdentity(
            {"OTEL_MLMON_MODEL_NAME": text, "OTEL_MLMON_BASELINE": "/data/a=b.json"}
        )
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1
    assert "OTEL_MLMON_MODEL_NAME" in messages[0]
    assert repr(text) in messages[0]
    assert "*=value" in messages[0]
    assert identity.name_for(SVC()) == text


@pytest.mark.parametrize(
    "content",
    [b"[" * 100_000 + b"]" * 100_000, b'{"schema": "\xff\xfe"}'],
    ids=["deeply_nested", "not_utf8"],
)
def test_unreadable_baseline_keeps_predicting(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
    content: bytes,
) -> None:
    """A baseline file that is not a baseline is logged, and predictions go on."""
    path = tmp_path / "baseline.json"
    path.write_bytes(content)
    monkeypatch.setenv("OTEL_MLMON_BASELINE", str(path))
    model = LogisticRegression(max_iter=50).fit(_X, _Y)
    expected = model.predict(_X[:5])
    with _sklearn_instrumented(tracer_provider, meter_provider):
        with caplog.at_level(logging.WARNING):
            predicted = model.predict(_X[:5])
    assert np.array_equal(predicted, expected)
    assert len(span_exporter.get_finished_spans()) == 1
    warnings = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(warnings) == 1
    assert "OTEL_MLMON_BASELINE" in warnings[0]


def test_monitor_setup_failure_untraced(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    """A monitor that fails to set up leaves the model untraced, not broken."""
    from otel_mlmon.instrumentation import _auto

    def fail(self: Any, model: Any) -> None:
        raise RuntimeError("setup failed on purpose")

    # Fault injection: any error while a model's monitor is built.
    monkeypatch.setattr(_auto.ModelIdentity, "baseline_for", fail)
    model = LogisticRegression(max_iter=50).fit(_X, _Y)
    expected = model.predict(_X[:5])
    with _sklearn_instrumented(tracer_provider, meter_provider):
        with caplog.at_level(logging.WARNING):
            first = model.predict(_X[:5])
            second = model.predict(_X[:5])
    assert np.array_equal(first, expected)
    assert np.array_equal(second, expected)
    assert span_exporter.get_finished_spans() == ()
    warnings = [r.getMessage() for r in caplog.records if "setup failed" in r.getMessage()]
    assert len(warnings) == 1
    assert "LogisticRegression" in warnings[0]


def test_nested_thresholds_variable_logged(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
) -> None:
    """Deeply nested JSON in a variable is an invalid setting, not a crash."""
    monkeypatch.setenv("OTEL_MLMON_DRIFT_THRESHOLDS", "[" * 100_000 + "]" * 100_000)
    instrumentor = SklearnInstrumentor()
    with caplog.at_level(logging.ERROR):
        instrumentor.instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    try:
        assert instrumentor.monitors is None
    finally:
        instrumentor.uninstrument()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "OTEL_MLMON_DRIFT_THRESHOLDS" in errors[0]
