"""Alert rules and Alertmanager routing, with Debian's promtool, Prometheus and Alertmanager."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from collector_stack import (
    COLLECTOR_DIR,
    PROMETHEUS_DIR,
    ManagedProcess,
    free_port,
    http_get,
    start_process,
    start_prometheus,
    wait_ready,
    wait_until,
)

ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
ALERTMANAGER_CONFIG = COLLECTOR_DIR / "alertmanager" / "alertmanager.yml"
WEBHOOK_LOGGER = COLLECTOR_DIR / "alertmanager" / "webhook_logger.py"

ALERT_NAMES = [
    rule["alert"]
    for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    for rule in group["rules"]
    if "alert" in rule
]


def run_tool(
    *command: str, cwd: Path = PROMETHEUS_DIR
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, check=False, capture_output=True, text=True, timeout=120
    )


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    """promtool accepts the rule file."""
    result = run_tool(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_passes_promtool_check(promtool: str) -> None:
    """promtool accepts prometheus.yml and the rule file it loads."""
    result = run_tool(
        promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass(promtool: str) -> None:
    """The promtool unit tests in alerts_test.yml pass."""
    result = run_tool(promtool, "test", "rules", ALERTS_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_alert_has_firing_and_quiet_cases(alert: str) -> None:
    """Each alert has a unit test where it fires and one where it must stay quiet."""
    tests = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))["tests"]
    cases = [
        case
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alert
    ]
    assert any(case["exp_alerts"] for case in cases), f"{alert} never fires in a test"
    assert any(not case["exp_alerts"] for case in cases), (
        f"{alert} never stays quiet in a test"
    )


def test_unit_tests_catch_changed_threshold(promtool: str, tmp_path: Path) -> None:
    """Raising the error-rate threshold past the test data makes the unit tests fail."""
    rules = ALERTS.read_text(encoding="utf-8")
    changed = rules.replace(") > 0.05", ") > 0.5")
    assert changed != rules
    (tmp_path / "alerts.yml").write_text(changed, encoding="utf-8")
    (tmp_path / "alerts_test.yml").write_text(
        ALERTS_TEST.read_text(encoding="utf-8"), encoding="utf-8"
    )
    result = run_tool(promtool, "test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "MLModelHighErrorRate" in result.stdout + result.stderr


def test_alertmanager_config_passes_amtool() -> None:
    """amtool accepts alertmanager.yml."""
    amtool = _which_or_skip("amtool")
    result = run_tool(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def _which_or_skip(name: str) -> str:
    import shutil

    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} not found on PATH; install Debian's prometheus-alertmanager"
        )
    return path


# End to end: a synthetic series trips a real rule in Prometheus, Prometheus
# sends the alert to Alertmanager, which routes it to the webhook.

SYNTHETIC_METRICS = (
    b"# TYPE ml_feature_drift_score_ratio gauge\n"
    b'ml_feature_drift_score_ratio{ml_model_name="fraud_clf",ml_model_version="2",'
    b'ml_feature_name="amount",ml_drift_statistic="psi"} 0.45\n'
)


class _MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(SYNTHETIC_METRICS)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(name="metrics_endpoint")
def fixture_metrics_endpoint() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MetricsHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def immediate_rules(target: Path) -> Path:
    """Write alerts.yml with every ``for`` removed, so rules fire on first evaluation."""
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    target.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return target


def unrouted_rule(target: Path) -> Path:
    """Write a rule without the team label that fires on the same series as the ML rule."""
    rule = {
        "alert": "UnroutedTestAlert",
        "expr": "group(ml_feature_drift_score_ratio)",
        "labels": {"severity": "info"},
    }
    target.write_text(
        yaml.safe_dump({"groups": [{"name": "unrouted", "rules": [rule]}]}),
        encoding="utf-8",
    )
    return target


def alertmanager_test_config(webhook_port: int) -> dict[str, Any]:
    """Load alertmanager.yml with the webhook on 127.0.0.1 and 1 s grouping waits."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    config["route"]["group_wait"] = "1s"
    config["route"]["group_interval"] = "1s"
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"http://127.0.0.1:{webhook_port}/alerts"
    return dict(config)


def received_alerts(webhook: ManagedProcess) -> list[dict[str, Any]]:
    alerts = []
    for line in webhook.log_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            alerts.append(json.loads(line))
    return alerts


def test_drift_alert_reaches_ml_webhook(
    prometheus_binary: str,
    alertmanager_binary: str,
    metrics_endpoint: int,
    tmp_path: Path,
) -> None:
    """A firing ML rule goes Prometheus -> Alertmanager -> the ML webhook; others do not."""
    processes: list[ManagedProcess] = []
    prometheus = None
    try:
        webhook_port = free_port()
        webhook = start_process(
            "webhook",
            [
                sys.executable,
                str(WEBHOOK_LOGGER),
                "--host",
                "127.0.0.1",
                "--port",
                str(webhook_port),
            ],
            tmp_path,
        )
        processes.append(webhook)

        am_port = free_port()
        am_config = tmp_path / "alertmanager.yml"
        am_config.write_text(
            yaml.safe_dump(alertmanager_test_config(webhook_port)), encoding="utf-8"
        )
        alertmanager = start_process(
            "alertmanager",
            [
                alertmanager_binary,
                f"--config.file={am_config}",
                f"--storage.path={tmp_path / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                # An empty address turns off the cluster listener, which would
                # otherwise bind 0.0.0.0:9094.
                "--cluster.listen-address=",
            ],
            tmp_path,
        )
        processes.append(alertmanager)
        wait_ready(alertmanager, f"http://127.0.0.1:{am_port}/-/ready")

        prometheus_config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [
                str(immediate_rules(tmp_path / "alerts.yml")),
                str(unrouted_rule(tmp_path / "unrouted.yml")),
            ],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "synthetic",
                    "static_configs": [{"targets": [f"127.0.0.1:{metrics_endpoint}"]}],
                }
            ],
        }
        # Prometheus drops alerts that fire before it has discovered
        # Alertmanager; a 1 s resend delay (default 1 m) retries them quickly.
        prometheus = start_prometheus(
            prometheus_config, tmp_path, tmp_path, ["--rules.alert.resend-delay=1s"]
        )

        def drift_alert_received() -> bool:
            return any(
                alert["labels"].get("alertname") == "MLFeatureDriftSustained"
                for alert in received_alerts(webhook)
            )

        wait_until(
            drift_alert_received, 60, "the drift alert at the webhook", interval_s=0.5
        )
        # The unrouted alert fires in the same evaluation. Wait until
        # Alertmanager contains it, then give a wrong route time to deliver it.
        wait_until(
            lambda: "UnroutedTestAlert" in _alert_receivers(am_port),
            30,
            "the unrouted alert in Alertmanager",
        )
        time.sleep(3)
        receivers = _alert_receivers(am_port)
    finally:
        if prometheus is not None:
            prometheus.process.stop()
        for process in reversed(processes):
            process.stop()

    alerts = received_alerts(webhook)
    drift = [a for a in alerts if a["labels"]["alertname"] == "MLFeatureDriftSustained"]
    assert drift[0]["receiver"] == "ml-webhook"
    assert drift[0]["status"] == "firing"
    assert drift[0]["labels"]["team"] == "ml"
    assert drift[0]["labels"]["ml_feature_name"] == "amount"
    assert (
        drift[0]["annotations"]["summary"]
        == "Feature amount of fraud_clf drifted (PSI 0.45)"
    )
    assert not [a for a in alerts if a["labels"]["alertname"] == "UnroutedTestAlert"]
    assert receivers["UnroutedTestAlert"] == ["unrouted"]
    assert receivers["MLFeatureDriftSustained"] == ["ml-webhook"]


def _alert_receivers(port: int) -> dict[str, list[str]]:
    """Return each active alert's receivers, from Alertmanager's API."""
    status, body = http_get(f"http://127.0.0.1:{port}/api/v2/alerts")
    if status != 200:
        return {}
    return {
        alert["labels"]["alertname"]: sorted(r["name"] for r in alert["receivers"])
        for alert in json.loads(body)
    }
