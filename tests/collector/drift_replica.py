"""One replica of a model for the fleet-wide drift test.

Run as ``python drift_replica.py BASELINE PORT PART PARTS READY``: it wraps
a model with the baseline, serves its metrics with the Python Prometheus
exporter on 127.0.0.1:PORT, predicts on every PARTS-th live row starting at
PART, writes READY, and then serves until it is stopped.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = ("size", "weight", "age")
CITIES = ("paris", "lyon", "nice", "lille")
TRAIN_ROWS = 3000
LIVE_ROWS = 2400


class ConstantModel:
    """A classifier stand-in: the tests need its inputs, not its skill."""

    classes_ = np.array([0, 1])

    def predict_proba(self, frame: Any) -> np.ndarray:
        rows = len(frame)
        return np.tile([0.3, 0.7], (rows, 1))


def frame(seed: int, rows: int, shift: float) -> pd.DataFrame:
    """Return rows of three numeric features and one city column."""
    rng = np.random.default_rng(seed)
    data = {
        "size": rng.normal(shift, 1.0, rows),
        "weight": rng.exponential(2.0, rows),
        "age": rng.integers(18, 90, rows).astype(float),
    }
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    if shift:
        weights = weights[::-1]
    result = pd.DataFrame(data)
    result["city"] = rng.choice(np.array(CITIES + ("rome",)), rows, p=[*weights * 0.95, 0.05])
    result.loc[rng.random(rows) < 0.02, "weight"] = np.nan
    return result


def training() -> pd.DataFrame:
    return frame(1, TRAIN_ROWS, 0.0).assign(
        city=lambda f: f["city"].where(f["city"] != "rome", "paris")
    )


def live() -> pd.DataFrame:
    return frame(2, LIVE_ROWS, 0.8)


def main() -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import start_http_server

    from otel_mlmon import Baseline, MonitorConfig, wrap_model

    baseline_path, port, part, parts, ready = sys.argv[1:6]
    start_http_server(int(port), addr="127.0.0.1")
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    model = wrap_model(
        ConstantModel(),
        name="fleet_clf",
        version="1",
        baseline=Baseline.load(baseline_path),
        tracer_provider=TracerProvider(),
        meter_provider=meter_provider,
        config=MonitorConfig(drift_window_rows=500),
    )
    rows = live().iloc[int(part) :: int(parts)]
    for start in range(0, len(rows), 7):
        model.predict_proba(rows.iloc[start : start + 7])
    Path(ready).write_text(str(len(rows)), encoding="utf-8")
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
