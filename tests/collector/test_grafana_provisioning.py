"""Grafana data sources, dashboard provisioning and the ML model dashboard.

No Grafana binary is available on the build machines, so these tests check
the files against each other and against otel_mlmon's names. The dashboard's
PromQL runs against real Prometheus in test_promql_queries.py.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from collector_stack import COLLECTOR_DIR, REPO

from otel_mlmon import semconv

GRAFANA_DIR = COLLECTOR_DIR / "grafana"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yaml"
DASHBOARDS_PROVIDER = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yaml"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "ml-model.json"

DATASOURCES = {
    source["uid"]: source
    for source in yaml.safe_load(DATASOURCES_FILE.read_text(encoding="utf-8"))[
        "datasources"
    ]
}
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
PANELS = {
    panel["title"]: panel for panel in DASHBOARD["panels"] if panel["type"] != "row"
}
FLAG_EVENTS = (
    semconv.ML_DRIFT_DETECTED,
    semconv.ML_PREDICTION_LOW_CONFIDENCE,
    semconv.ML_INPUT_OUT_OF_RANGE,
)


def strings(value: Any) -> Iterator[str]:
    """Yield every string inside nested dicts and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_datasource_uids_and_types() -> None:
    """Prometheus, Tempo and Loki are provisioned with fixed uids."""
    assert {uid: source["type"] for uid, source in DATASOURCES.items()} == {
        "prometheus": "prometheus",
        "tempo": "tempo",
        "loki": "loki",
    }


def test_datasource_links_point_to_provisioned_uids() -> None:
    """Every datasourceUid inside a data source's settings names a provisioned one."""
    referenced = set()
    for source in DATASOURCES.values():
        text = json.dumps(source["jsonData"])
        referenced |= set(re.findall(r'"datasourceUid": "([^"]+)"', text))
    assert referenced == {"prometheus", "tempo", "loki"}


def test_exemplars_link_to_tempo() -> None:
    """Prometheus exemplars with the label trace_id open in Tempo."""
    destinations = DATASOURCES["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destinations == [{"name": "trace_id", "datasourceUid": "tempo"}]


def test_tempo_links_to_logs_and_metrics() -> None:
    """Tempo spans link to their Loki records by trace id and to model metrics."""
    settings = DATASOURCES["tempo"]["jsonData"]
    logs = settings["tracesToLogsV2"]
    assert logs["datasourceUid"] == "loki"
    assert "trace_id=" in logs["query"]
    metrics = settings["tracesToMetrics"]
    assert metrics["datasourceUid"] == "prometheus"
    tags = {tag["key"]: tag["value"] for tag in metrics["tags"]}
    assert tags[semconv.ML_MODEL_NAME] == "ml_model_name"
    assert tags["service.name"] == "job"


def test_loki_derived_field_opens_trace() -> None:
    """Loki's trace_id structured metadata becomes a link to the Tempo trace."""
    fields = DATASOURCES["loki"]["jsonData"]["derivedFields"]
    assert fields == [
        {
            "name": "TraceID",
            "matcherType": "label",
            "matcherRegex": "trace_id",
            "datasourceUid": "tempo",
            "url": "$${__value.raw}",
            "urlDisplayLabel": "Open trace in Tempo",
        }
    ]


def test_provisioning_dollars_escaped() -> None:
    """Every $ meant for Grafana is written $$, so provisioning does not expand it as an env var."""
    source = yaml.safe_load(DATASOURCES_FILE.read_text(encoding="utf-8"))
    for value in strings(source):
        unescaped = re.sub(r"\$\$", "", value)
        assert "$" not in unescaped, f"unescaped $ in {value!r}"


def test_dashboard_provider_path_is_compose_mount() -> None:
    """The provider reads dashboards from the folder docker-compose.yml mounts them on."""
    provider = yaml.safe_load(DASHBOARDS_PROVIDER.read_text(encoding="utf-8"))[
        "providers"
    ][0]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./collector/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./collector/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_dashboard_panels_use_provisioned_datasources() -> None:
    """Every panel and target names a provisioned data source uid."""
    for panel in PANELS.values():
        assert panel["datasource"]["uid"] in DATASOURCES, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in DATASOURCES, panel["title"]


def test_dashboard_panel_ids_unique() -> None:
    """Panel ids are unique, as Grafana requires for links and edits."""
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "title",
    [
        "Predictions per second",
        "Error rate",
        "Prediction latency p50 / p95 / p99",
        "Confidence distribution",
        "Low-confidence rate",
        "Drift score per feature (PSI)",
        "Review queue: low-confidence predictions",
        "Flagged predictions in Tempo",
    ],
)
def test_dashboard_has_panel(title: str) -> None:
    """The dashboard has the panel, and its description states the question it is for."""
    assert title in PANELS
    assert "Answers:" in PANELS[title]["description"] or "Tempo" in title


def test_latency_panel_shows_exemplars() -> None:
    """Each latency quantile query requests exemplars from Prometheus."""
    targets = PANELS["Prediction latency p50 / p95 / p99"]["targets"]
    assert [target["expr"].split(",")[0] for target in targets] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
    ]
    assert all(target["exemplar"] is True for target in targets)


def test_review_queue_selects_low_confidence_records() -> None:
    """The Loki query filters on the attribute only low-confidence records carry."""
    panel = PANELS["Review queue: low-confidence predictions"]
    expr = panel["targets"][0]["expr"]
    # Loki turns attribute dots into underscores in structured metadata.
    assert f'{semconv.ML_PREDICTION_CONFIDENCE.replace(".", "_")} != ""' in expr
    assert panel["type"] == "logs"


def test_tempo_search_finds_flag_events() -> None:
    """The TraceQL of the flagged-predictions panel and link names every flag event."""
    query = PANELS["Flagged predictions in Tempo"]["targets"][0]["query"]
    for event in FLAG_EVENTS:
        assert f'event:name = "{event}"' in query
    assert 'span.ml.model.name =~ ".+" && status = error' in query
    link = urllib.parse.unquote(DASHBOARD["links"][0]["url"])
    assert link.startswith("/explore?")
    assert json.dumps(query)[1:-1] in link
