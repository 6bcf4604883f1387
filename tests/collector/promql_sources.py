"""Find the PromQL in dashboards and rule files, and check it against Prometheus.

A dashboard or rule that names a metric or label the pipeline never produces
shows no data and raises no error. So the tests evaluate every expression on
a Prometheus loaded with real traffic. They also evaluate each metric
selector alone, to report which name matched nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector_stack import PrometheusServer, PromQLError

# Values for Grafana's variables when a dashboard query is run outside
# Grafana: every app and model, and a window that contains several 1 s scrapes.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$job": ".*",
    "$model": ".*",
}

_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")

# Tokens of PromQL: strings, range and subquery brackets, label matchers,
# numbers and durations, identifiers, and any other single character.
_TOKEN = re.compile(
    r'"(?:\\.|[^"\\])*"|\[[^\]]*\]|\{[^}]*\}|\d[\w.]*|[A-Za-z_:][A-Za-z0-9_:]*|\S'
)
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right"}
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile",
}  # fmt: skip


@dataclass(frozen=True)
class Expression:
    """One PromQL expression and where it came from."""

    source: str
    expr: str


def dashboard_expressions(
    path: Path, prometheus_uid: str = "prometheus"
) -> Iterator[Expression]:
    """Yield the Prometheus targets and variable queries of a Grafana dashboard."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            datasource = target.get("datasource") or panel.get("datasource") or {}
            if datasource.get("uid") == prometheus_uid and target.get("expr"):
                yield Expression(
                    f"{path.name} panel '{panel['title']}' {target['refId']}",
                    substitute_variables(target["expr"]),
                )
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("datasource", {}).get("uid") != prometheus_uid or not query:
            continue
        match = _LABEL_VALUES.match(query)
        selector = match.group("selector") if match else query
        yield Expression(
            f"{path.name} variable '{variable['name']}'", substitute_variables(selector)
        )


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def substitute_variables(expr: str) -> str:
    # Longest names first, so $__rate_interval is not read as $__range...
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    return expr


def datasource_expressions(path: Path, tags: str) -> Iterator[Expression]:
    """Yield the Tempo data source's trace-to-metrics queries.

    Grafana fills ``$__tags`` with matchers built from the span's attributes,
    and here ``tags`` replaces it. Provisioning files write ``$`` as ``$$``.
    """
    import yaml

    provisioning = yaml.safe_load(path.read_text(encoding="utf-8"))
    for source in provisioning["datasources"]:
        links = source.get("jsonData", {}).get("tracesToMetrics", {})
        for query in links.get("queries", []):
            expr = query["query"].replace("$$", "$").replace("$__tags", tags)
            yield Expression(
                f"{path.name} {source['name']} query '{query['name']}'", expr
            )


def rule_expressions(path: Path) -> Iterator[Expression]:
    """Yield the expression of every alerting and recording rule in a rule file."""
    import yaml

    rules = yaml.safe_load(path.read_text(encoding="utf-8"))
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            yield Expression(f"{path.name} rule {name}", rule["expr"])


def metric_selectors(expr: str) -> list[str]:
    """Return the vector selectors (metric name and matchers) of an expression."""
    tokens = _TOKEN.findall(expr)
    selectors = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in _LABEL_LISTS and following == "(":
            i = tokens.index(")", i) + 1
            continue
        is_name = re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", token) is not None
        is_call = following == "(" or (
            token in _AGGREGATIONS and following in _LABEL_LISTS
        )
        if not is_name or token in _KEYWORDS or token in _LABEL_LISTS or is_call:
            i += 1
            continue
        if following.startswith("{"):
            selectors.append(token + following)
            i += 2
        else:
            selectors.append(token)
            i += 1
    return selectors


def check_expression(prometheus: PrometheusServer, expression: Expression) -> list[str]:
    """Evaluate an expression and each of its selectors; return the problems found."""
    problems = []
    try:
        if not prometheus.query(expression.expr):
            problems.append(f"{expression.source}: returned no data: {expression.expr}")
    except PromQLError as error:
        problems.append(f"{expression.source}: rejected: {error}")
    for selector in metric_selectors(expression.expr):
        try:
            found = prometheus.query(f"count({selector})")
        except PromQLError as error:
            problems.append(
                f"{expression.source}: selector {selector} rejected: {error}"
            )
            continue
        if not found:
            problems.append(
                f"{expression.source}: selector {selector} matches no series"
            )
    return problems
