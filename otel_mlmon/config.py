"""Settings of the monitoring, from keyword arguments and ``OTEL_MLMON_*``.

Precedence is keyword argument, then environment variable, then default. An
invalid value raises :class:`ConfigError` at wrap time, naming the setting,
the value and the accepted range, so a typo never silently turns a check off.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from otel_mlmon import environment_variables as env

VERDICT_STATISTICS = ("psi", "jensen_shannon", "wasserstein", "ks", "chi_square")
"""Statistics that can judge drift; ``ks`` and ``chi_square`` by p-value."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class ConfigError(ValueError):
    """A setting has an invalid value; the message names it and the fix."""


def _parse_float(text: str) -> float:
    return float(text)


def _parse_int(text: str) -> int:
    return int(text)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(text)


def _parse_names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _parse_path(text: str) -> str | None:
    return text.strip() or None


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ValueError(text) from error


def _setting(
    default: Any,
    variable: str,
    parse: Callable[[str], Any],
    accepted: str,
    check: Callable[[Any], bool] = lambda value: True,
) -> Any:
    metadata = {
        "variable": variable,
        "parse": parse,
        "accepted": accepted,
        "check": check,
    }
    return dataclasses.field(default=default, metadata=metadata)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _are_statistic_thresholds(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        name in VERDICT_STATISTICS and _is_number(limit) and limit > 0
        for name, limit in value.items()
    )


def _are_thresholds(value: Any) -> bool:
    """Check the shape ``{"default": {stat: x}, "features": {name: {...}}}``."""
    if value is None:
        return True
    if not isinstance(value, Mapping) or set(value) - {"default", "features"}:
        return False
    features = value.get("features", {})
    return (
        _are_statistic_thresholds(value.get("default", {}))
        and isinstance(features, Mapping)
        and all(
            isinstance(name, str) and _are_statistic_thresholds(limits)
            for name, limits in features.items()
        )
    )


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
    """Settings of one monitored model; every field has an ``OTEL_MLMON_*``.

    Build it with keyword arguments, or with :meth:`from_env` to read the
    environment for the fields not given. Validation runs on construction.
    """

    low_confidence_threshold: float = _setting(
        0.5,
        env.OTEL_MLMON_LOW_CONFIDENCE_THRESHOLD,
        _parse_float,
        "a number from 0 to 1",
        lambda value: _is_number(value) and 0.0 <= value <= 1.0,
    )
    drift_threshold: float = _setting(
        0.2,
        env.OTEL_MLMON_DRIFT_THRESHOLD,
        _parse_float,
        "a number above 0",
        lambda value: _is_number(value) and value > 0.0,
    )
    drift_window_rows: int = _setting(
        1000,
        env.OTEL_MLMON_DRIFT_WINDOW_ROWS,
        _parse_int,
        "a whole number from 1 to 100000000",
        lambda value: _is_count(value) and 1 <= value <= 100_000_000,
    )
    max_features: int = _setting(
        128,
        env.OTEL_MLMON_MAX_FEATURES,
        _parse_int,
        "a whole number from 1 to 1000",
        lambda value: _is_count(value) and 1 <= value <= 1000,
    )
    min_summary_rows: int = _setting(
        1,
        env.OTEL_MLMON_MIN_SUMMARY_ROWS,
        _parse_int,
        "a whole number of at least 1",
        lambda value: _is_count(value) and value >= 1,
    )
    capture_inputs: bool = _setting(
        False,
        env.OTEL_MLMON_CAPTURE_INPUTS,
        _parse_bool,
        "true or false",
        lambda value: isinstance(value, bool),
    )
    redact_features: tuple[str, ...] = _setting(
        (),
        env.OTEL_MLMON_REDACT_FEATURES,
        _parse_names,
        "feature names separated by commas",
        lambda value: isinstance(value, tuple)
        and all(isinstance(name, str) for name in value),
    )
    max_flagged_rows: int = _setting(
        20,
        env.OTEL_MLMON_MAX_FLAGGED_ROWS,
        _parse_int,
        "a whole number from 0 to 1000",
        lambda value: _is_count(value) and 0 <= value <= 1000,
    )
    drift_window_seconds: float = _setting(
        0.0,
        env.OTEL_MLMON_DRIFT_WINDOW_SECONDS,
        _parse_float,
        "a number of seconds of at least 0 (0 turns time windows off)",
        lambda value: _is_number(value) and value >= 0.0,
    )
    drift_min_rows: int = _setting(
        100,
        env.OTEL_MLMON_DRIFT_MIN_ROWS,
        _parse_int,
        "a whole number of at least 1",
        lambda value: _is_count(value) and value >= 1,
    )
    drift_statistic: str = _setting(
        "psi",
        env.OTEL_MLMON_DRIFT_STATISTIC,
        str.strip,
        f"one of {', '.join(VERDICT_STATISTICS)}",
        lambda value: value in VERDICT_STATISTICS,
    )
    drift_thresholds: Mapping[str, Any] | None = _setting(
        None,
        env.OTEL_MLMON_DRIFT_THRESHOLDS,
        _parse_json,
        'a mapping such as {"default": {"ks": 0.01}, "features": {"age": '
        '{"psi": 0.3}}}, whose statistics are '
        f"{', '.join(VERDICT_STATISTICS)} and whose thresholds are numbers "
        "above 0",
        lambda value: _are_thresholds(value),
    )
    drift_max_bin_series: int = _setting(
        1000,
        env.OTEL_MLMON_DRIFT_MAX_BIN_SERIES,
        _parse_int,
        "a whole number from 0 to 2000",
        lambda value: _is_count(value) and 0 <= value <= 2000,
    )

    feedback_db: str | None = _setting(
        None,
        env.OTEL_MLMON_FEEDBACK_DB,
        _parse_path,
        "the path of a SQLite file (unset for no feedback store)",
        lambda value: value is None or (isinstance(value, str) and value != ""),
    )
    feedback_window_labels: int = _setting(
        1000,
        env.OTEL_MLMON_FEEDBACK_WINDOW_LABELS,
        _parse_int,
        "a whole number from 1 to 1000000",
        lambda value: _is_count(value) and 1 <= value <= 1_000_000,
    )
    review_drift: bool = _setting(
        False,
        env.OTEL_MLMON_REVIEW_DRIFT,
        _parse_bool,
        "true or false",
        lambda value: isinstance(value, bool),
    )
    def __post_init__(self) -> None:
        if isinstance(self.redact_features, (list, set, frozenset)):
            object.__setattr__(
                self, "redact_features", tuple(self.redact_features)
            )
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not field.metadata["check"](value):
                raise ConfigError(
                    f"Invalid {field.name}={value!r}: expected "
                    f"{field.metadata['accepted']}."
                )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> MonitorConfig:
        """Build the settings from ``OTEL_MLMON_*`` variables and overrides.

        Args:
            environ: The variables to read; ``os.environ`` by default.
            **overrides: Field values that take precedence over variables.

        Raises:
            ConfigError: A variable or override is invalid, or an override
                names no field.
        """
        environ = os.environ if environ is None else environ
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ConfigError(
                f"Unknown setting {unknown[0]!r}: expected one of "
                f"{', '.join(sorted(fields))}."
            )
        values = dict(overrides)
        for name, field in fields.items():
            variable = field.metadata["variable"]
            if name in values or variable not in environ:
                continue
            values[name] = _read_variable(field, environ[variable])
        return cls(**values)


def _read_variable(field: dataclasses.Field[Any], text: str) -> Any:
    variable = field.metadata["variable"]
    accepted = field.metadata["accepted"]
    try:
        value = field.metadata["parse"](text)
    except ValueError:
        value = None
    if value is None or not field.metadata["check"](value):
        raise ConfigError(
            f"Invalid value {text!r} for {variable}: expected {accepted}. "
            f"Correct the variable or unset it to use the default "
            f"({field.default!r})."
        )
    return value
