"""otel_mlmon: OpenTelemetry traces, metrics and flags for ML models.

Wrap a fitted model with :func:`wrap_model`; every prediction call then
runs in a span with feature summaries, confidence and latency, records
metrics, and flags drift and low-confidence predictions as span events.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from otel_mlmon.version import __version__

if TYPE_CHECKING:
    from otel_mlmon._drift_api import drift_report
    from otel_mlmon.baseline import Baseline, BaselineError
    from otel_mlmon.config import ConfigError, MonitorConfig
    from otel_mlmon.drift_report import DriftReport, FeatureDrift
    from otel_mlmon.feedback._monitor import record_feedback
    from otel_mlmon.instrumentation._core import (
        last_prediction_id,
        last_prediction_ids,
    )
    from otel_mlmon.instrumentation.wrap import (
        InstrumentedModel,
        unwrap_model,
        wrap_model,
    )
    from otel_mlmon.processor import MLSpanProcessor

# Public names are imported on first use (PEP 562). opentelemetry-instrument
# imports otel_mlmon.environment_variables and the instrumentors at start-up,
# and an eager import of the whole package (numpy included) added about
# 0.4 s to the start of every launched app.
_EXPORTS = {
    "drift_report": "otel_mlmon._drift_api",
    "Baseline": "otel_mlmon.baseline",
    "BaselineError": "otel_mlmon.baseline",
    "ConfigError": "otel_mlmon.config",
    "MonitorConfig": "otel_mlmon.config",
    "DriftReport": "otel_mlmon.drift_report",
    "FeatureDrift": "otel_mlmon.drift_report",
    "record_feedback": "otel_mlmon.feedback._monitor",
    "last_prediction_id": "otel_mlmon.instrumentation._core",
    "last_prediction_ids": "otel_mlmon.instrumentation._core",
    "InstrumentedModel": "otel_mlmon.instrumentation.wrap",
    "unwrap_model": "otel_mlmon.instrumentation.wrap",
    "wrap_model": "otel_mlmon.instrumentation.wrap",
    "MLSpanProcessor": "otel_mlmon.processor",
}


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """The package module, keeping ``drift_report`` the function.

    Importing the submodule ``otel_mlmon.drift_report`` sets the package's
    attribute of that name to the submodule. The public name stays the
    function, as it was when the package imported everything eagerly.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "drift_report" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "Baseline",
    "BaselineError",
    "ConfigError",
    "DriftReport",
    "FeatureDrift",
    "InstrumentedModel",
    "MLSpanProcessor",
    "MonitorConfig",
    "__version__",
    "drift_report",
    "last_prediction_id",
    "last_prediction_ids",
    "record_feedback",
    "unwrap_model",
    "wrap_model",
]
