"""Flask integration: prediction ids in responses, and a feedback endpoint.

``init_app(app)`` does both::

    app = Flask(__name__)
    otel_mlmon.flask.init_app(app)

Every response to a request that ran a traced prediction then carries the
row ids of the request's last prediction call in ``X-Prediction-Id``
(comma-separated, in row order), and ``POST /feedback`` joins labels to
them. The endpoint takes one label, ``{"prediction_id": "...", "actual":
...}``, or up to :data:`MAX_LABELS` at once, ``{"labels": [{...}, ...]}``.

Responses of ``POST /feedback``:

- 200 with ``{"results": [{"prediction_id", "outcome"}...], "counts":
  {...}}``. The outcome is ``matched``, ``unknown`` or ``expired``; unknown
  and expired ids are counted, not rejected. In the batch form, a label of
  the wrong type has the outcome ``invalid`` and an ``error``, and the
  other labels are stored.
- 400 when the body is not JSON, not one of the two forms, or has an item
  without a string id or without ``actual``; nothing is stored. In the
  single form, a label of the wrong type for its prediction is also 400.
- 413 when the body is over :data:`MAX_BODY_BYTES`.
- 415 when the Content-Type is not JSON (``application/json``).
- 503 when no feedback store is configured in the process, or SQLite
  fails; labels of a batch before the failure stay stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from otel_mlmon.feedback._monitor import record_feedback
from otel_mlmon.feedback.errors import FeedbackStoreError, InvalidLabelError
from otel_mlmon.instrumentation._core import (
    clear_last_prediction,
    last_prediction_ids,
)

_logger = logging.getLogger(__name__)

PREDICTION_ID_HEADER = "X-Prediction-Id"
"""Response header with the row ids of the request's last prediction call."""

PREDICTION_ROWS_HEADER = "X-Prediction-Rows"
"""Response header with the number of rows of that call."""

MAX_HEADER_IDS = 100
"""Row ids listed in the header at most; row ``i`` has the id ``{id}-{i}``."""

MAX_LABELS = 1000
"""Labels accepted in one ``POST /feedback`` request at most."""

MAX_BODY_BYTES = 1024 * 1024
"""Largest ``POST /feedback`` body accepted, in bytes."""

_OUTCOMES = ("matched", "unknown", "expired", "invalid")


class _BadRequest(Exception):
    """The request body is not a valid feedback request."""


def add_prediction_id_header(
    app: Flask, header: str = PREDICTION_ID_HEADER
) -> None:
    """Add the row ids of each request's last prediction to its response.

    Calls with more than :data:`MAX_HEADER_IDS` rows list only the first
    ones; ``X-Prediction-Rows`` always gives the call's row count, so a
    client can build the rest as ``{id}-{i}``.
    """
    app.before_request(_forget_previous_prediction)
    app.after_request(_header_adder(header))
    # An earlier before_request function that returns a response (an auth
    # check, say) skips ours, so the ids are also cleared when each request
    # ends.
    app.teardown_request(_forget_request_prediction)


def _forget_previous_prediction() -> None:
    # A worker thread serves many requests, so ids of an earlier request
    # must not leak into a response that made no prediction.
    clear_last_prediction()


def _forget_request_prediction(error: BaseException | None) -> None:
    clear_last_prediction()


def _header_adder(header: str) -> Callable[[Response], Response]:
    def add_header(response: Response) -> Response:
        ids = last_prediction_ids()
        if ids:
            response.headers[header] = ",".join(ids[:MAX_HEADER_IDS])
            response.headers[PREDICTION_ROWS_HEADER] = str(len(ids))
        return response

    return add_header


def feedback_blueprint(path: str = "/feedback") -> Blueprint:
    """Return a blueprint with the ``POST`` feedback endpoint at ``path``."""
    blueprint = Blueprint("otel_mlmon_feedback", __name__)
    blueprint.add_url_rule(path, "feedback", _post_feedback, methods=["POST"])
    return blueprint


def init_app(app: Flask, feedback_path: str = "/feedback") -> None:
    """Add the prediction id header and the feedback endpoint to ``app``."""
    add_prediction_id_header(app)
    app.register_blueprint(feedback_blueprint(feedback_path))


def _post_feedback() -> tuple[Response, int]:
    # request.is_json accepts application/json and application/*+json.
    # Requiring it keeps other sites from posting labels through a visitor's
    # browser, which sends a cross-site JSON type only after a CORS check.
    if not request.is_json:
        return _error(
            f"Content-Type {request.mimetype or '(none)'!r} is not JSON; "
            "send the labels with Content-Type: application/json",
            415,
        )
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _error(f"Request body is over {MAX_BODY_BYTES} bytes", 413)
    # A chunked body has no Content-Length, so read at most one byte past
    # the limit instead of the whole body.
    body = _read_body(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _error(f"Request body is over {MAX_BODY_BYTES} bytes", 413)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        return _error(f"Request body is not valid JSON: {error}", 400)
    except RecursionError:
        return _error("Request body is JSON nested too deeply", 400)
    try:
        labels, single = _read_labels(payload)
    except _BadRequest as error:
        return _error(str(error), 400)
    results = []
    for prediction_id, actual in labels:
        try:
            outcome = record_feedback(prediction_id, actual)
        except InvalidLabelError as error:
            if single:
                return _error(str(error), 400)
            results.append(
                {"prediction_id": prediction_id, "outcome": "invalid", "error": str(error)}
            )
            continue
        except FeedbackStoreError as error:
            _logger.error("Failed to record feedback: %s", error)
            return _error(str(error), 503)
        results.append({"prediction_id": prediction_id, "outcome": outcome.status.value})
    counts = {name: 0 for name in _OUTCOMES}
    for result in results:
        counts[result["outcome"]] += 1
    return jsonify(results=results, counts=counts), 200


def _read_body(limit: int) -> bytes:
    """Read the request body, stopping once ``limit`` bytes are read."""
    chunks = []
    size = 0
    while size < limit:
        chunk = request.stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _read_labels(payload: Any) -> tuple[list[tuple[str, Any]], bool]:
    """Return (prediction id, label) pairs, and whether the single form was used.

    Raises:
        _BadRequest: The payload is neither form, or an item is invalid.
    """
    if isinstance(payload, dict) and "labels" in payload:
        items = payload["labels"]
        if not isinstance(items, list) or not items:
            raise _BadRequest('"labels" must be a non-empty list of objects')
        if len(items) > MAX_LABELS:
            raise _BadRequest(
                f'"labels" has {len(items)} items; send at most {MAX_LABELS} '
                f"per request"
            )
        return [_read_label(item, f"labels[{i}]") for i, item in enumerate(items)], False
    if isinstance(payload, dict) and "prediction_id" in payload:
        return [_read_label(payload, "body")], True
    raise _BadRequest(
        'Expected a JSON object {"prediction_id": "...", "actual": ...} or '
        '{"labels": [{"prediction_id": "...", "actual": ...}, ...]}'
    )


def _read_label(item: Any, where: str) -> tuple[str, Any]:
    if not isinstance(item, dict):
        raise _BadRequest(f"{where} must be a JSON object, got {_json_type(item)}")
    prediction_id = item.get("prediction_id")
    if not isinstance(prediction_id, str) or not prediction_id:
        raise _BadRequest(
            f"{where}.prediction_id must be a non-empty string, got "
            f"{_json_type(prediction_id)}"
        )
    if item.get("actual") is None:
        raise _BadRequest(f"{where}.actual is missing or null")
    return prediction_id, item["actual"]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify(error=message), status
