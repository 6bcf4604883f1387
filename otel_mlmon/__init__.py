"""otel_mlmon: OpenTelemetry traces, metrics and flags for ML models.

Wrap a fitted model with :func:`wrap_model`; every prediction call then
runs in a span with feature summaries, confidence and latency, records
metrics, and flags drift and low-confidence predictions as span events.
"""

from otel_mlmon.baseline import Baseline, BaselineError
from otel_mlmon.config import ConfigError, MonitorConfig
from otel_mlmon.instrumentation._core import last_prediction_id
from otel_mlmon.instrumentation.wrap import (
    InstrumentedModel,
    unwrap_model,
    wrap_model,
)
from otel_mlmon.processor import MLSpanProcessor
from otel_mlmon.version import __version__

__all__ = [
    "Baseline",
    "BaselineError",
    "ConfigError",
    "InstrumentedModel",
    "MLSpanProcessor",
    "MonitorConfig",
    "__version__",
    "last_prediction_id",
    "unwrap_model",
    "wrap_model",
]
