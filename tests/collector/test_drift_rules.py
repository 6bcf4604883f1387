"""Fleet-wide PSI recording rules: promtool on synthetic series, then a
real Prometheus scraping two replicas that each took half of the traffic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from collector_stack import (
    PROMETHEUS_DIR,
    free_port,
    http_ok,
    start_prometheus,
    wait_until,
)

from otel_mlmon import Baseline
from otel_mlmon.drift import DriftMonitor
from otel_mlmon.drift_report import DriftSettings
from otel_mlmon.stats.divergence import psi

DRIFT_RULES = PROMETHEUS_DIR / "drift_rules.yml"
REPLICA = Path(__file__).parent / "drift_replica.py"
LABELS = 'ml_model_name="m", ml_model_version="1", ml_feature_name="f"'

# Training shares of three value bins and the missing bin, and each
# replica's rows per minute in those bins. The missing bin is empty in
# training and bin 2 is empty live, so the 1e-4 floor matters.
BASELINE_SHARES = [0.25, 0.5, 0.25, 0.0]
REPLICA_RATES = {"a": [3, 2, 0, 1], "b": [5, 1, 0, 0]}


def _expected_psi(minutes: int) -> float:
    live = np.sum([rates for rates in REPLICA_RATES.values()], axis=0) * minutes
    return float(psi(np.array(BASELINE_SHARES), live))


def _rules_test(tmp_path: Path) -> Path:
    series = []
    for replica, rates in REPLICA_RATES.items():
        for index, rate in enumerate(rates):
            label = "missing" if index == 3 else str(index)
            series.append(
                {
                    "series": f"ml_feature_bin_rows_total{{{LABELS}, "
                    f'ml_feature_bin="{label}", instance="{replica}"}}',
                    "values": f"0+{rate}x60",
                }
            )
            series.append(
                {
                    "series": f"ml_feature_baseline_fraction_ratio{{{LABELS}, "
                    f'ml_feature_bin="{label}", instance="{replica}"}}',
                    "values": f"{BASELINE_SHARES[index]!r}x60",
                }
            )
    checks = [
        ("ml_feature:drift_psi:sum", _expected_psi(60)),
        ("ml_feature:drift_psi:increase1h", _expected_psi(60)),
    ]
    test = {
        "rule_files": [str(DRIFT_RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": f"abs({name} - {value!r}) < bool 1e-9",
                        "eval_time": "60m",
                        "exp_samples": [
                            {
                                "labels": "{" + LABELS + "}",
                                "value": 1,
                            }
                        ],
                    }
                    for name, value in checks
                ],
            }
        ],
    }
    path = tmp_path / "drift_rules_test.yml"
    path.write_text(yaml.safe_dump(test), encoding="utf-8")
    return path


def test_drift_rules_pass_promtool_check(promtool: str) -> None:
    """promtool accepts the drift rule file."""
    result = subprocess.run(
        [promtool, "check", "rules", str(DRIFT_RULES)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_drift_rules_pooled_psi(promtool: str, tmp_path: Path) -> None:
    """The rules' PSI over two replicas equals PSI on the pooled counts."""
    assert _expected_psi(60) > 1.0
    result = subprocess.run(
        [promtool, "test", "rules", str(_rules_test(tmp_path))],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _one_process_psi(baseline: Baseline) -> dict[str, float]:
    sys.path.insert(0, str(REPLICA.parent))
    from drift_replica import live

    rows = live()
    monitor = DriftMonitor(baseline, DriftSettings(window_rows=10**8))
    columns = monitor.columns_for(list(baseline.feature_names))
    assert columns is not None
    numeric = rows[list(baseline.feature_names)].to_numpy(dtype=float)
    monitor.observe(numeric, columns, monitor.category_index(rows))
    counts, categorical = monitor.cumulative_counts()
    scores = dict(zip(baseline.feature_names, psi(baseline.counts, counts).tolist()))
    expected = monitor.categories.expected
    for name, value in zip(
        monitor.categories.names, psi(expected, categorical).tolist()
    ):
        scores[name] = value
    return scores


def _start_replicas(tmp_path: Path, baseline_path: Path) -> list[Any]:
    replicas = []
    for part in range(2):
        port = free_port()
        ready = tmp_path / f"ready-{part}"
        log = (tmp_path / f"replica-{part}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, str(REPLICA), str(baseline_path), str(port),
             str(part), "2", str(ready)],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
        )  # fmt: skip
        replicas.append((process, port, ready))
    return replicas


def test_fleet_psi_from_two_replicas(
    prometheus_binary: str, tmp_path: Path
) -> None:
    """Prometheus scraping two half-traffic replicas gets the pooled PSI."""
    pytest.importorskip("opentelemetry.exporter.prometheus")
    sys.path.insert(0, str(REPLICA.parent))
    from drift_replica import training

    baseline = Baseline.fit(training(), bins=8)
    baseline_path = tmp_path / "baseline.json"
    baseline.save(baseline_path)
    expected = _one_process_psi(Baseline.load(baseline_path))
    replicas = _start_replicas(tmp_path, baseline_path)
    prometheus = None
    try:
        for process, port, ready in replicas:
            wait_until(ready.exists, 60, f"replica on port {port} to send its rows")
            assert http_ok(f"http://127.0.0.1:{port}/metrics")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(DRIFT_RULES)],
            "scrape_configs": [
                {
                    "job_name": "fleet",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{port}" for _, port, _ in replicas]}
                    ],
                }
            ],
        }
        prometheus = start_prometheus(config, tmp_path, tmp_path)

        def pooled_rows() -> bool:
            result = prometheus.query(
                'sum(ml_feature:bin_rows:sum{ml_feature_name="size"})'
            )
            return bool(result) and float(result[0]["value"][1]) == 2400

        wait_until(pooled_rows, 60, "Prometheus to record both replicas' rows")
        wait_until(
            lambda: len(prometheus.query("ml_feature:drift_psi:sum")) == 4,
            30,
            "the PSI recording rule",
        )
        found = {
            sample["metric"]["ml_feature_name"]: float(sample["value"][1])
            for sample in prometheus.query("ml_feature:drift_psi:sum")
        }
    finally:
        if prometheus is not None:
            prometheus.process.stop()
        for process, _, _ in replicas:
            process.terminate()
            process.wait(timeout=10)
    assert set(found) == set(expected)
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, abs=1e-6), name
    assert expected["size"] > 0.2
    assert expected["city"] > 0.2
