"""Pure logic of `make bench`'s side-by-side phase (hack/bench_kserve.py): the same service for both
controllers, KServe's configuration, and who wrote what according to the API server.

Writes are attributed from the API server's audit log (hack/localcluster.py records every write at
Metadata level with its user agent): `apiserver_request_total` has no user or user-agent label, so by
verb/resource alone a controller's Deployment writes cannot be told from kube-controller-manager's
(deployments/status) or the benchmark client's creates. The metrics' delta by resource is kept beside it
as a cross-check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})  # the audit log's verbs
METRIC_WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"})  # the metrics'
IMAGE = "registry.example/bench:1"
# One predictor: the image, requests and replicas of hack/bench.py's service() (cpu 0.1, memory 256 MiB,
# one instance); our operator requests CPU and requests and limits memory, so KServe's container does too.
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}}
KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
KSERVE_LABEL = "serving.kserve.io/inferenceservice"  # on the Deployment KServe makes for a service
MAX_AUDIT_LINE = 1 << 20  # one audit event at Metadata level is about 1 KB: longer lines are not read


def kserve_service(name: str) -> dict[str, Any]:
    """KServe's InferenceService for the benchmark's service: one custom-container predictor, 1 replica,
    raw Deployment ("Standard") mode, no autoscaler (ours makes no HPA for a fixed instance count)."""
    return {"apiVersion": f"{KSERVE_GROUP}/{KSERVE_VERSION}", "kind": "InferenceService",
            "metadata": {"name": name, "annotations": {"serving.kserve.io/deploymentMode": "Standard",
                                                       "serving.kserve.io/autoscalerClass": "none"}},
            "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 1, "containers": [{
                "name": "kserve-container", "image": IMAGE,
                "ports": [{"containerPort": 8080, "protocol": "TCP"}], "resources": RESOURCES}]}}}


def kserve_ready(obj: Mapping[str, Any]) -> bool:
    """KServe's own readiness: the InferenceService's Ready condition is True."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def kserve_config_map(module_config_map: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """KServe's `inferenceservice-config` ConfigMap from its module (config/configmap/inferenceservice.yaml),
    set for raw Deployments without Knative, Istio or ingress: `deploy.defaultDeploymentMode: Standard`,
    `ingress.disableIngressCreation` and `ingress.disableIstioVirtualHost` true, Gateway API off."""
    data = dict(module_config_map.get("data") or {})
    deploy = json.loads(data.get("deploy") or "{}")
    deploy["defaultDeploymentMode"] = "Standard"
    ingress = json.loads(data.get("ingress") or "{}")
    ingress.update({"disableIngressCreation": True, "disableIstioVirtualHost": True, "enableGatewayApi": False})
    data["deploy"] = json.dumps(deploy, indent=2, sort_keys=True)
    data["ingress"] = json.dumps(ingress, indent=2, sort_keys=True)
    data.pop("_example", None)  # commented documentation, never parsed by the controller
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": module_config_map["metadata"]["name"], "namespace": namespace}, "data": data}


def audit_writes(lines: Iterable[str], agent_prefix: str) -> dict[str, Any]:
    """Completed writes of the audit log lines whose user agent starts with `agent_prefix`: total, by
    resource (with subresource), and how many the API server refused (status code >= 400). Dry-run requests
    (`dryRun=All` in the request URI: KServe's manager sends one before some updates) change nothing and are
    counted apart, not as writes."""
    by_resource: dict[str, int] = {}
    refused = dry_run = 0
    needle = f'"userAgent":"{agent_prefix}'
    for line in lines:
        if len(line) > MAX_AUDIT_LINE or needle not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the last line may be half written
        if not isinstance(event, dict) or event.get("stage") != "ResponseComplete":
            continue
        if event.get("verb") not in WRITE_VERBS or not str(event.get("userAgent", "")).startswith(agent_prefix):
            continue
        if "dryRun=" in str(event.get("requestURI", "")):
            dry_run += 1
            continue
        ref = event.get("objectRef") or {}
        resource = str(ref.get("resource", "")) + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        by_resource[resource] = by_resource.get(resource, 0) + 1
        code = (event.get("responseStatus") or {}).get("code", 0)
        if isinstance(code, int) and code >= 400:
            refused += 1
    return {"total": sum(by_resource.values()), "by_resource": dict(sorted(by_resource.items())), "refused": refused,
            "dry_run": dry_run}


def request_totals(metrics_text: str) -> dict[str, float]:
    """`apiserver_request_total` write counters summed by resource[/subresource], from /metrics text."""
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if not line.startswith("apiserver_request_total{") or "}" not in line:
            continue
        labels = _labels(line[line.index("{") + 1:line.rindex("}")])
        if labels.get("verb", "") not in METRIC_WRITE_VERBS or labels.get("dry_run"):
            continue  # a dry run writes nothing
        resource = labels.get("resource", "") + (f"/{labels['subresource']}" if labels.get("subresource") else "")
        try:
            out[resource] = out.get(resource, 0.0) + float(line.rsplit(" ", 1)[1])
        except ValueError:
            continue
    return out


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value}; comments and malformed lines are skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                continue
    return out


def mean_pass_ms(metrics: Mapping[str, float], histogram: str, **labels: str) -> float | None:
    """Mean duration (ms) of one reconcile from a seconds histogram's _sum and _count, over the series whose
    labels include `labels`; None before any pass."""
    total = count = 0.0
    for key, value in metrics.items():
        name, _, rest = key.partition("{")
        found = _labels(rest.rstrip("}")) if rest else {}
        if any(found.get(k) != v for k, v in labels.items()):
            continue
        if name == f"{histogram}_sum":
            total += value
        elif name == f"{histogram}_count":
            count += value
    return round(1000 * total / count, 2) if count else None


def _labels(text: str) -> dict[str, str]:
    """Prometheus label pairs `a="x",b="y"` (values here never hold quotes or commas)."""
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def counter_delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    """What grew between two readings of the same counters (a counter reset reads as its new value)."""
    out = {}
    for key, value in after.items():
        grown = value - before.get(key, 0.0) if value >= before.get(key, 0.0) else value
        if grown:
            out[key] = grown
    return dict(sorted(out.items()))


def merge_results(base: Mapping[str, Any], update: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """A run's results over latest.json's: phases and their figures replace their own only, and maps by scale
    ({"1000": ..., "10000": ...}) keep the scales this run did not measure; any other map is replaced
    whole (a counter breakdown of an older run must not linger beside this run's)."""
    out = dict(base)
    for key, value in update.items():
        old = out.get(key)
        mergeable = isinstance(value, Mapping) and isinstance(old, Mapping) and (
            depth < 1 or all(str(k).isdigit() for k in value))
        out[key] = merge_results(old, value, depth + 1) if mergeable else value  # type: ignore[arg-type]
    return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (as hack/bench.py's pct); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def side_by_side(results: Mapping[str, Any], sides: tuple[str, ...] = ("ours", "kserve")) -> str:
    """The comparison as a text table: one row per figure, one column per controller."""
    rows = [("every Deployment exists (s)", ("burst", "deployments_s")),
            ("every service ready (s)", ("burst", "ready_s")),
            ("writes per service (audit log)", ("writes", "per_service")),
            ("peak RSS (MB)", ("memory", "peak_rss_mb")),
            ("mean reconcile pass (ms)", ("burst", "pass_ms_mean")),
            ("create -> Deployment p50 (ms)", ("latency", "create_to_deployment_ms", "50")),
            ("create -> Deployment p99 (ms)", ("latency", "create_to_deployment_ms", "99"))]
    width = max(len(r[0]) for r in rows) + 2
    lines = ["".ljust(width) + "".join(s.rjust(12) for s in sides)]
    for label, path in rows:
        cells = []
        for side in sides:
            value: Any = results.get(side, {})
            for key in path:
                value = value.get(key) if isinstance(value, Mapping) else None
            cells.append(("-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)).rjust(12))
        lines.append(label.ljust(width) + "".join(cells))
    return "\n".join(lines)


# a repeated burst phase's medians
RUN_SECTIONS = ("burst", "restart", "latency", "latency_under_churn", "latency_ceiling")


def median_of_runs(runs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Several runs of the burst phase (--runs) as one result: in each of RUN_SECTIONS every number is the
    median of the runs (the middle run; the lower middle of an even count) and `runs` lists every run's
    figures in order, so the spread is shown; other sections (writes, memory) are the last run's, and memory
    lists every run's peak RSS by scale (`rss_mb_at_services_by_run`: run 1 a fresh process, each later run's
    process the one its previous run restarted, after that run's churn and latency phases)."""
    if not runs:
        return {}
    out: dict[str, Any] = dict(runs[-1])
    for section in RUN_SECTIONS:
        present = [run[section] for run in runs if section in run]
        if present:
            out[section] = _median_section(present) | {"runs": [_without_runs(s) for s in present]}
    memories = [run["memory"].get("rss_mb_at_services", {}) for run in runs if "memory" in run]
    if memories:
        out["memory"] = dict(out.get("memory") or {}) | {"rss_mb_at_services_by_run": {
            scale: [memory.get(scale) for memory in memories] for scale in memories[-1]}}
    return out


def _median_section(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, Mapping):
        return {k: _median_section([v[k] for v in values if isinstance(v, Mapping) and k in v])
                for k in first if k != "runs"}
    if isinstance(first, bool) or not all(isinstance(v, int | float) for v in values):
        return first
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def _without_runs(section: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k != "runs"}
