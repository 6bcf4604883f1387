"""Every PromQL expression of the dashboard, data sources and alert rules returns data.

They run on the real Prometheus of the pipeline stack, loaded with traffic
through the built Collector. otlp_traffic.py's degraded and idle models put
every alert condition in a firing state, so each alert expression, threshold
included, must return at least one series.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from collector_stack import COLLECTOR_DIR, PROMETHEUS_DIR, PipelineStack
from promql_sources import (
    Expression,
    check_expression,
    dashboard_expressions,
    datasource_expressions,
    metric_selectors,
    rule_expressions,
)

DASHBOARD = COLLECTOR_DIR / "grafana" / "dashboards" / "ml-model.json"
DATASOURCES = (
    COLLECTOR_DIR / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
)
ALERTS = PROMETHEUS_DIR / "alerts.yml"

# The span attributes Grafana would turn into matchers for a fraud_clf span.
SPAN_TAGS = 'job="ml-traffic", ml_model_name="fraud_clf", ml_model_version="2"'

EXPRESSIONS = [
    *dashboard_expressions(DASHBOARD),
    *datasource_expressions(DATASOURCES, SPAN_TAGS),
    *rule_expressions(ALERTS),
]


def test_expressions_found() -> None:
    """The dashboard and the rule file yield their panels' and rules' expressions."""
    sources = {expression.source for expression in EXPRESSIONS}
    assert len([s for s in sources if s.startswith("alerts.yml")]) == 5
    assert len([s for s in sources if s.startswith("ml-model.json panel")]) >= 9
    assert "ml-model.json variable 'model'" in sources
    assert len([s for s in sources if s.startswith("datasources.yaml Tempo")]) == 2


def test_selectors_parsed_from_expression() -> None:
    """Selector extraction skips functions, aggregations, label lists and numbers."""
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="1"}[5m] offset 5m)))'
        " > 1e3 and on (job) b / ignoring (c) group_left sum without (d) (c_total)"
    )
    assert metric_selectors(expr) == ['a_bucket{x="1"}', "b", "c_total"]


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=lambda e: e.source)
def test_expression_returns_data(
    pipeline: PipelineStack, expression: Expression
) -> None:
    """The expression and each metric selector in it return series from real traffic."""
    problems = check_expression(pipeline.prometheus, expression)
    assert not problems, "\n".join(problems)


def test_rule_with_misspelt_metric_fails(
    pipeline: PipelineStack, tmp_path: Path
) -> None:
    """A rule file whose metric name has a typo is reported, naming the selector."""
    misspelt = tmp_path / "alerts.yml"
    text = ALERTS.read_text(encoding="utf-8")
    misspelt.write_text(
        text.replace(
            "ml_model_low_confidence_predictions_total",
            "ml_model_low_confidence_prediction_total",
        ),
        encoding="utf-8",
    )
    problems = [
        problem
        for expression in rule_expressions(misspelt)
        for problem in check_expression(pipeline.prometheus, expression)
    ]
    assert any(
        "MLModelHighLowConfidenceRate: selector ml_model_low_confidence_prediction_total matches no series"
        in problem
        for problem in problems
    ), problems
    assert any(
        "MLModelHighLowConfidenceRate: returned no data" in problem
        for problem in problems
    ), problems


def test_rule_with_misspelt_label_fails(
    pipeline: PipelineStack, tmp_path: Path
) -> None:
    """A rule that filters on a label the pipeline does not produce is reported."""
    misspelt = tmp_path / "alerts.yml"
    text = ALERTS.read_text(encoding="utf-8")
    misspelt.write_text(
        text.replace('ml_drift_statistic="psi"', 'drift_statistic="psi"'),
        encoding="utf-8",
    )
    problems = [
        problem
        for expression in rule_expressions(misspelt)
        for problem in check_expression(pipeline.prometheus, expression)
    ]
    assert problems == [
        (
            "alerts.yml rule MLFeatureDriftSustained: returned no data: "
            'ml_feature_drift_score_ratio{drift_statistic="psi"} > 0.2'
        ),
        (
            "alerts.yml rule MLFeatureDriftSustained: selector "
            'ml_feature_drift_score_ratio{drift_statistic="psi"} matches no series'
        ),
    ]
