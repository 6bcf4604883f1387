"""Zero-code instrumentation: unchanged Flask apps under opentelemetry-instrument.

Each test launches ``launcher_app.py`` in a subprocess with real models
trained on scikit-learn's breast cancer data set, sends real HTTP requests
to 127.0.0.1 and reads the OTLP it exports to a receiver on 127.0.0.1.
A request carries a ``traceparent`` header, so its spans are found by
trace id.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2
from sklearn.datasets import load_breast_cancer

sys.path.insert(0, str(Path(__file__).parent))

from launcher_support import (  # noqa: E402
    LaunchedApp,
    attributes,
    launch,
    metric_points,
    resource_ids,
    wait_for,
)
from otel_mlmon_test_support import HttpReceiver, Received  # noqa: E402

from otel_mlmon import Baseline  # noqa: E402

_X, _Y = load_breast_cancer(return_X_y=True)
_NAMES = [str(name) for name in load_breast_cancer().feature_names]
_PYTHON_APP = ["python", "launcher_app.py"]


def _post(app: LaunchedApp, path: str, rows: Any) -> tuple[bytes, Any]:
    """POST rows in a new trace; return the trace id and the reply."""
    trace_id = random.getrandbits(128).to_bytes(16, "big")
    parent = random.getrandbits(64).to_bytes(8, "big")
    reply = app.post(
        path, rows, headers={"traceparent": f"00-{trace_id.hex()}-{parent.hex()}-01"}
    )
    return trace_id, reply


def _trace(received: Received, trace_id: bytes, count: int) -> list[Any]:
    """Wait for ``count`` spans of one trace and return them."""

    def spans() -> list[Any]:
        return [span for span in received.spans() if span.trace_id == trace_id]

    wait_for(lambda: len(spans()) >= count)
    return spans()


def _split(spans: list[Any]) -> tuple[Any, list[Any]]:
    """Return Flask's server span and the prediction spans of one trace."""
    servers = [s for s in spans if s.kind == trace_pb2.Span.SPAN_KIND_SERVER]
    assert len(servers) == 1, [s.name for s in spans]
    predictions = [s for s in spans if "ml.model.name" in attributes(s)]
    return servers[0], predictions


@pytest.fixture(name="baseline_path", scope="module")
def fixture_baseline_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("baseline") / "cancer.json"
    Baseline.fit(_X, feature_names=_NAMES).save(path)
    return str(path)


@pytest.fixture(name="sklearn_app", scope="module")
def fixture_sklearn_app(
    baseline_path: str,
) -> Iterator[tuple[LaunchedApp, Received]]:
    """The sklearn app, launched once for the tests of this module."""
    receiver = HttpReceiver()
    extra = {
        "OTEL_MLMON_MODEL_NAME": "Pipeline=cancer_pipeline",
        "OTEL_MLMON_MODEL_VERSION": "Pipeline=3,*=1",
        "OTEL_MLMON_BASELINE": f"Pipeline={baseline_path}",
        "OTEL_MLMON_LOW_CONFIDENCE_THRESHOLD": "0.99",
        "OTEL_MLMON_DRIFT_WINDOW_ROWS": "60",
        "OTEL_MLMON_DRIFT_MIN_ROWS": "10",
    }
    try:
        with launch(_PYTHON_APP, receiver.endpoint, "sklearn", extra) as app:
            yield app, receiver.received
    finally:
        receiver.close()


def test_pipeline_span_under_server_span(
    sklearn_app: tuple[LaunchedApp, Received],
) -> None:
    app, received = sklearn_app
    trace_id, reply = _post(app, "/predict/pipeline", _X[:5])
    server, predictions = _split(_trace(received, trace_id, 2))
    assert len(reply["labels"]) == 5
    assert len(predictions) == 1, [s.name for s in predictions]
    span = predictions[0]
    assert span.name == "predict_proba cancer_pipeline"
    assert span.parent_span_id == server.span_id
    assert span.kind == trace_pb2.Span.SPAN_KIND_INTERNAL
    found = attributes(span)
    assert found["ml.model.version"] == "3"
    assert found["ml.model.framework"] == "sklearn"
    assert found["ml.operation.name"] == "predict_proba"
    assert found["ml.batch.size"] == 5
    assert found["ml.input.feature.names"] == _NAMES
    assert found["ml.input.feature.max"][0] == pytest.approx(_X[:5, 0].max())
    assert 0.5 <= found["ml.prediction.confidence.min"] <= 1.0


def test_user_defined_subclass_traced(
    sklearn_app: tuple[LaunchedApp, Received],
) -> None:
    app, received = sklearn_app
    trace_id, _ = _post(app, "/predict/subclass", _X[:3])
    server, predictions = _split(_trace(received, trace_id, 2))
    assert [s.name for s in predictions] == ["predict_proba ShrunkForest"]
    assert predictions[0].parent_span_id == server.span_id
    assert attributes(predictions[0])["ml.model.version"] == "1"


def test_estimator_without_predict_proba(
    sklearn_app: tuple[LaunchedApp, Received],
) -> None:
    app, received = sklearn_app
    assert app.get("/probe")["svc_has_predict_proba"] is False
    trace_id, _ = _post(app, "/predict/svc", _X[:2])
    _, predictions = _split(_trace(received, trace_id, 2))
    assert [s.name for s in predictions] == ["predict SVC"]
    found = attributes(predictions[0])
    assert "ml.prediction.confidence.skipped" in found
    assert sum(found["ml.output.class_counts"]) == 2


@pytest.mark.parametrize("route", ["/thread/pipeline", "/async/pipeline"])
def test_worker_thread_and_task_parent(
    sklearn_app: tuple[LaunchedApp, Received], route: str
) -> None:
    app, received = sklearn_app
    trace_id, _ = _post(app, route, _X[:2])
    server, predictions = _split(_trace(received, trace_id, 2))
    assert len(predictions) == 1
    assert predictions[0].parent_span_id == server.span_id


def test_low_confidence_event_and_log(
    sklearn_app: tuple[LaunchedApp, Received],
) -> None:
    app, received = sklearn_app
    # A blend of a malignant and a benign tumour sits near the boundary.
    blend = (_X[_Y == 0][:4] + _X[_Y == 1][:4]) / 2
    trace_id, _ = _post(app, "/predict/pipeline", blend)
    _, predictions = _split(_trace(received, trace_id, 2))
    events = {event.name: event for event in predictions[0].events}
    assert "ml.prediction.low_confidence" in events
    flagged = attributes(events["ml.prediction.low_confidence"])
    assert flagged["ml.prediction.low_confidence.count"] >= 1
    assert wait_for(
        lambda: any(
            record.trace_id == trace_id for record in received.log_records()
        )
    )


def test_drift_event_from_baseline_variable(
    sklearn_app: tuple[LaunchedApp, Received],
) -> None:
    app, received = sklearn_app
    # Fill the current window, then send size features scaled by 1.5.
    shifted = _X[:60].copy()
    shifted[:, [0, 2, 3]] *= 1.5
    _post(app, "/predict/pipeline", _X[100:160])
    trace_id, _ = _post(app, "/predict/pipeline", shifted)
    _, predictions = _split(_trace(received, trace_id, 2))
    drifted = [
        attributes(event)["ml.feature.name"]
        for event in predictions[0].events
        if event.name == "ml.drift.detected"
    ]
    assert "mean radius" in drifted or "mean area" in drifted, drifted


def test_metrics_carry_model_identity(
    sklearn_app: tuple[LaunchedApp, Received],
) -> None:
    app, received = sklearn_app
    _post(app, "/predict/pipeline", _X[:4])

    def pipeline_points() -> list[Any]:
        with received.lock:
            requests = list(received.requests["metrics"])
        return [
            point
            for point in metric_points(requests, "ml.model.predictions")
            if attributes(point).get("ml.model.name") == "cancer_pipeline"
        ]

    assert wait_for(lambda: bool(pipeline_points()))
    point = pipeline_points()[-1]
    assert attributes(point)["ml.model.version"] == "3"
    assert point.as_int >= 4
    assert {
        "ml.model.prediction.duration",
        "ml.model.prediction.confidence",
        "ml.model.prediction.cpu_time",
    } <= received.metric_names()


_FRAMEWORK_CASES = [
    ("xgboost", "/predict/xgb", "predict_proba XGBClassifier"),
    ("lightgbm", "/predict/lgbm", "predict_proba LGBMClassifier"),
    ("onnxruntime", "/predict/onnx", "run InferenceSession"),
]


@pytest.mark.parametrize(("framework", "route", "span_name"), _FRAMEWORK_CASES)
def test_framework_span_under_server_span(
    otlp_http_receiver: HttpReceiver, framework: str, route: str, span_name: str
) -> None:
    received = otlp_http_receiver.received
    extra = {"OTEL_MLMON_MODEL_VERSION": "7"}
    with launch(_PYTHON_APP, otlp_http_receiver.endpoint, framework, extra) as app:
        trace_id, reply = _post(app, route, _X[:6])
        server, predictions = _split(_trace(received, trace_id, 2))
        assert wait_for(
            lambda: "ml.model.predictions" in received.metric_names()
        )
    assert len(reply["labels"]) == 6
    # One span per call: the inner booster or graph calls get none.
    assert [s.name for s in predictions] == [span_name]
    span = predictions[0]
    assert span.parent_span_id == server.span_id
    found = attributes(span)
    assert found["ml.model.framework"] == framework
    assert found["ml.model.version"] == "7"
    assert found["ml.batch.size"] == 6
    assert found["ml.input.feature.count"] == 30
    assert found["ml.input.feature.min"][1] == pytest.approx(
        _X[:6, 1].min(), rel=1e-6
    )
    assert 0.5 <= found["ml.prediction.confidence.min"] <= 1.0


def test_disabled_instrumentation_leaves_model_untraced(
    otlp_http_receiver: HttpReceiver,
) -> None:
    received = otlp_http_receiver.received
    extra = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "xgboost"}
    with launch(_PYTHON_APP, otlp_http_receiver.endpoint, "xgboost", extra) as app:
        trace_id, _ = _post(app, "/predict/xgb", _X[:2])
        spans = _trace(received, trace_id, 1)
    _, predictions = _split(spans)
    assert predictions == []


@pytest.mark.parametrize("preload", [False, True], ids=["fork", "preload"])
def test_gunicorn_workers_export(
    otlp_http_receiver: HttpReceiver, preload: bool
) -> None:
    received = otlp_http_receiver.received
    command = [
        "gunicorn",
        "--workers",
        "2",
        "--bind",
        "127.0.0.1:{port}",
        *(["--preload"] if preload else []),
        "launcher_app:app",
    ]
    with launch(command, otlp_http_receiver.endpoint, "sklearn") as app:
        pids: set[int] = set()
        for _ in range(200):
            pids.add(app.post("/predict/pipeline", _X[:1])["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2

        def traced_instances() -> set[Any]:
            with received.lock:
                requests = list(received.requests["traces"])
            return resource_ids(requests, "resource_spans")

        def metered_instances() -> set[Any]:
            with received.lock:
                requests = [
                    request
                    for request in received.requests["metrics"]
                    if metric_points([request], "ml.model.predictions")
                ]
            return resource_ids(requests, "resource_metrics")

        assert wait_for(lambda: len(traced_instances()) == 2)
        assert wait_for(lambda: len(metered_instances()) == 2)
    predictions = [
        span for span in received.spans() if span.name == "predict_proba Pipeline"
    ]
    assert len(predictions) >= 2
