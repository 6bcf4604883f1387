"""Prediction ids and POST /feedback through a real server on 127.0.0.1.

Each test serves a wrapped model with Flask and werkzeug in a thread, with a
real SQLite feedback store, and sends real HTTP requests.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from feedback_test_support import FakeClock
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from otel_mlmon import MonitorConfig, semconv, wrap_model
from otel_mlmon.feedback import PredictionStore
from otel_mlmon.feedback._monitor import active_recorders, close_recorders
from otel_mlmon.flask import MAX_BODY_BYTES, MAX_LABELS, PREDICTION_ID_HEADER, init_app


@pytest.fixture(autouse=True)
def _close_recorders() -> Iterator[None]:
    yield
    close_recorders()


@dataclasses.dataclass
class Served:
    """A model served on 127.0.0.1 and the data it was trained on."""

    base: str
    x: np.ndarray
    y: np.ndarray

    def post(
        self, path: str, body: bytes | Any, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any], Any]:
        """POST JSON (or raw bytes) and return status, headers and JSON body."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = urllib.request.Request(
            self.base + path, data=data, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(sent, timeout=30) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read())

    def predict(self, rows: np.ndarray) -> tuple[int, dict[str, Any], Any]:
        return self.post("/predict", {"rows": rows.tolist()})


def _app(model: Any) -> Flask:
    app = Flask("feedback_test")

    # Registered before init_app, so a rejected request skips the hook
    # that clears the ids of the request before.
    @app.before_request
    def reject_marked() -> Any:
        if request.headers.get("X-Reject"):
            return jsonify(error="rejected"), 403
        return None

    @app.post("/predict")
    def predict() -> Any:
        rows = np.asarray(request.get_json()["rows"], dtype=np.float64)
        return jsonify(labels=model.predict_proba(rows).argmax(axis=1).tolist())

    @app.get("/health")
    def health() -> Any:
        return jsonify(ok=True)

    init_app(app)
    return app


@pytest.fixture(name="serve")
def fixture_serve(
    iris_model: Any, tracer_provider: Any, meter_provider: Any
) -> Iterator[Callable[..., Served]]:
    """Return a function that wraps the iris model and serves it."""
    servers = []

    def serve(store: Any, **config: Any) -> Served:
        model, x, y = iris_model
        wrapped = wrap_model(
            model,
            name="iris",
            version="3",
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            config=MonitorConfig(**config),
            feedback_store=store,
        )
        # One thread serves every request, as a gunicorn sync worker does,
        # so ids of one request could leak into the next.
        server = make_server("127.0.0.1", 0, _app(wrapped), threaded=False)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return Served(f"http://127.0.0.1:{server.server_port}", x, y)

    yield serve
    for server, thread in servers:
        server.shutdown()
        thread.join()


def _labels_stored(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM labels").fetchone()[0])


def test_header_lists_row_ids(serve: Any, store_path: Path, span_exporter: Any) -> None:
    """A batch's response lists one id per row, {ml.prediction.id}-{i}."""
    served = serve(store_path)
    status, headers, _ = served.predict(served.x[:3])
    assert status == 200
    (span,) = [s for s in span_exporter.get_finished_spans() if s.name.startswith("predict")]
    call_id = span.attributes[semconv.ML_PREDICTION_ID]
    assert headers[PREDICTION_ID_HEADER] == f"{call_id}-0,{call_id}-1,{call_id}-2"
    assert headers["X-Prediction-Rows"] == "3"


def test_header_absent_without_prediction(serve: Any, store_path: Path) -> None:
    """A request that made no prediction gets no ids of an earlier request."""
    served = serve(store_path)
    served.predict(served.x[:1])
    with urllib.request.urlopen(served.base + "/health", timeout=30) as response:
        assert PREDICTION_ID_HEADER not in response.headers


def test_rejected_request_gets_no_ids(serve: Any, store_path: Path) -> None:
    """A request stopped by an earlier before_request gets no stale ids."""
    served = serve(store_path)
    served.predict(served.x[:1])
    sent = urllib.request.Request(served.base + "/health", headers={"X-Reject": "1"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(sent, timeout=30)
    assert caught.value.code == 403
    assert PREDICTION_ID_HEADER not in caught.value.headers


def test_label_matches_and_records_metrics(
    serve: Any, store_path: Path, metric_points: Any
) -> None:
    """A label for a served row is matched and feeds the quality gauges."""
    served = serve(store_path)
    _, headers, answer = served.predict(served.x[:2])
    ids = headers[PREDICTION_ID_HEADER].split(",")
    status, _, body = served.post(
        "/feedback",
        {"labels": [
            {"prediction_id": ids[0], "actual": answer["labels"][0]},
            {"prediction_id": ids[1], "actual": (answer["labels"][1] + 1) % 3},
        ]},
    )
    assert status == 200
    assert body["counts"] == {"matched": 2, "unknown": 0, "expired": 0, "invalid": 0}
    (accuracy,) = metric_points(semconv.ML_MODEL_ACCURACY)
    assert accuracy.value == pytest.approx(0.5)
    assert accuracy.attributes[semconv.ML_MODEL_NAME] == "iris"
    precision = metric_points(semconv.ML_MODEL_PRECISION)
    assert {p.attributes[semconv.ML_CLASS_NAME] for p in precision}
    (delay,) = metric_points(semconv.ML_FEEDBACK_LABEL_DELAY)
    assert delay.count == 2
    (labels,) = metric_points(semconv.ML_FEEDBACK_LABELS)
    assert labels.value == 2
    assert labels.attributes[semconv.ML_FEEDBACK_OUTCOME] == "matched"


def test_unknown_id_is_counted(serve: Any, store_path: Path, metric_points: Any) -> None:
    """A label for an id never stored is 200, outcome unknown, and counted."""
    served = serve(store_path)
    status, _, body = served.post(
        "/feedback", {"prediction_id": "0123456789abcdef0123456789abcdef-0", "actual": 1}
    )
    assert status == 200
    assert body["results"][0]["outcome"] == "unknown"
    (labels,) = metric_points(semconv.ML_FEEDBACK_LABELS)
    assert labels.attributes[semconv.ML_FEEDBACK_OUTCOME] == "unknown"
    assert _labels_stored(store_path) == 0


def test_expired_id_is_counted(serve: Any, store_path: Path, clock: FakeClock) -> None:
    """A label after the retention window is 200 with outcome expired."""
    store = PredictionStore(store_path, max_age_s=60.0, clock=clock)
    served = serve(store)
    clock.now = time.time()
    _, headers, _ = served.predict(served.x[:1])
    active_recorders()[0].flush()
    clock.advance(120.0)
    status, _, body = served.post(
        "/feedback", {"prediction_id": headers[PREDICTION_ID_HEADER], "actual": 0}
    )
    assert status == 200
    assert body["results"][0]["outcome"] == "expired"


def test_wrong_label_type_is_400(serve: Any, store_path: Path) -> None:
    """A string label for integer classes is 400 naming both types."""
    served = serve(store_path)
    _, headers, _ = served.predict(served.x[:1])
    status, _, body = served.post(
        "/feedback", {"prediction_id": headers[PREDICTION_ID_HEADER], "actual": "setosa"}
    )
    assert status == 400
    assert "must be of type int" in body["error"]
    assert "got str" in body["error"]
    assert _labels_stored(store_path) == 0


def test_wrong_type_in_batch_is_reported(serve: Any, store_path: Path) -> None:
    """In a batch, a wrong-type label is marked invalid and the rest stored."""
    served = serve(store_path)
    _, headers, _ = served.predict(served.x[:2])
    first, second = headers[PREDICTION_ID_HEADER].split(",")
    status, _, body = served.post(
        "/feedback",
        {"labels": [
            {"prediction_id": first, "actual": [1, 2]},
            {"prediction_id": second, "actual": 0},
        ]},
    )
    assert status == 200
    assert body["results"][0]["outcome"] == "invalid"
    assert "classifier" in body["results"][0]["error"]
    assert body["results"][1]["outcome"] == "matched"
    assert _labels_stored(store_path) == 1


def test_malformed_json_is_400(serve: Any, store_path: Path) -> None:
    """A body that is not JSON is 400 with the parse error; nothing stored."""
    served = serve(store_path)
    _, headers, _ = served.predict(served.x[:1])
    text = '{"prediction_id": "%s", "actual": ' % headers[PREDICTION_ID_HEADER]
    status, _, body = served.post("/feedback", text.encode())
    assert status == 400
    assert body["error"].startswith("Request body is not valid JSON")
    assert _labels_stored(store_path) == 0


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded"]
)
def test_non_json_type_is_415(
    serve: Any, store_path: Path, content_type: str
) -> None:
    """A label posted as text or a form is 415 and stores nothing."""
    served = serve(store_path)
    _, headers, _ = served.predict(served.x[:1])
    row_id = headers[PREDICTION_ID_HEADER]
    label = {"prediction_id": row_id, "actual": int(served.y[0])}
    status, _, body = served.post("/feedback", label, content_type)
    assert status == 415
    assert "application/json" in body["error"]
    assert _labels_stored(store_path) == 0


def test_json_suffix_type_accepted(serve: Any, store_path: Path) -> None:
    """An application/*+json type counts as JSON."""
    served = serve(store_path)
    _, headers, _ = served.predict(served.x[:1])
    row_id = headers[PREDICTION_ID_HEADER]
    label = {"prediction_id": row_id, "actual": int(served.y[0])}
    status, _, _ = served.post("/feedback", label, "application/vnd.labels+json")
    assert status == 200
    assert _labels_stored(store_path) == 1


def test_deeply_nested_json_is_400(serve: Any, store_path: Path) -> None:
    """JSON nested past the parser's recursion limit is 400, not 500."""
    served = serve(store_path)
    depth = 200_000
    status, _, body = served.post("/feedback", b"[" * depth + b"]" * depth)
    assert status == 400
    assert "nested too deeply" in body["error"]
    assert served.predict(served.x[:1])[0] == 200


def test_chunked_oversized_body_is_413(serve: Any, store_path: Path) -> None:
    """A chunked body is rejected once over the limit, not read to its end."""
    served = serve(store_path)
    port = int(served.base.rsplit(":", 1)[1])
    chunk = b" " * 65536
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(
            b"POST /feedback HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        # The last chunk is never sent: a server that reads the whole body
        # waits for it, and the recv below times out.
        for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
            conn.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        status_line = conn.recv(4096).split(b"\r\n", 1)[0]
    assert b" 413 " in status_line
    assert _labels_stored(store_path) == 0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "Expected a JSON object"),
        ({"prediction_id": 7, "actual": 1}, "body.prediction_id must be a non-empty string"),
        ({"prediction_id": "a-0"}, "body.actual is missing or null"),
        ({"labels": []}, '"labels" must be a non-empty list'),
        ({"labels": [{"prediction_id": "a-0", "actual": 1}, "x"]}, "labels[1] must be a JSON object"),
        ({"labels": [{"prediction_id": "a-0", "actual": 1}] * (MAX_LABELS + 1)}, "at most"),
    ],
)
def test_invalid_request_is_400(
    serve: Any, store_path: Path, payload: Any, message: str
) -> None:
    """A body of the wrong shape is 400 naming the item; nothing stored."""
    served = serve(store_path)
    status, _, body = served.post("/feedback", payload)
    assert status == 400
    assert message in body["error"]
    assert _labels_stored(store_path) == 0


def _serves_without_feedback(served: Served) -> None:
    status, headers, answer = served.predict(served.x[:2])
    assert status == 200
    assert len(answer["labels"]) == 2
    assert len(headers[PREDICTION_ID_HEADER].split(",")) == 2
    status, _, body = served.post(
        "/feedback",
        {"prediction_id": headers[PREDICTION_ID_HEADER].split(",")[0], "actual": 0},
    )
    assert status == 503
    assert "No feedback store is configured" in body["error"]


def test_corrupt_database_keeps_serving(
    serve: Any, store_path: Path, caplog: Any
) -> None:
    """A corrupt file logs a clear error at wrap time; predictions go on."""
    store_path.write_bytes(b"this is not a SQLite database" * 200)
    with caplog.at_level(logging.ERROR):
        served = serve(store_path)
    assert "Feedback is off for model iris" in caplog.text
    assert "corrupt or not a SQLite database" in caplog.text
    _serves_without_feedback(served)


def test_read_only_database_keeps_serving(
    serve: Any, store_path: Path, caplog: Any
) -> None:
    """A read-only file logs a clear error at wrap time; predictions go on."""
    from test_store_open_errors import _run_without_dac_override

    PredictionStore(store_path).close()
    store_path.chmod(0o444)
    with caplog.at_level(logging.ERROR):
        served = _run_without_dac_override(lambda: serve(store_path))
    assert "Feedback is off for model iris" in caplog.text
    assert "is read-only" in caplog.text
    _serves_without_feedback(served)


def test_review_queue_entry_matches_log(
    serve: Any, store_path: Path, span_exporter: Any, log_exporter: Any
) -> None:
    """Low-confidence rows are queued with the id, trace id and redacted input."""
    served = serve(
        store_path,
        low_confidence_threshold=0.99,
        capture_inputs=True,
        redact_features=("x0",),
    )
    # Rows near the versicolor/virginica border get split votes.
    confidence = []
    for row in served.x[50:150]:
        served.predict(row[None, :])
    active_recorders()[0].flush()
    with PredictionStore(store_path) as store:
        items = store.review_list(limit=1000)
    records = [
        r.log_record for r in log_exporter.get_finished_logs()
        if r.log_record.event_name == semconv.ML_PREDICTION_LOW_CONFIDENCE
    ]
    assert items
    assert len(items) == len(records)
    logged = {
        r.attributes[semconv.ML_PREDICTION_ID]: format(r.trace_id, "032x") for r in records
    }
    spans = {
        s.attributes[semconv.ML_PREDICTION_ID]: format(s.context.trace_id, "032x")
        for s in span_exporter.get_finished_spans()
        if semconv.ML_PREDICTION_ID in s.attributes
    }
    for item in items:
        assert item.reason.value == "low_confidence"
        assert (item.model_name, item.model_version) == ("iris", "3")
        assert item.confidence < 0.99
        confidence.append(item.confidence)
        assert logged[item.prediction_id] == item.trace_id
        assert spans[item.prediction_id.rsplit("-", 1)[0]] == item.trace_id
        assert sorted(item.input_row) == ["x1", "x2", "x3"]
    assert min(confidence) < 0.99


def test_review_queue_without_capture(serve: Any, store_path: Path) -> None:
    """With capture off, queued predictions have no input row."""
    served = serve(store_path, low_confidence_threshold=1.0, max_flagged_rows=5)
    served.predict(served.x[50:150])
    active_recorders()[0].flush()
    with PredictionStore(store_path) as store:
        items = store.review_list()
    assert len(items) == 5
    assert all(item.input_row is None for item in items)
    assert [item.prediction_id.rsplit("-", 1)[1] for item in items] == sorted(
        (item.prediction_id.rsplit("-", 1)[1] for item in items), key=int
    )
