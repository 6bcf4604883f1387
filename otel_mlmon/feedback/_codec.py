"""JSON encoding of predictions and labels, and the rules for label types.

A model's kind decides which labels are valid. A record may state the
kind. Otherwise it is inferred from the JSON type of the stored prediction:
a string, boolean or integer is a class, and a float is a regression value.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal, NoReturn

import numpy as np

from otel_mlmon.feedback.errors import InvalidLabelError

ModelKind = Literal["classification", "regression"]
MODEL_KINDS: tuple[ModelKind, ...] = ("classification", "regression")

_HEX_32 = re.compile(r"[0-9a-f]{32}")
_HEX_16 = re.compile(r"[0-9a-f]{16}")


def to_json_value(value: object) -> Any:
    """Convert a value to plain JSON types.

    numpy scalars and arrays become Python numbers and lists, tuples become
    lists, and mapping keys become strings. NaN and infinities become None,
    because JSON has no token for them.

    Raises:
        TypeError: The value, or an item inside it, has no JSON form.
    """
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return to_json_value(value.item())
    if isinstance(value, np.ndarray):
        return to_json_value(value.tolist())
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(item) for item in value]
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def dump_json(value: Any) -> str:
    """Serialize a value already converted by :func:`to_json_value`."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def load_json(text: str | None) -> Any:
    """Parse a JSON column; SQL NULL becomes None."""
    if text is None:
        return None
    return json.loads(text)


def infer_model_kind(predicted: Any) -> ModelKind | None:
    """Return the model kind implied by a JSON prediction, or None.

    None means the kind is unknown (a list, an object or null), and then
    any JSON label is accepted.
    """
    if isinstance(predicted, (bool, str, int)):
        return "classification"
    if isinstance(predicted, float):
        return "regression"
    return None


def normalize_hex_id(value: str | None, digits: int, name: str) -> str | None:
    """Validate a trace or span id given as lowercase hex.

    An all-zero id, which OpenTelemetry uses for "no span", becomes None.

    Raises:
        ValueError: The id is not ``digits`` lowercase hex digits.
    """
    if value is None:
        return None
    pattern = _HEX_32 if digits == 32 else _HEX_16
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(
            f"{name} must be {digits} lowercase hex digits, such as "
            f"format(span_context.{name}, '0{digits}x'); got "
            f"{type(value).__name__} of length {len(str(value))}"
        )
    if value == "0" * digits:
        return None
    return value


def hash_prediction_id(prediction_id: str) -> int:
    """Return a signed 64-bit hash of a prediction id.

    The pruned-id table stores this hash instead of the id to stay small.
    With m hashes stored, a label for an id never stored is reported as
    expired instead of unknown with probability about m / 2**64.
    """
    digest = hashlib.blake2b(prediction_id.encode("utf-8"), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def validate_label(
    actual: object, predicted: Any, kind: str | None, prediction_id: str
) -> Any:
    """Convert a label to JSON and check it against the model kind.

    Args:
        actual: The label, as the caller passed it.
        predicted: The stored prediction, as JSON.
        kind: "classification", "regression" or None when unknown.
        prediction_id: Named in error messages.

    Returns:
        The label as a JSON value. An integral float label of a classifier
        whose classes are integers becomes an int.

    Raises:
        InvalidLabelError: The label is missing, NaN, not JSON-serializable,
            or of a type that the model kind does not allow.
    """
    try:
        value = to_json_value(actual)
    except TypeError as error:
        raise InvalidLabelError(
            f"Label for prediction {prediction_id!r} is invalid: {error}"
        ) from None
    if actual is None:
        raise InvalidLabelError(f"Label for prediction {prediction_id!r} is missing")
    if value is None:
        raise InvalidLabelError(
            f"Label for prediction {prediction_id!r} is NaN or infinite; "
            f"a label must be a finite number"
        )
    if kind == "regression":
        return _validate_regression_label(value, prediction_id)
    if kind == "classification":
        return _validate_class_label(value, predicted, prediction_id)
    return value


def _validate_regression_label(value: Any, prediction_id: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidLabelError(
            f"Label for prediction {prediction_id!r} must be a number, "
            f"because the model is a regressor; got {type(value).__name__}"
        )
    return value


def _validate_class_label(value: Any, predicted: Any, prediction_id: str) -> Any:
    if not isinstance(value, (bool, str, int, float)):
        raise InvalidLabelError(
            f"Label for prediction {prediction_id!r} must be one class (a "
            f"string, integer or boolean), because the model is a "
            f"classifier; got {type(value).__name__}"
        )
    if isinstance(predicted, (bool, str)):
        expected: type = type(predicted)
        if type(value) is not expected:
            _raise_class_mismatch(value, expected, prediction_id)
        return value
    if isinstance(predicted, (int, float)):
        if isinstance(value, (bool, str)):
            _raise_class_mismatch(value, type(predicted), prediction_id)
        if isinstance(predicted, int) and isinstance(value, float):
            if not value.is_integer():
                raise InvalidLabelError(
                    f"Label for prediction {prediction_id!r} must be a "
                    f"whole number, because the model's classes are "
                    f"integers; got a float with a fractional part"
                )
            return int(value)
    return value


def _raise_class_mismatch(value: Any, expected: type, prediction_id: str) -> NoReturn:
    raise InvalidLabelError(
        f"Label for prediction {prediction_id!r} must be of type "
        f"{expected.__name__}, the type of the model's classes; got "
        f"{type(value).__name__}"
    )
