"""Cost of zero-code instrumentation under ``opentelemetry-instrument``.

Two measurements, in one run:

- Per call: a child process started by the launcher times
  ``predict_proba`` of one row on a scikit-learn pipeline in interleaved
  rounds. It times the call traced by the launcher's sklearn instrumentor,
  the same call through ``wrap_model`` on a second copy of the model, and
  the call with instrumentation suppressed. Both traced paths carry the same baseline, so
  drift is on. It prints the medians and the ratio of the two traced calls
  (about 1 when they cost the same).
- Start-up: the wall time of ``opentelemetry-instrument python -c ...``
  with every otel_mlmon instrumentor, and with them disabled through
  ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``; the difference is what they add.
  It is measured for an empty program, and for one that imports
  scikit-learn, XGBoost, LightGBM and ONNX Runtime (so the patching done
  when those imports finish is included). Runs alternate. Medians and
  minimums are printed: on a loaded machine the minimum is the steadier
  estimate of a start-up time.

Spans and metrics are made by the SDK but not exported (the exporters are
``none``), so the numbers are the instrumentation's, not the network's.

Run: python benchmarks/launcher.py [--rounds 15] [--startup-runs 15]
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
from pathlib import Path
from typing import Any

_BIN = Path(sys.executable).parent
_OURS = "sklearn,xgboost,lightgbm,onnxruntime,torch"
_IMPORTS = "import sklearn.ensemble, xgboost, lightgbm, onnxruntime"


def _environment(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ.update(
        {
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "PATH": f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    environ.update(extra)
    return environ


def _launch(arguments: list[str], environ: dict[str, str]) -> str:
    completed = subprocess.run(
        [str(_BIN / "opentelemetry-instrument"), *arguments],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return completed.stdout


def _time_calls(call: Any, rows: Any, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call(rows)
    return (time.perf_counter() - start) / calls


def child(rounds: int, baseline_path: str) -> None:
    """Time the three paths inside the launched process; print JSON."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from otel_mlmon import wrap_model

    x, y = load_breast_cancer(return_X_y=True)

    def train() -> Any:
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        return pipeline.fit(x, y)

    launched = train()
    wrapped = wrap_model(train(), baseline=baseline_path)
    row = x[:1]
    calls = 200
    times: dict[str, list[float]] = {
        "launcher": [],
        "wrap_model": [],
        "bare": [],
    }
    for _ in range(5):
        launched.predict_proba(row)
        wrapped.predict_proba(row)
    for _ in range(rounds):
        times["launcher"].append(_time_calls(launched.predict_proba, row, calls))
        times["wrap_model"].append(_time_calls(wrapped.predict_proba, row, calls))
        with suppress_instrumentation():
            times["bare"].append(_time_calls(launched.predict_proba, row, calls))
    medians = {name: statistics.median(values) for name, values in times.items()}
    minimums = {f"{name}_min": min(values) for name, values in times.items()}
    print(json.dumps({**medians, **minimums}))


def _per_call(rounds: int) -> dict[str, float]:
    from sklearn.datasets import load_breast_cancer

    from otel_mlmon import Baseline

    x, _ = load_breast_cancer(return_X_y=True)
    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "baseline.json")
        Baseline.fit(x).save(path)
        environ = _environment(OTEL_MLMON_BASELINE=path)
        output = _launch(
            ["python", __file__, "--child", "--rounds", str(rounds), path],
            environ,
        )
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def _startup(runs: int, program: str) -> tuple[list[float], list[float]]:
    with_ours: list[float] = []
    without: list[float] = []
    enabled = _environment()
    disabled = _environment(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=_OURS)
    _launch(["python", "-c", program], enabled)  # warm the file cache
    for _ in range(runs):
        for environ, times in ((enabled, with_ours), (disabled, without)):
            start = time.perf_counter()
            _launch(["python", "-c", program], environ)
            times.append(time.perf_counter() - start)
    return with_ours, without


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--startup-runs", type=int, default=15)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("baseline", nargs="?", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.rounds, arguments.baseline)
        return

    per_call = _per_call(arguments.rounds)
    print("per call, predict_proba of 1 row (medians of rounds of 200 calls):")
    for name in ("bare", "wrap_model", "launcher"):
        print(f"  {name:<11} {per_call[name] * 1e6:8.1f} us")
    ratio = per_call["launcher"] / per_call["wrap_model"]
    added = (per_call["launcher"] - per_call["bare"]) / (
        per_call["wrap_model"] - per_call["bare"]
    )
    fastest = per_call["launcher_min"] / per_call["wrap_model_min"]
    print(f"  launcher / wrap_model, whole call:  {ratio:.3f}")
    print(f"  launcher / wrap_model, added cost:  {added:.3f}")
    print(f"  launcher / wrap_model, fastest rounds:  {fastest:.3f}")

    print(f"start-up of opentelemetry-instrument (medians of {arguments.startup_runs}):")
    for label, program in (("empty program", "pass"), ("framework imports", _IMPORTS)):
        with_ours, without = _startup(arguments.startup_runs, program)
        for statistic, reduce in (("median", statistics.median), ("min", min)):
            enabled, disabled = reduce(with_ours), reduce(without)
            print(
                f"  {label:<18} {statistic:<6} with {enabled * 1e3:7.1f} ms, "
                f"without {disabled * 1e3:7.1f} ms, "
                f"added {(enabled - disabled) * 1e3:6.1f} ms"
            )


if __name__ == "__main__":
    main()
