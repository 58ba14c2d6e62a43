"""hack/bench_compare.py: the side-by-side benchmark's attribution of writes and KServe's configuration."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
import bench_compare as bc  # noqa: E402

OURS = "inference-operator/0.1.0 (host-1234)"
KSERVE = "kserve-manager/v0.0.0 (linux/amd64) kubernetes/$Format"


def audit(agent: str, verb: str, resource: str, code: int = 201, subresource: str | None = None,
          stage: str = "ResponseComplete") -> str:
    ref = {"resource": resource, "namespace": "bench-vs-x", "name": "s00001"}
    if subresource:
        ref["subresource"] = subresource
    # the API server writes compact JSON, one event a line
    return json.dumps({"kind": "Event", "level": "Metadata", "stage": stage, "verb": verb, "userAgent": agent,
                       "objectRef": ref, "responseStatus": {"code": code}}, separators=(",", ":")) + "\n"


def test_audit_writes_count_one_controller_by_user_agent():
    lines = [
        audit(KSERVE, "patch", "inferenceservices"),  # finalizer
        audit(KSERVE, "create", "deployments"),
        audit(KSERVE, "create", "services"),
        audit(KSERVE, "update", "inferenceservices", subresource="status"),
        audit(KSERVE, "create", "events"),
        audit(KSERVE, "update", "inferenceservices", code=409, subresource="status"),  # refused: still sent
        audit(KSERVE, "create", "deployments", stage="ResponseStarted"),  # not complete: not counted twice
        audit(KSERVE, "get", "configmaps"),  # a read
        audit("kube-controller-manager/v1.35.4 (linux/amd64) kubernetes/abc", "update", "deployments",
              subresource="status"),
        audit("python/3.13 kubernetes_asyncio", "create", "inferenceservices"),  # the benchmark client
        audit(OURS, "create", "deployments"),
        '{"kind":"Event","userAgent":"kserve-manager/v0.0.0", "half a line',
    ]
    writes = bc.audit_writes(lines, "kserve-manager/")
    assert writes == {"total": 6, "refused": 1, "dry_run": 0, "by_resource": {
        "deployments": 1, "events": 1, "inferenceservices": 1, "inferenceservices/status": 2, "services": 1}}
    assert bc.audit_writes(lines, "inference-operator/") == {"total": 1, "refused": 0, "dry_run": 0,
                                                             "by_resource": {"deployments": 1}}


def test_dry_run_updates_are_not_writes():
    dry = json.loads(audit(KSERVE, "update", "deployments"))
    dry["requestURI"] = "/apis/apps/v1/namespaces/bench/deployments/s00001-predictor?dryRun=All"
    lines = [json.dumps(dry, separators=(",", ":")), audit(KSERVE, "update", "deployments")]
    assert bc.audit_writes(lines, "kserve-manager/") == {"total": 1, "refused": 0, "dry_run": 1,
                                                         "by_resource": {"deployments": 1}}
    dry_metric = metric("200", "apps", "deployments", "", "PUT", 5).replace('dry_run=""', 'dry_run="All"')
    assert bc.request_totals(METRICS + dry_metric + "\n") == bc.request_totals(METRICS)


def test_audit_writes_skip_oversized_lines():
    huge = audit(KSERVE, "create", "deployments").replace('"level"', '"pad":"' + "x" * bc.MAX_AUDIT_LINE + '","level"')
    assert bc.audit_writes([huge], "kserve-manager/")["total"] == 0


def metric(code: str, group: str, resource: str, subresource: str, verb: str, value: int) -> str:
    return (f'apiserver_request_total{{code="{code}",component="apiserver",dry_run="",group="{group}",'
            f'resource="{resource}",scope="resource",subresource="{subresource}",verb="{verb}",version="v1"}} {value}')


METRICS = "\n".join([
    "# HELP apiserver_request_total [STABLE] Counter of apiserver requests",
    "# TYPE apiserver_request_total counter",
    metric("201", "apps", "deployments", "", "POST", 10),
    metric("200", "apps", "deployments", "status", "PUT", 7),
    metric("409", "apps", "deployments", "", "POST", 2),
    metric("200", "apps", "deployments", "", "LIST", 99),
    metric("200", "", "services", "", "APPLY", 3),
    'apiserver_request_total_other{resource="services",verb="POST"} 50',
]) + "\n"


def test_request_totals_sum_writes_by_resource_and_subresource():
    assert bc.request_totals(METRICS) == {"deployments": 12.0, "deployments/status": 7.0, "services": 3.0}


def test_counter_delta_keeps_growth_and_reads_a_reset_as_new():
    before = {"deployments": 12.0, "services": 3.0, "events": 40.0}
    after = {"deployments": 20.0, "services": 3.0, "events": 5.0, "pods": 1.0}
    assert bc.counter_delta(after, before) == {"deployments": 8.0, "events": 5.0, "pods": 1.0}


@pytest.fixture
def module_config_map() -> dict:
    # the shape of config/configmap/inferenceservice.yaml in kserve v0.16.0: JSON documents per key
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inferenceservice-config",
                                                                  "namespace": "kserve"},
            "data": {"_example": "# commented\n{ not json",
                     "deploy": '{\n  "defaultDeploymentMode": "Serverless"\n}',
                     "ingress": '{   \n "enableGatewayApi": false, "ingressDomain": "example.com",\n'
                                ' "disableIstioVirtualHost": false, "disableIngressCreation": false }',
                     "storageInitializer": '{"image": "kserve/storage-initializer:latest"}'}}


def test_kserve_config_map_selects_raw_deployments_without_ingress(module_config_map):
    cm = bc.kserve_config_map(module_config_map, "kserve")
    assert cm["metadata"] == {"name": "inferenceservice-config", "namespace": "kserve"}
    assert json.loads(cm["data"]["deploy"]) == {"defaultDeploymentMode": "Standard"}
    assert json.loads(cm["data"]["ingress"]) == {"enableGatewayApi": False, "ingressDomain": "example.com",
                                                 "disableIstioVirtualHost": True, "disableIngressCreation": True}
    assert cm["data"]["storageInitializer"] == module_config_map["data"]["storageInitializer"]
    assert "_example" not in cm["data"]
    assert json.loads(module_config_map["data"]["deploy"])["defaultDeploymentMode"] == "Serverless"  # not mutated


def test_kserve_service_is_the_benchmarks_service():
    isvc = bc.kserve_service("s00001")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 1)
    [container] = predictor["containers"]
    assert container["image"] == "registry.example/bench:1"
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}}


def test_kserve_ready_reads_the_ready_condition():
    assert bc.kserve_ready({"status": {"conditions": [{"type": "PredictorReady", "status": "True"},
                                                      {"type": "Ready", "status": "True"}]}})
    assert not bc.kserve_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert not bc.kserve_ready({"metadata": {"name": "s"}})


def test_side_by_side_prints_each_figure_per_controller():
    table = bc.side_by_side({"ours": {"burst": {"deployments_s": 4.2, "ready_s": 5.0},
                                      "writes": {"per_service": 6},
                                      "latency": {"create_to_deployment_ms": {"50": 7.5, "99": 30.0}}},
                             "kserve": {"burst": {"deployments_s": 40.0}, "memory": {"peak_rss_mb": 80.5}}})
    rows = {line[:32].strip(): line[32:].split() for line in table.splitlines()[1:]}
    assert rows["every Deployment exists (s)"] == ["4.2", "40"]
    assert rows["every service ready (s)"] == ["5", "-"]
    assert rows["writes per service (audit log)"] == ["6", "-"]
    assert rows["peak RSS (MB)"] == ["-", "80.5"]
    assert rows["create -> Deployment p99 (ms)"] == ["30", "-"]


def test_audit_lines_after_a_mark_survive_a_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API server rotates audit.log at 100 MB into audit-<time>.log: the writes after a mark taken before
    the rotation are the rest of the rotated file and all of the new one."""
    import benchproc
    import localcluster
    log = tmp_path / "audit.log"
    monkeypatch.setattr(localcluster, "AUDIT_LOG", log)
    log.write_text("before\n")
    mark = benchproc.audit_mark()
    with log.open("a") as out:
        out.write("after-1\n")
    log.rename(tmp_path / "audit-2026-12-01T10-00-00.000.log")
    log.write_text("after-2\n")
    assert list(benchproc.audit_lines_since(mark)) == ["after-1\n", "after-2\n"]
    assert list(benchproc.audit_lines_since(benchproc.audit_mark())) == []


def test_mean_pass_time_from_each_controllers_histogram():
    """The growth phase reads one reconcile's mean duration from each controller's own metrics text."""
    kserve = bc.parse_metrics(
        "# HELP controller_runtime_reconcile_time_seconds Length of time per reconciliation per controller\n"
        'controller_runtime_reconcile_time_seconds_sum{controller="inferenceservice"} 3.0\n'
        'controller_runtime_reconcile_time_seconds_count{controller="inferenceservice"} 1500\n'
        'controller_runtime_reconcile_time_seconds_sum{controller="trainedmodel"} 90\n'
        'controller_runtime_reconcile_time_seconds_count{controller="trainedmodel"} 10\n'
        "garbage line without a value x\n")
    assert bc.mean_pass_ms(kserve, "controller_runtime_reconcile_time_seconds", controller="inferenceservice") == 2.0
    ours = bc.parse_metrics("inference_operator_reconcile_duration_seconds_sum 5.0\n"
                            "inference_operator_reconcile_duration_seconds_count 250.0\n")
    assert bc.mean_pass_ms(ours, "inference_operator_reconcile_duration_seconds") == 20.0
    assert bc.mean_pass_ms({}, "inference_operator_reconcile_duration_seconds") is None


def test_merged_results_keep_other_scales_but_not_an_older_runs_breakdown():
    latest = {"memory": {"rss_mb_at_services": {"1000": 142.1, "10000": 580.9}},
              "writes": {"operator_per_service": {"apply InferenceService": 2.0, "apply Deployment": 1.0}},
              "growth": {"ours": {"100": {"peak_rss_mb": 80}}}, "burst": {"ratio": 0.81, "services": 1000}}
    run = {"memory": {"rss_mb_at_services": {"1000": 143.0}},
           "writes": {"operator_per_service": {"patch InferenceService": 2.0, "apply Deployment": 1.0}},
           "growth": {"ours": {"2000": {"peak_rss_mb": 190}}}, "burst": {"ratio": 0.88}}
    merged = bc.merge_results(latest, run)
    assert merged["memory"]["rss_mb_at_services"] == {"1000": 143.0, "10000": 580.9}
    assert merged["writes"]["operator_per_service"] == {"patch InferenceService": 2.0, "apply Deployment": 1.0}
    assert merged["growth"]["ours"] == {"100": {"peak_rss_mb": 80}, "2000": {"peak_rss_mb": 190}}
    assert merged["burst"] == {"ratio": 0.88, "services": 1000}


class TestMedianOfRuns:
    def test_each_figure_is_the_median_and_every_run_is_kept(self) -> None:
        runs = [{"burst": {"ratio": r, "deployments": d, "services": 1000},
                 "latency": {"create_to_deployment_ms": {"50": p50, "99": p99}}, "restart": {"seconds": s}}
                for r, d, p50, p99, s in ((0.8, 140.0, 300.0, 900.0, 5.0), (0.95, 120.0, 200.0, 2000.0, 6.0),
                                          (0.9, 130.0, 250.0, 1000.0, 7.0))]

        merged = bc.median_of_runs(runs)

        assert merged["burst"]["ratio"] == 0.9 and merged["burst"]["deployments"] == 130.0
        assert merged["latency"]["create_to_deployment_ms"] == {"50": 250.0, "99": 1000.0}  # each quantile's own
        assert [run["ratio"] for run in merged["burst"]["runs"]] == [0.8, 0.95, 0.9]
        assert merged["restart"]["seconds"] == 6.0 and [run["seconds"] for run in merged["restart"]["runs"]] == [
            5.0, 6.0, 7.0]

    def test_memory_is_the_last_runs_with_every_runs_peak_listed(self) -> None:
        runs = [{"memory": {"rss_mb_at_services": {"1000": rss}, "rss_mb_now_idle": {"1000": rss}}}
                for rss in (121.0, 127.0, 125.0)]

        merged = bc.median_of_runs(runs)

        assert merged["memory"]["rss_mb_at_services"] == {"1000": 125.0}
        assert merged["memory"]["rss_mb_at_services_by_run"] == {"1000": [121.0, 127.0, 125.0]}

    def test_one_run_is_itself_with_its_run_listed(self) -> None:
        merged = bc.median_of_runs([{"burst": {"ratio": 0.7, "services": 200}}])

        assert merged["burst"] == {"ratio": 0.7, "services": 200, "runs": [{"ratio": 0.7, "services": 200}]}
