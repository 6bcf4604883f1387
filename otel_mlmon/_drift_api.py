"""drift_report: the last drift verdicts of a wrapped model, for code."""

from __future__ import annotations

from typing import Any

from otel_mlmon.drift_report import DriftReport
from otel_mlmon.instrumentation.wrap import monitor_of


def drift_report(model: Any) -> DriftReport | None:
    """Return the report of the last closed drift window of a wrapped model.

    Returns None when the model was wrapped without a baseline, or before
    its first window closed.

    Raises:
        TypeError: ``model`` was not returned by :func:`wrap_model`.
    """
    monitor = monitor_of(model)
    if monitor is None:
        raise TypeError(
            f"drift_report needs a model returned by wrap_model, not a bare "
            f"{type(model).__qualname__}"
        )
    if monitor.drift is None:
        return None
    return monitor.drift.last_report
