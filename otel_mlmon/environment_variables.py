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

OTEL_MLMON_DRIFT_WINDOW_SECONDS: Final = "OTEL_MLMON_DRIFT_WINDOW_SECONDS"
"""Length of time windows for drift, in seconds (0, the default, turns them off)."""

OTEL_MLMON_DRIFT_MIN_ROWS: Final = "OTEL_MLMON_DRIFT_MIN_ROWS"
"""Rows a closed window needs before it gets a drift verdict (default 100)."""

OTEL_MLMON_DRIFT_STATISTIC: Final = "OTEL_MLMON_DRIFT_STATISTIC"
"""Statistic that decides drift: psi (default), jensen_shannon, wasserstein, ks or chi_square."""

OTEL_MLMON_DRIFT_THRESHOLDS: Final = "OTEL_MLMON_DRIFT_THRESHOLDS"
"""JSON thresholds per statistic and per feature, overriding the defaults."""

OTEL_MLMON_DRIFT_MAX_BIN_SERIES: Final = "OTEL_MLMON_DRIFT_MAX_BIN_SERIES"
"""Per-bin metric series per model at most, for fleet-wide drift (default 1000)."""

OTEL_MLMON_MODEL_NAME: Final = "OTEL_MLMON_MODEL_NAME"
"""Model name for the launcher's instrumentors; the model's class name by default.

Either one name for every model, or ``ClassName=name`` entries separated by
commas, where ``*=name`` applies to the classes not listed.
"""

OTEL_MLMON_MODEL_VERSION: Final = "OTEL_MLMON_MODEL_VERSION"
"""Model version for the launcher's instrumentors (default ``unknown``).

Either one version for every model, or ``ClassName=version`` entries.
"""

OTEL_MLMON_BASELINE: Final = "OTEL_MLMON_BASELINE"
"""Path of the baseline JSON file for the launcher's instrumentors.

Either one path for every model, or ``ClassName=path`` entries separated by
commas, where ``*=path`` applies to the classes not listed.
"""

OTEL_MLMON_FEEDBACK_DB: Final = "OTEL_MLMON_FEEDBACK_DB"
"""Path of the SQLite file that keeps predictions for feedback (unset: off)."""

OTEL_MLMON_FEEDBACK_WINDOW_LABELS: Final = "OTEL_MLMON_FEEDBACK_WINDOW_LABELS"
"""Latest labels that accuracy, precision, recall, MAE and RMSE cover (default 1000)."""

OTEL_MLMON_REVIEW_DRIFT: Final = "OTEL_MLMON_REVIEW_DRIFT"
"""Also queue predictions made while drift is detected for review (default false)."""
