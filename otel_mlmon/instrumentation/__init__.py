"""Instrumentation: wrap_model, and the shared core of every instrumentor."""

from otel_mlmon.instrumentation.wrap import (
    InstrumentedModel,
    unwrap_model,
    wrap_model,
)

__all__ = ["InstrumentedModel", "unwrap_model", "wrap_model"]
