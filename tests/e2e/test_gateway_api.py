"""Gateway API on the local cluster: the real CRDs (`make cluster-up` installs Gateway API's standard
channel and the v1 InferencePool CRD from the Go module proxy, hack/versions.env), so every HTTPRoute
the operator writes passes their schema and CEL rules. The operator follows the CRDs live: removed
and installed again while it runs, it stops and starts writing routes without a restart.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from services import Cluster, crd_gone, manifest, model, route_of

from conftest import _localcluster as localcluster

HTTPROUTES = "httproutes.gateway.networking.k8s.io"
LIVE_SECONDS = 15  # the "within seconds" for a CRD installed or removed while the operator runs


def weights(route: dict | None) -> dict[str, int]:
    return {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]} if route else {}


def test_weighted_httproute_follows_the_spec(cluster, crds, api, namespace, wait_for, operator, gateway_api):
    kube = Cluster(api, namespace, wait_for)
    created = kube.create(manifest("split", model("a", 70), model("b", 30), model("dark", 0)))
    kube.wait_status("split", "running")

    found = wait_for(lambda: route_of(api, namespace, "split"), 10, "the HTTPRoute")
    rule = found["spec"]["rules"][0]
    assert rule["matches"][0]["path"]["value"] == f"/v1/infers/{created['metadata']['uid']}"
    assert weights(found) == {"split-a": 70, "split-b": 30, "split-dark": 0}
    assert found["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]

    kube.replace_models("split", [model("a", 20), model("b", 80)])
    wait_for(lambda: weights(route_of(api, namespace, "split")) == {"split-a": 20, "split-b": 80}, 10,
             "the new weights on the route")
    kube.patch_spec("split", {"stopped": True})
    wait_for(lambda: route_of(api, namespace, "split") is None, 10, "the route of a stopped service to go")


def failed_passes(operator: Any) -> float:
    return operator.metrics().get('inference_operator_reconciles_total{result="error"}', 0.0)


def test_gateway_api_removed_and_installed_while_the_operator_runs(cluster, crds, api, namespace, wait_for,
                                                                   operator, gateway_api):
    """The session operator keeps running throughout: routes stop with the CRD (no failing pass, status
    still running) and come back within seconds of the CRD, for a service changed meanwhile too."""
    kube = Cluster(api, namespace, wait_for)
    kube.create(manifest("live", model("a", 60), model("b", 40)))
    kube.wait_status("live", "running")
    wait_for(lambda: weights(route_of(api, namespace, "live")) == {"live-a": 60, "live-b": 40}, 10, "the route")
    pid, errors = operator.proc.pid, failed_passes(operator)

    client.ApiextensionsV1Api(api).delete_custom_resource_definition(HTTPROUTES)
    wait_for(lambda: crd_gone(api, HTTPROUTES), 60, "the HTTPRoute CRD to be deleted")
    kube.replace_models("live", [model("a", 10), model("b", 90)])  # a pass with no Gateway API
    status = kube.wait_status("live", "running")
    assert [m["weight"] for m in status["models"]] == [10, 90]

    localcluster().install_gateway_crds()
    wait_for(lambda: weights(route_of(api, namespace, "live")) == {"live-a": 10, "live-b": 90}, LIVE_SECONDS,
             "the route written again once the CRD is back")
    assert operator.proc.pid == pid and operator.proc.poll() is None  # no restart, no crash
    assert failed_passes(operator) == errors  # no pass failed on writing to a resource that was gone
    assert kube.status("live")["status"] == "running"


def test_the_real_crds_at_the_pinned_versions(cluster, api, namespace, gateway_api):
    """Not a stand-in: the projects' own CRDs at hack/versions.env's versions, their CEL rules in force."""
    pinned = localcluster().versions()
    extensions = client.ApiextensionsV1Api(api)
    routes = extensions.read_custom_resource_definition(HTTPROUTES).metadata.annotations
    assert (routes["gateway.networking.k8s.io/bundle-version"], routes["gateway.networking.k8s.io/channel"]) == (
        pinned["GATEWAY_API_VERSION"], "standard")
    pools = extensions.read_custom_resource_definition("inferencepools.inference.networking.k8s.io")
    assert pools.metadata.annotations["inference.networking.k8s.io/bundle-version"] == \
        pinned["GATEWAY_API_INFERENCE_EXTENSION_VERSION"]
    bad = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "bad"},
           "spec": {"rules": [{"matches": [{"path": {"type": "Exact", "value": "/v1/infers/x"}}],
                               "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {
                                   "type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}]}]}}
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", bad)
    except client.ApiException as exc:
        assert exc.status == 422 and "exactly one PathPrefix match" in exc.body
    else:
        raise AssertionError("the HTTPRoute CRD's CEL rules let a ReplacePrefixMatch without a PathPrefix match in")


def refuse_routes(api: client.ApiClient, namespace: str) -> tuple[str, str]:
    """A ValidatingAdmissionPolicy, bound to the namespace, that refuses every HTTPRoute written there (as a
    cluster's own policy or a Gateway API implementation's webhook may): its name and its binding's."""
    objects = client.CustomObjectsApi(api)
    name = f"refuse-routes-{namespace}"
    objects.create_cluster_custom_object("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{"apiGroups": ["gateway.networking.k8s.io"],
                                                         "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                                                         "resources": ["httproutes"]}]},
                 "validations": [{"expression": "false", "message": "no HTTPRoute in this namespace"}]}})
    objects.create_cluster_custom_object("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}}})
    return name, name


def route_refused(api: client.ApiClient, namespace: str) -> bool:
    """Whether the API server refuses an HTTPRoute in the namespace now (a dry run: nothing is stored)."""
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "probe"},
             "spec": {"rules": [{"backendRefs": [{"name": "probe", "port": 80}]}]}}
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", route, dry_run="All")
    except client.ApiException as exc:
        return exc.status in (400, 403, 422) and "no HTTPRoute in this namespace" in (exc.body or "")
    return False


def test_running_does_not_wait_for_the_route(cluster, crds, api, namespace, wait_for, operator, gateway_api):
    """`running` says the operator's gateway can route to the pods: the Deployment ready and the model's Service
    (its EndpointSlices) in place. The HTTPRoute is for a Gateway API implementation; its write does not hold the
    status back, not even when it is refused: the status says running while the route's write fails, and the
    route comes once it is allowed (the pass retried)."""
    kube = Cluster(api, namespace, wait_for)
    objects = client.CustomObjectsApi(api)
    policy, binding = refuse_routes(api, namespace)
    try:
        wait_for(lambda: route_refused(api, namespace), 30, "the API server to enforce the policy")
        kube.create(manifest("unrouted", model("a")))
        status = kube.wait_status("unrouted", "running")
        assert status["models"][0]["status"] == "ready"
        assert route_of(api, namespace, "unrouted") is None  # refused: no route, and running all the same
        assert client.CoreV1Api(api).read_namespaced_service("unrouted-a", namespace) is not None
    finally:
        objects.delete_cluster_custom_object("admissionregistration.k8s.io", "v1",
                                             "validatingadmissionpolicybindings", binding)
        objects.delete_cluster_custom_object("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
                                             policy)
    wait_for(lambda: route_of(api, namespace, "unrouted"), 60, "the route, once allowed (the pass retried)")
    assert kube.status("unrouted")["status"] == "running"
