"""Instrumentation: wrap_model, and the shared core of every instrumentor."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_mlmon.instrumentation.wrap import (
        InstrumentedModel,
        unwrap_model,
        wrap_model,
    )


def __getattr__(name: str) -> Any:
    # Imported on first use, so that the launcher's instrumentors, which
    # live in this package, do not import numpy at start-up.
    if name not in ("InstrumentedModel", "unwrap_model", "wrap_model"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("otel_mlmon.instrumentation.wrap"), name)
    globals()[name] = value
    return value

__all__ = ["InstrumentedModel", "unwrap_model", "wrap_model"]
