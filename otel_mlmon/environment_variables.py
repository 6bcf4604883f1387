"""``OTEL_MLMON_*`` variables that configure otel_mlmon.

Registered under the ``opentelemetry_environment_variables`` entry point, so
``opentelemetry-instrument`` offers a matching command-line flag for each.
"""

from __future__ import annotations

from typing import Final

OTEL_MLMON_LOW_CONFIDENCE_THRESHOLD: Final = "OTEL_MLMON_LOW_CONFIDENCE_THRESHOLD"
"""Rows whose confidence is below this value are flagged (0 to 1, default 0.5)."""

OTEL_MLMON_DRIFT_THRESHOLD: Final = "OTEL_MLMON_DRIFT_THRESHOLD"
"""PSI above which a feature counts as drifted (above 0, default 0.2)."""

OTEL_MLMON_DRIFT_WINDOW_ROWS: Final = "OTEL_MLMON_DRIFT_WINDOW_ROWS"
"""Rows in each drift window (at least 1, default 1000)."""

OTEL_MLMON_MAX_FEATURES: Final = "OTEL_MLMON_MAX_FEATURES"
"""Features summarised on a span at most (1 to 1000, default 128)."""

OTEL_MLMON_MIN_SUMMARY_ROWS: Final = "OTEL_MLMON_MIN_SUMMARY_ROWS"
"""Smallest batch whose numeric summaries go on the span (default 1)."""

OTEL_MLMON_CAPTURE_INPUTS: Final = "OTEL_MLMON_CAPTURE_INPUTS"
"""Send flagged input rows on log records (true or false, default false)."""

OTEL_MLMON_REDACT_FEATURES: Final = "OTEL_MLMON_REDACT_FEATURES"
"""Comma-separated feature names left out of captured rows."""

OTEL_MLMON_MAX_FLAGGED_ROWS: Final = "OTEL_MLMON_MAX_FLAGGED_ROWS"
"""Row indexes on a flag event and log records per call at most (default 20)."""
