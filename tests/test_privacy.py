"""Input values never reach exported telemetry: planted markers, every byte searched.

Marker values go into string and categorical features, and into numeric
features of batches smaller than ``min_summary_rows``. Real scikit-learn
models run on them, wrapped and behind a Flask app with the review queue
on, and export through OTLP/HTTP, OTLP/gRPC and the OTLP JSON lines
exporters at once. Then every exported byte is searched for every form of
every marker: raw HTTP request bodies, decoded protobuf text, re-encoded
gRPC requests, JSON lines files, SQLite files, review exports and the text
of the ``otel_mlmon`` Python logger. Positive controls prove that the same
search finds a marker wherever it is allowed to appear.

Marker literals are used only through the constants below, never written
on a line that calls a model: a recorded stack trace quotes the source line
of each frame, and a literal there would be found by the search.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import sqlite3
import struct
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask, Response, jsonify, request
from google.protobuf import text_format
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from otel_mlmon_test_support import GrpcReceiver, HttpReceiver
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from werkzeug.serving import make_server

from otel_mlmon import Baseline, MLSpanProcessor, MonitorConfig, semconv, wrap_model
from otel_mlmon.cli import main as cli_main
from otel_mlmon.demo import build_app
from otel_mlmon.exporters import (
    OTLPJsonFileLogExporter,
    OTLPJsonFileMetricExporter,
    OTLPJsonFileSpanExporter,
)
from otel_mlmon.feedback._monitor import close_recorders
from otel_mlmon.flask import PREDICTION_ID_HEADER, init_app

# Markers: values that no id, timestamp or feature name can contain by chance.
CATEGORY_MARKER = "MARKER-CAT-7f3a"
UNICODE_MARKER = "UNIMARK-Ünïcödé-猫-ß"
TEXT_IN_NUMBER_MARKER = "MARKER-NUMTEXT-c41d"
DATE_MARKER = "MARKERDATE-e9b2"
NUMBER_MARKER = 7777.123456
# Captured on purpose in the capture tests: these must be found there.
KEPT_CATEGORY_MARKER = "KEPTMARK-CAT-2d8c"
KEPT_NUMBER_MARKER = 6666.654321

NUMERIC = ["mean radius", "mean texture", "mean smoothness", "mean symmetry"]
# Numeric features that the pipelines drop, so that a marker there leaves
# the model's confidence as it was, and low-confidence rows still occur.
MARKED_NUMBER = "worst area"
KEPT_NUMBER = "worst perimeter"
COLUMNS = [*NUMERIC, MARKED_NUMBER, KEPT_NUMBER, "size_band", "texture_band"]
MIN_SUMMARY_ROWS = 5


@dataclasses.dataclass(frozen=True)
class Marker:
    """A planted value and the byte strings that would betray it."""

    name: str
    forms: tuple[bytes, ...]


def text_marker(value: str, fragment: str) -> Marker:
    """Return the forms of a string: UTF-8, UTF-16, JSON, Python and URL escapes.

    ``fragment`` is an ASCII part of the value, found even where the rest
    was cut or escaped in some other way.
    """
    texts = {
        value,
        fragment,
        json.dumps(value)[1:-1],
        value.encode("unicode_escape").decode("ascii"),
        urllib.parse.quote(value),
    }
    forms = {text.encode("utf-8") for text in texts}
    forms.add(value.encode("utf-16-le"))
    return Marker(value, tuple(sorted(forms)))


def number_marker(value: float) -> Marker:
    """Return the forms of a number: decimal text and IEEE-754 bytes.

    Float64 bytes are matched on their six high-order bytes, so a mean of
    equal values that differs from them in the last bits is found too.
    """
    little64 = struct.pack("<d", value)
    big64 = struct.pack(">d", value)
    whole, _, fraction = repr(value).partition(".")
    scientific = f"{value:e}"[:7]
    texts = {f"{whole}.{fraction[:2]}", scientific, repr(float(np.float32(value)))}
    forms = {text.encode("ascii") for text in texts}
    forms |= {
        little64[2:],
        big64[:6],
        struct.pack("<f", value),
        struct.pack(">f", value),
    }
    return Marker(repr(value), tuple(sorted(forms)))


WITHHELD = (
    text_marker(CATEGORY_MARKER, "MARKER-CAT"),
    text_marker(UNICODE_MARKER, "UNIMARK"),
    text_marker(TEXT_IN_NUMBER_MARKER, "MARKER-NUMTEXT"),
    text_marker(DATE_MARKER, "MARKERDATE"),
    number_marker(NUMBER_MARKER),
)
KEPT = (
    text_marker(KEPT_CATEGORY_MARKER, "KEPTMARK"),
    number_marker(KEPT_NUMBER_MARKER),
)


def find_markers(
    blobs: dict[str, bytes], markers: Sequence[Marker]
) -> list[str]:
    """Return ``"source: marker (form)"`` for every form found in a blob."""
    found = []
    for source, blob in sorted(blobs.items()):
        for marker in markers:
            for form in marker.forms:
                if form in blob:
                    found.append(f"{source}: {marker.name} ({form!r})")
    return found


# --- the search itself -----------------------------------------------------


def test_search_finds_every_planted_form() -> None:
    """Each form is found where planted, and clean telemetry has none."""
    value = NUMBER_MARKER
    mean_of_three = (value + value + value) / 3
    planted = {
        "float64 little-endian": b"\x00" + struct.pack("<d", value),
        "float64 big-endian": struct.pack(">d", value) + b"\x01",
        "float32 little-endian": struct.pack("<f", value),
        "float32 big-endian": struct.pack(">f", value),
        "mean in last bits": struct.pack("<d", mean_of_three),
        "json text": json.dumps({"v": value}).encode(),
        "numpy array repr": repr(np.array([value, 1.0])).encode(),
        "rounded text": f"{value:.6g}".encode(),
    }
    for source, blob in planted.items():
        assert find_markers({source: blob}, WITHHELD), source
    escaped = json.dumps({"v": UNICODE_MARKER}).encode("ascii")
    assert find_markers({"json ascii": escaped}, WITHHELD)
    assert find_markers({"utf-8": UNICODE_MARKER.encode()}, WITHHELD)
    partial = CATEGORY_MARKER[:10].encode()
    assert find_markers({"cut": partial}, WITHHELD)
    clean = struct.pack("<d", 7777.0) + b"7777 mean radius 0.97 abc"
    assert find_markers({"clean": clean}, WITHHELD) == []


# --- models and data -------------------------------------------------------


@dataclasses.dataclass
class Models:
    """Fitted models on the breast cancer data set, and their training frame."""

    frame: pd.DataFrame
    target: np.ndarray
    pipeline: Pipeline
    strict: Pipeline
    dated: Pipeline
    numeric: Any
    baseline: Baseline


def _bands(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["size_band"] = pd.cut(
        frame["mean area"], [0, 500, 900, math.inf], labels=["small", "medium", "large"]
    ).astype(str)
    frame["texture_band"] = pd.cut(
        frame["mean texture"], [0, 19, math.inf], labels=["smooth", "rough"]
    )
    return frame[COLUMNS]


def _encoder(handle_unknown: str) -> ColumnTransformer:
    return ColumnTransformer(
        [
            (
                "categories",
                OneHotEncoder(handle_unknown=handle_unknown),
                ["size_band", "texture_band"],
            ),
            ("numbers", StandardScaler(), NUMERIC),
        ]
    )


def _parse_dates(frame: pd.DataFrame) -> pd.DataFrame:
    # pandas' error for an unparseable date shows the value bare, unquoted.
    parsed = frame.copy()
    parsed["size_band"] = pd.to_datetime(parsed["size_band"]).dt.year
    return parsed[NUMERIC]


@pytest.fixture(name="models", scope="module")
def fixture_models() -> Models:
    data = load_breast_cancer(as_frame=True)
    frame = _bands(data.frame)
    target = data.target.to_numpy()
    pipeline = Pipeline(
        [("encode", _encoder("ignore")), ("classify", LogisticRegression(max_iter=2000))]
    )
    pipeline.fit(frame, target)
    strict = Pipeline(
        [("encode", _encoder("error")), ("classify", LogisticRegression(max_iter=2000))]
    )
    strict.fit(frame, target)
    dated_frame = frame.copy()
    dated_frame["size_band"] = "2024-05-01"
    dated = make_pipeline(
        FunctionTransformer(_parse_dates), LogisticRegression(max_iter=2000)
    )
    dated.fit(dated_frame, target)
    numeric = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    numeric.fit(frame[NUMERIC].to_numpy(), target)
    baseline = Baseline.fit(frame, bins=5)
    return Models(frame, target, pipeline, strict, dated, numeric, baseline)


def marked_rows(models: Models, count: int, start: int = 0) -> pd.DataFrame:
    """Return ``count`` real rows with markers in the string, categorical and number columns."""
    frame = models.frame.iloc[start : start + count].copy()
    frame["size_band"] = CATEGORY_MARKER
    frame[MARKED_NUMBER] = NUMBER_MARKER
    texture = frame["texture_band"].astype(str).to_numpy()
    texture[0] = UNICODE_MARKER
    frame["texture_band"] = pd.Categorical(texture)
    return frame


def kept_rows(models: Models, count: int, start: int = 0) -> pd.DataFrame:
    """Return marked rows, plus markers in two features that capture keeps."""
    frame = marked_rows(models, count, start)
    frame[KEPT_NUMBER] = KEPT_NUMBER_MARKER
    texture = frame["texture_band"].astype(str).to_numpy()
    texture[-1] = KEPT_CATEGORY_MARKER
    frame["texture_band"] = pd.Categorical(texture)
    return frame


# --- capture of every exported byte -----------------------------------------


class ExportCapture:
    """Providers that export to OTLP/HTTP, OTLP/gRPC and JSON lines at once.

    Also captures the ``otel_mlmon`` Python logger, as text and through an
    OpenTelemetry logging handler.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.http = HttpReceiver()
        self.grpc = GrpcReceiver()

        http = self.http.endpoint
        grpc = self.grpc.endpoint
        self.logger_provider = LoggerProvider()
        for log_exporter in (
            HttpLogExporter(endpoint=f"{http}/v1/logs"),
            GrpcLogExporter(endpoint=grpc, insecure=True),
            OTLPJsonFileLogExporter(folder / "logs.jsonl"),
        ):
            self.logger_provider.add_log_record_processor(
                SimpleLogRecordProcessor(log_exporter)
            )

        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(
            MLSpanProcessor(logger_provider=self.logger_provider)
        )
        for span_exporter in (
            HttpSpanExporter(endpoint=f"{http}/v1/traces"),
            GrpcSpanExporter(endpoint=grpc, insecure=True),
            OTLPJsonFileSpanExporter(folder / "traces.jsonl"),
        ):
            self.tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))

        # With an infinite interval a reader exports only on force_flush.
        readers = [
            PeriodicExportingMetricReader(metric_exporter, export_interval_millis=math.inf)
            for metric_exporter in (
                HttpMetricExporter(endpoint=f"{http}/v1/metrics"),
                GrpcMetricExporter(endpoint=grpc, insecure=True),
                OTLPJsonFileMetricExporter(folder / "metrics.jsonl"),
            )
        ]
        self.meter_provider = MeterProvider(metric_readers=readers)

        self.log_text = io.StringIO()
        self._text_handler = logging.StreamHandler(self.log_text)
        self._text_handler.setFormatter(
            logging.Formatter("%(levelname)s %(name)s %(message)s")
        )
        # The SDK's handler is deprecated in favour of the one in
        # opentelemetry-instrumentation-logging, which the tests do not
        # install. It still sends records to the logger provider.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._otel_handler = LoggingHandler(
                level=logging.DEBUG, logger_provider=self.logger_provider
            )
        self._logger = logging.getLogger("otel_mlmon")
        self._level = self._logger.level
        self._logger.setLevel(logging.DEBUG)
        self._logger.addHandler(self._text_handler)
        self._logger.addHandler(self._otel_handler)

    def close(self) -> dict[str, bytes]:
        """Flush every signal, stop the receivers and return every exported byte."""
        close_recorders()
        self._logger.removeHandler(self._otel_handler)
        self._logger.removeHandler(self._text_handler)
        self._logger.setLevel(self._level)
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.force_flush()
        self.meter_provider.shutdown()
        self.http.close()
        self.grpc.close()
        blobs: dict[str, bytes] = {}
        for index, (url_path, body) in enumerate(self.http.received.bodies):
            blobs[f"OTLP/HTTP body {index} {url_path}"] = body
        for transport, receiver in (("HTTP", self.http), ("gRPC", self.grpc)):
            for signal, messages in receiver.received.requests.items():
                for index, message in enumerate(messages):
                    source = f"OTLP/{transport} {signal} {index}"
                    blobs[f"{source} bytes"] = message.SerializeToString()
                    blobs[f"{source} text"] = text_format.MessageToString(
                        message, as_utf8=True
                    ).encode("utf-8")
        for path in sorted(self.folder.iterdir()):
            if path.is_file():
                blobs[f"file {path.name}"] = path.read_bytes()
        blobs["otel_mlmon Python log"] = self.log_text.getvalue().encode("utf-8")
        return blobs


@pytest.fixture(name="capture")
def fixture_capture(tmp_path: Path) -> Iterator[ExportCapture]:
    capture = ExportCapture(tmp_path)
    yield capture
    close_recorders()


def _spans(receiver: Any) -> list[Any]:
    spans: list[Any] = receiver.received.spans()
    return spans


def _event_names(receiver: Any) -> set[str]:
    return {event.name for span in _spans(receiver) for event in span.events}


def _log_events(receiver: Any) -> list[str]:
    return [str(record.event_name) for record in receiver.received.log_records()]


def _error_messages(receiver: Any) -> list[str]:
    return [
        str(span.status.message)
        for span in _spans(receiver)
        if span.status.code == 2 and span.name.startswith("predict")
    ]


# --- wrap_model ------------------------------------------------------------


def _wrap(capture: ExportCapture, model: Any, name: str, **settings: Any) -> Any:
    config = MonitorConfig(min_summary_rows=MIN_SUMMARY_ROWS, **settings)
    return wrap_model(
        model,
        name=name,
        version="1",
        tracer_provider=capture.tracer_provider,
        meter_provider=capture.meter_provider,
        config=config,
    )


def _raises(call: Callable[[], Any]) -> str:
    with pytest.raises((ValueError, TypeError)) as caught:
        call()
    return str(caught.value)


def test_wrapped_models_export_no_marker(
    models: Models, capture: ExportCapture
) -> None:
    """Spans, events, errors, metrics and logs of marked calls carry no marker."""
    pipeline = wrap_model(
        models.pipeline,
        name="cancer_pipeline",
        version="1",
        baseline=models.baseline,
        tracer_provider=capture.tracer_provider,
        meter_provider=capture.meter_provider,
        config=MonitorConfig(
            min_summary_rows=MIN_SUMMARY_ROWS,
            low_confidence_threshold=1.0,
            drift_window_rows=40,
            drift_min_rows=20,
        ),
    )
    # One-row and four-row calls stay below the minimum of five rows, and
    # ten four-row calls close a 40-row drift window full of markers.
    for start in range(10):
        pipeline.predict_proba(marked_rows(models, 1, start))
        pipeline.predict(marked_rows(models, 4, start * 4))

    strict = _wrap(capture, models.strict, "strict_pipeline")
    unknown_message = _raises(lambda: strict.predict(marked_rows(models, 1)))
    text_in_number = models.frame.iloc[:1].copy()
    text_in_number[NUMERIC[0]] = TEXT_IN_NUMBER_MARKER
    text_message = _raises(lambda: strict.predict(text_in_number))
    dated = _wrap(capture, models.dated, "dated_pipeline")
    date_message = _raises(lambda: dated.predict(marked_date_row(models)))

    numeric = _wrap(capture, models.numeric, "numeric_model")
    row = models.frame[NUMERIC].to_numpy()[:1].copy()
    # The scaled marker makes the model sure; confidence is not under test here.
    row[0, 0] = NUMBER_MARKER
    numeric.predict_proba(row)
    flat_message = _raises(lambda: numeric.predict(row[0]))

    blobs = capture.close()

    # The errors quote the markers, so the search below could find them.
    assert CATEGORY_MARKER in unknown_message
    assert TEXT_IN_NUMBER_MARKER in text_message
    assert DATE_MARKER in date_message
    assert "7.77712" in flat_message
    # Every path under test exported something over both transports.
    for receiver in (capture.http, capture.grpc):
        assert len(_error_messages(receiver)) == 4
        assert semconv.ML_DRIFT_DETECTED in _event_names(receiver)
        assert semconv.ML_PREDICTION_LOW_CONFIDENCE in _event_names(receiver)
        assert semconv.ML_INPUT_OUT_OF_RANGE in _event_names(receiver)
        assert "exception" in _event_names(receiver)
        assert semconv.ML_DRIFT_DETECTED in _log_events(receiver)
        assert semconv.ML_PREDICTION_LOW_CONFIDENCE in _log_events(receiver)
        assert semconv.ML_FEATURE_BIN_ROWS in receiver.received.metric_names()
    assert find_markers(blobs, WITHHELD) == []


def marked_date_row(models: Models) -> pd.DataFrame:
    """Return one row whose date column contains a marker that is no date."""
    frame = models.frame.iloc[:1].copy()
    frame["size_band"] = DATE_MARKER
    return frame


def test_summaries_at_min_rows_carry_marker(
    models: Models, capture: ExportCapture
) -> None:
    """At min_summary_rows the mean is exported, and the search finds it.

    The positive control of the test above: the same search on the same
    kinds of bytes does find a value that is allowed out.
    """
    pipeline = _wrap(capture, models.pipeline, "cancer_pipeline")
    pipeline.predict(marked_rows(models, MIN_SUMMARY_ROWS))
    blobs = capture.close()
    number = [number_marker(NUMBER_MARKER)]
    assert find_markers(_only(blobs, "OTLP/HTTP body"), number)
    assert find_markers(_only(blobs, "OTLP/gRPC traces"), number)
    assert find_markers(_only(blobs, "file traces.jsonl"), number)
    categories = [text_marker(CATEGORY_MARKER, "MARKER-CAT")]
    assert find_markers(blobs, categories) == []


def _only(blobs: dict[str, bytes], prefix: str) -> dict[str, bytes]:
    return {source: blob for source, blob in blobs.items() if source.startswith(prefix)}


# --- a Flask app with the review queue ---------------------------------------


class Server:
    """A Flask app served on 127.0.0.1 by werkzeug in a thread."""

    def __init__(self, app: Flask) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=False)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.base = f"http://127.0.0.1:{self._server.server_port}"

    def post(self, path: str, body: Any) -> tuple[int, dict[str, str], Any]:
        """POST JSON and return the status, headers and body (JSON, else text)."""
        sent = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(sent, timeout=30) as response:
                return response.status, dict(response.headers), _decode(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), _decode(error.read())

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def _frame_app(model: Any, capture: ExportCapture) -> Flask:
    app = Flask("privacy_test")
    init_app(app)

    @app.post("/predict")
    def predict() -> tuple[Response, int]:
        frame = pd.DataFrame(request.get_json()["rows"])[COLUMNS]
        frame["texture_band"] = frame["texture_band"].astype("category")
        try:
            probabilities = model.predict_proba(frame)
        except ValueError:
            # An app must not re-raise: the server span of Flask's
            # instrumentation would record the message, values and all.
            return jsonify(error="invalid input"), 422
        return jsonify(labels=probabilities.argmax(axis=1).tolist()), 200

    FlaskInstrumentor().instrument_app(  # type: ignore[no-untyped-call]
        app,
        tracer_provider=capture.tracer_provider,
        meter_provider=capture.meter_provider,
    )
    return app


@pytest.fixture(name="serve")
def fixture_serve() -> Iterator[Callable[[Flask], Server]]:
    servers: list[tuple[Server, Flask]] = []

    def serve(app: Flask) -> Server:
        server = Server(app)
        servers.append((server, app))
        return server

    yield serve
    for server, app in servers:
        server.close()
        FlaskInstrumentor().uninstrument_app(app)  # type: ignore[no-untyped-call]


def _rows_json(frame: pd.DataFrame) -> list[dict[str, Any]]:
    plain = frame.astype({"texture_band": str})
    rows: list[dict[str, Any]] = plain.to_dict("records")
    return rows


def _serve_traffic(
    models: Models,
    capture: ExportCapture,
    serve: Callable[[Flask], Server],
    rows: Callable[..., pd.DataFrame] = marked_rows,
    **settings: Any,
) -> None:
    """Serve the pipeline and send marked rows, a failing row and labels.

    Twelve four-row requests of markers close a 40-row drift window after
    the tenth, so the last two queue drift rows for review.
    """
    model = wrap_model(
        models.pipeline,
        name="cancer_pipeline",
        version="1",
        baseline=models.baseline,
        tracer_provider=capture.tracer_provider,
        meter_provider=capture.meter_provider,
        config=MonitorConfig(
            min_summary_rows=MIN_SUMMARY_ROWS,
            low_confidence_threshold=1.0,
            drift_window_rows=40,
            drift_min_rows=20,
            review_drift=True,
            **settings,
        ),
        feedback_store=capture.folder / "feedback.sqlite3",
    )
    strict = wrap_model(
        models.strict,
        name="strict_pipeline",
        version="1",
        tracer_provider=capture.tracer_provider,
        meter_provider=capture.meter_provider,
        config=MonitorConfig(min_summary_rows=MIN_SUMMARY_ROWS),
        feedback_store=capture.folder / "feedback.sqlite3",
    )
    server = serve(_frame_app(model, capture))
    strict_server = serve(_frame_app(strict, capture))
    ids = []
    for start in range(12):
        status, headers, _ = server.post(
            "/predict", {"rows": _rows_json(rows(models, 4, start * 4))}
        )
        assert status == 200
        ids += headers[PREDICTION_ID_HEADER].split(",")
    status, _, _ = server.post("/predict", {"rows": _rows_json(rows(models, 1))})
    assert status == 200
    status, _, body = strict_server.post(
        "/predict", {"rows": _rows_json(rows(models, 1))}
    )
    assert status == 422
    labels = [{"prediction_id": row_id, "actual": 1} for row_id in ids[:10]]
    status, _, body = server.post("/feedback", {"labels": labels})
    assert body["counts"]["matched"] == 10


def _export_reviews(capture: ExportCapture) -> dict[str, bytes]:
    """Export the review queue with the CLI, as JSON lines and CSV."""
    close_recorders()
    database = capture.folder / "feedback.sqlite3"
    exports = {}
    folder = capture.folder / "exports"
    folder.mkdir()
    for format_name in ("jsonl", "csv"):
        out = folder / f"review.{format_name}"
        status = cli_main(
            ["review", "export", "--db", str(database), "--format", format_name, "--out", str(out)]
        )
        assert status == 0
        exports[f"review export {format_name}"] = out.read_bytes()
    return exports


def _review_count(capture: ExportCapture) -> int:
    with sqlite3.connect(capture.folder / "feedback.sqlite3") as connection:
        return int(connection.execute("SELECT count(*) FROM review_queue").fetchone()[0])


def test_flask_review_queue_exports_no_marker(
    models: Models, capture: ExportCapture, serve: Callable[[Flask], Server]
) -> None:
    """Served calls, review records, SQLite and review exports carry no marker."""
    _serve_traffic(models, capture, serve)
    exports = _export_reviews(capture)
    reviews = _review_count(capture)
    blobs = capture.close()
    blobs.update(exports)

    assert reviews > 0
    for receiver in (capture.http, capture.grpc):
        assert semconv.ML_PREDICTION_REVIEW in _log_events(receiver)
        assert semconv.ML_PREDICTION_LOW_CONFIDENCE in _log_events(receiver)
        assert len(_error_messages(receiver)) == 1
        assert "ml.model.accuracy" in receiver.received.metric_names()
    assert find_markers(blobs, WITHHELD) == []


def test_capture_keeps_redacted_features_out(
    models: Models, capture: ExportCapture, serve: Callable[[Flask], Server]
) -> None:
    """With capture on, redacted features stay out and kept ones are found.

    The kept markers are the positive control: captured values do reach
    the store, the exported logs and the review export, where the search
    finds them.
    """
    _serve_traffic(
        models,
        capture,
        serve,
        rows=kept_rows,
        capture_inputs=True,
        redact_features=("size_band", MARKED_NUMBER),
    )
    exports = _export_reviews(capture)
    database = {
        f"SQLite {path.name}": path.read_bytes()
        for path in capture.folder.glob("feedback.sqlite3*")
    }
    blobs = capture.close()
    blobs.update(exports)

    redacted = [text_marker(CATEGORY_MARKER, "MARKER-CAT"), number_marker(NUMBER_MARKER)]
    assert find_markers({**blobs, **database}, redacted) == []
    assert find_markers(database, KEPT)
    assert find_markers(_only(blobs, "review export jsonl"), KEPT)
    assert find_markers(_only(blobs, "review export csv"), KEPT)
    assert find_markers(_only(blobs, "OTLP/HTTP logs"), KEPT)
    assert find_markers(_only(blobs, "OTLP/gRPC logs"), KEPT)
    assert find_markers(_only(blobs, "file logs.jsonl"), KEPT)


# --- the demo app ------------------------------------------------------------


def test_demo_app_rejects_text_without_leak(
    models: Models, capture: ExportCapture, serve: Callable[[Flask], Server]
) -> None:
    """A string where the demo expects a number is a 400, recorded nowhere."""
    names = NUMERIC
    model = _wrap(capture, models.numeric, "numeric_model")
    app = build_app(model, names)
    FlaskInstrumentor().instrument_app(  # type: ignore[no-untyped-call]
        app,
        tracer_provider=capture.tracer_provider,
        meter_provider=capture.meter_provider,
    )
    server = serve(app)
    features: list[Any] = [TEXT_IN_NUMBER_MARKER, 20.0, 0.1, 0.2]
    status, _, _ = server.post("/predict", {"features": features})
    features[0] = NUMBER_MARKER
    good_status, _, _ = server.post("/predict", {"features": features})
    blobs = capture.close()

    assert find_markers(blobs, WITHHELD) == []
    assert status == 400
    assert good_status == 200
    assert len(_spans(capture.http)) == 3
