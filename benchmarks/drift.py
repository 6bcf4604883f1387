"""Cost of drift detection: per-batch update, window judgement, Evidently.

It measures, on one 10,000 x 20 batch:

- update: ``DriftMonitor.observe`` counting the batch into an open window,
  against numpy's floor for the same binning (``slot_counts`` alone);
- check: a monitor whose window closes on the batch, so the update plus
  every statistic of every feature (PSI, Jensen-Shannon, KS, Wasserstein);
- Evidently: its data-drift report (``Report([DataDriftPreset(...)])``) on
  the same reference and current data, run in its own virtual environment
  (evidently 0.7 needs pandas < 3), created on first use under
  ``${OTEL_MLMON_CACHE:-~/.cache/otel_mlmon}/evidently-venv`` from PyPI.

Time is the median of repeated runs; peak memory is tracemalloc's peak
during one run, in each process. Verdicts are compared twice: PSI with
threshold 0.2 in both, and Evidently's default for numeric columns of more
than 1,000 rows (normalised Wasserstein distance, threshold 0.1) against
the package with ``drift_statistic="wasserstein"``. The reference and
current data are 10,000 x 20: 15 standard normal or exponential features
unchanged, and 5 shifted by one standard deviation.

Last, it replays 10 million rows through one monitor and prints the
resident set size before and after.

Run: python benchmarks/drift.py [--rounds 30] [--skip-evidently]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from otel_mlmon import Baseline
from otel_mlmon.drift import DriftMonitor
from otel_mlmon.drift_report import DriftReport, DriftSettings
from otel_mlmon.metrics import resident_set_size
from otel_mlmon.stats.binning import slot_counts

ROWS = 10_000
FEATURES = 20
SHIFTED = (0, 4, 8, 12, 16)
EVIDENTLY_VENV = (
    Path(os.environ.get("OTEL_MLMON_CACHE") or Path.home() / ".cache" / "otel_mlmon")
    / "evidently-venv"
)
EVIDENTLY_REQUIREMENTS = ("evidently>=0.7,<0.8", "pandas<3")

# Runs inside the Evidently environment: reads the two .npy files, prints
# JSON with times, peak memory and per-column verdicts.
EVIDENTLY_SCRIPT = r"""
import json, statistics, sys, time, tracemalloc
import numpy as np, pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

reference_path, current_path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = [f"x{i}" for i in range(np.load(reference_path).shape[1])]
definition = DataDefinition(numerical_columns=names)

def run(preset):
    reference = pd.DataFrame(np.load(reference_path), columns=names)
    current = pd.DataFrame(np.load(current_path), columns=names)
    report = Report([preset])
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    return snapshot.dict()["metrics"]

def verdicts(metrics):
    found = {}
    for metric in metrics:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            found[config["column"]] = {
                "method": config["method"],
                "score": float(metric["value"]),
                "threshold": float(config["threshold"]),
            }
    return found

presets = {
    "psi": lambda: DataDriftPreset(num_method="psi", num_threshold=0.2),
    "default": lambda: DataDriftPreset(),
}
result = {}
for key, make in presets.items():
    run(make())
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        metrics = run(make())
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    run(make())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result[key] = {
        "seconds": statistics.median(times),
        "peak_bytes": peak,
        "verdicts": verdicts(metrics),
    }
print(json.dumps(result))
"""


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    reference = np.empty((ROWS, FEATURES))
    current = np.empty((ROWS, FEATURES))
    for column in range(FEATURES):
        if column % 2:
            reference[:, column] = rng.exponential(2.0, ROWS)
            current[:, column] = rng.exponential(2.0, ROWS)
        else:
            reference[:, column] = rng.normal(0.0, 1.0, ROWS)
            current[:, column] = rng.normal(0.0, 1.0, ROWS)
        if column in SHIFTED:
            current[:, column] += reference[:, column].std()
    return reference, current


def _median_seconds(function: Callable[[], Any], rounds: int) -> float:
    function()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_bytes(function: Callable[[], Any]) -> int:
    tracemalloc.start()
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def _check(baseline: Baseline, current: np.ndarray, statistic: str) -> DriftReport:
    threshold = {"psi": 0.2, "wasserstein": 0.1}[statistic]
    settings = DriftSettings(
        window_rows=len(current),
        min_rows=1,
        statistic=statistic,
        thresholds={"default": {statistic: threshold}},
    )
    monitor = DriftMonitor(baseline, settings)
    columns = monitor.columns_for(baseline.feature_names)
    assert columns is not None
    (report,) = monitor.observe(current, columns).reports
    return report


def _ours(rounds: int) -> dict[str, Any]:
    reference, current = _data()
    baseline = Baseline.fit(reference, bins=10)
    monitor = DriftMonitor(baseline, DriftSettings(window_rows=10**12))
    columns = monitor.columns_for(baseline.feature_names)
    assert columns is not None
    edges = baseline.counting_edges()
    update = _median_seconds(lambda: monitor.observe(current, columns), rounds)
    floor = _median_seconds(lambda: slot_counts(current, edges), rounds)
    check = _median_seconds(lambda: _check(baseline, current, "psi"), rounds)
    fit_and_check = _median_seconds(
        lambda: _check(Baseline.fit(reference, bins=10), current, "psi"), rounds
    )
    return {
        "update": update,
        "floor": floor,
        "check": check,
        "fit_and_check": fit_and_check,
        "check_peak": _peak_bytes(lambda: _check(baseline, current, "psi")),
        "fit_and_check_peak": _peak_bytes(
            lambda: _check(Baseline.fit(reference, bins=10), current, "psi")
        ),
        "verdicts": {
            key: {f.name: f.drifted for f in _check(baseline, current, key).features}
            for key in ("psi", "wasserstein")
        },
    }


def _evidently_python() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print(f"Creating {EVIDENTLY_VENV} (evidently from PyPI)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *EVIDENTLY_REQUIREMENTS],
            check=True,
        )
    return python


def _evidently(rounds: int) -> dict[str, Any]:
    reference, current = _data()
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / "reference.npy", Path(folder) / "current.npy"]
        np.save(paths[0], reference)
        np.save(paths[1], current)
        output = subprocess.run(
            [str(_evidently_python()), "-c", EVIDENTLY_SCRIPT, *map(str, paths),
             str(rounds)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def _evidently_drifted(verdict: dict[str, Any]) -> bool:
    # Evidently flags a distance at or above its threshold, and a p-value
    # below it; both presets here use distances.
    return bool(verdict["score"] >= verdict["threshold"])


def _rss_replay() -> tuple[int, int]:
    rng = np.random.default_rng(3)
    baseline = Baseline.fit(rng.normal(size=(5000, FEATURES)), bins=10)
    monitor = DriftMonitor(baseline, DriftSettings(window_rows=100_000))
    columns = monitor.columns_for(baseline.feature_names)
    assert columns is not None
    batch = rng.normal(size=(ROWS, FEATURES))
    for _ in range(50):
        monitor.observe(batch, columns)
    before = resident_set_size()
    for _ in range(10_000_000 // ROWS):
        monitor.observe(batch, columns)
    return before, resident_set_size()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--evidently-rounds", type=int, default=3)
    parser.add_argument("--skip-evidently", action="store_true")
    arguments = parser.parse_args()

    ours = _ours(arguments.rounds)
    print(f"10,000 x 20 batch, medians of {arguments.rounds} runs")
    print(f"  update (count into window)   {ours['update'] * 1e3:8.2f} ms")
    print(f"  numpy floor (same binning)   {ours['floor'] * 1e3:8.2f} ms")
    print(f"  update / floor               {ours['update'] / ours['floor']:8.2f}")
    print(f"  check (update + statistics)  {ours['check'] * 1e3:8.2f} ms,"
          f" peak {ours['check_peak'] / 2**20:.1f} MiB")
    print(f"  fit baseline + check         {ours['fit_and_check'] * 1e3:8.2f} ms,"
          f" peak {ours['fit_and_check_peak'] / 2**20:.1f} MiB")
    if not arguments.skip_evidently:
        evidently = _evidently(arguments.evidently_rounds)
        for key, statistic in (("psi", "psi"), ("default", "wasserstein")):
            theirs = evidently[key]
            drifted = {
                name: _evidently_drifted(v) for name, v in theirs["verdicts"].items()
            }
            same = drifted == ours["verdicts"][statistic]
            print(
                f"Evidently {key:<8} {theirs['seconds'] * 1e3:9.1f} ms, peak "
                f"{theirs['peak_bytes'] / 2**20:.1f} MiB; "
                f"vs check {theirs['seconds'] / ours['check']:.0f}x faster, "
                f"vs fit + check {theirs['seconds'] / ours['fit_and_check']:.0f}x; "
                f"peak memory {theirs['peak_bytes'] / ours['check_peak']:.0f}x "
                f"lower; same verdicts: {same} "
                f"({sum(drifted.values())} drifted)"
            )
    before, after = _rss_replay()
    print(
        f"10 million rows replayed: RSS {before / 2**20:.1f} MiB before, "
        f"{after / 2**20:.1f} MiB after"
    )


if __name__ == "__main__":
    main()
