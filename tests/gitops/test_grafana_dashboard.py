"""docs/grafana-dashboard.json only queries series the code exports, with labels those series carry.

The metric names come from the source (every prometheus_client Counter/Gauge/Histogram/Summary constructed
under operator/inference_operator), not from a list kept here, so a renamed metric breaks this test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import promql_parser
import pytest

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "docs" / "grafana-dashboard.json"
SOURCE = REPO / "operator" / "inference_operator"

# Labels Prometheus adds to every scraped series (Kubernetes service discovery, ServiceMonitor defaults).
TARGET_LABELS = {"job", "instance", "pod", "namespace", "service", "container", "endpoint"}
CONSTRUCTOR = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"")


def _call_text(text: str, start: int) -> str:
    """The source of a call from its opening parenthesis to the matching one."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i + 1]
    return text[start:]


def _labels(call: str, module: str) -> set[str]:
    """Label names in the call's list literals; a `name` or `*name` argument expands `name = [...]` in the module."""
    def names(items: str) -> set[str]:
        return set(re.findall(r"\"([a-zA-Z_][a-zA-Z0-9_]*)\"", items))

    def resolve(var: str) -> set[str]:
        assigned = re.search(rf"\b{var}\s*=\s*\[([^\]]*)\]", module)
        assert assigned, f"cannot resolve {var} in {call!r}"
        return names(assigned.group(1))

    labels: set[str] = set()
    for items in re.findall(r"\[([^\[\]]*)\]", call):
        labels |= names(items)
        for var in re.findall(r"\*\s*([a-zA-Z_]\w*)", items):
            labels |= resolve(var)
    for var in re.findall(r"[(,]\s*([a-zA-Z_]\w*)\s*(?=[,)])", call):  # a bare positional argument
        if re.search(rf"\b{var}\s*=\s*\[", module):
            labels |= resolve(var)
    return labels


def exported_series() -> dict[str, set[str]]:
    """Every series name the code exposes on /metrics -> its label names (as prometheus_client names them)."""
    series: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        text = path.read_text()
        for match in CONSTRUCTOR.finditer(text):
            kind, name = match.groups()
            labels = _labels(_call_text(text, match.end(1)), text)
            if kind == "Counter":
                base = name.removesuffix("_total")
                names = {f"{base}_total": labels, f"{base}_created": labels}
            elif kind == "Histogram":
                names = {f"{name}_bucket": labels | {"le"}, f"{name}_sum": labels, f"{name}_count": labels,
                         f"{name}_created": labels}
            elif kind == "Summary":
                names = {name: labels | {"quantile"}, f"{name}_sum": labels, f"{name}_count": labels}
            else:
                names = {name: labels}
            for key, value in names.items():
                series.setdefault(key, set()).update(value)
    return series


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of the dashboard."""
    dash = json.loads(DASHBOARD.read_text())

    def walk(panels: list[dict]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                yield f"panel {panel['title']!r} target {target['refId']}", target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dash["panels"])
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            inner = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_]\w*)\)", query)
            assert inner, f"variable {var['name']}: expected label_values(selector, label), got {query!r}"
            yield f"variable {var['name']}", inner.group(1)
            yield f"variable {var['name']} label", f"sum by ({inner.group(2)}) ({inner.group(1)})"


GRAFANA_INTERVALS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")


def parse(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """([(metric, labels in its matchers)], labels named in by/without/on/ignoring/group_x clauses).

    Parsed by promql-parser (a syntax error fails the test); Grafana's interval variables become 5m first.
    """
    tree = promql_parser.parse(GRAFANA_INTERVALS.sub("5m", expr))
    metrics: list[tuple[str, set[str]]] = []
    grouping: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            labels = {m.name for m in node.matchers.matchers} - {"__name__"}
            assert node.name, f"a selector without a metric name: {node}"
            metrics.append((node.name, labels))
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier:
            grouping.update(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier:
            if node.modifier.matching:
                grouping.update(node.modifier.matching.labels)
            grouping.update(node.modifier.group_labels or [])

    promql_parser.walk(tree, visit)
    return metrics, grouping


EXPORTED = exported_series()
QUERIES = list(expressions())


def test_the_source_exports_the_documented_operator_metrics():
    for name in ("inference_operator_reconciles_total", "inference_operator_reconcile_duration_seconds_bucket",
                 "inference_operator_api_writes_total", "inference_operator_services",
                 "inference_operator_pending_reconciles"):
        assert name in EXPORTED, name
        assert name in (REPO / "README.md").read_text() or name.endswith("_bucket")
    assert EXPORTED["inference_operator_api_writes_total"] == {"kind", "verb"}


def test_the_dashboard_has_queries():
    assert len(QUERIES) > 15


def test_parser_sees_metrics_and_labels():
    metrics, grouping = parse('histogram_quantile(0.9, sum by (le, pod) (rate(a_bucket{job=~"$j", x!="y"}[5m])))'
                              ' / on (pod) group_left (x) sum(b) or vector(0)')
    assert metrics == [("a_bucket", {"job", "x"}), ("b", set())]
    assert grouping == {"le", "pod", "x"}
    with pytest.raises(ValueError):
        parse("sum(rate(a[5m])")


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[w for w, _ in QUERIES])
def test_every_query_uses_exported_series_and_their_labels(where: str, expr: str):
    metrics, grouping = parse(expr)
    assert metrics, f"{where}: no metric in {expr!r}"
    known: set[str] = set(TARGET_LABELS)
    for name, labels in metrics:
        assert name in EXPORTED, f"{where}: {name} is not exported by operator/inference_operator"
        unknown = labels - EXPORTED[name] - TARGET_LABELS
        assert not unknown, f"{where}: {name} has no label {sorted(unknown)}"
        known |= EXPORTED[name]
    assert grouping <= known, f"{where}: grouping by {sorted(grouping - known)}, which no series here carries"


def test_every_exported_metric_is_on_the_dashboard():
    used = {name for _, expr in QUERIES for name, _ in parse(expr)[0]}
    bases = {re.sub(r"_(bucket|sum|count|created)$", "", name) for name in used}
    missing = {re.sub(r"_(bucket|sum|count|created)$", "", name) for name in EXPORTED} - bases - {
        name.removesuffix("_total") for name in bases}
    missing = {name for name in missing if f"{name}_total" not in used}
    assert not missing, f"exported but not on the dashboard: {sorted(missing)}"


def test_panels_use_the_datasource_variable_and_unique_ids():
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
