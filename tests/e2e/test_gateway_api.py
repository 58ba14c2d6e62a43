"""Where Gateway API is installed, each service also gets an HTTPRoute splitting traffic by weight.

The local cluster has no Gateway API; the test installs a minimal HTTPRoute CRD (the operator only needs
the API to serve the resource) and runs an operator process started after it, then removes both.
"""

from __future__ import annotations

import socket

import pytest
from kubernetes import client
from test_operator import Cluster, manifest, model

from conftest import OperatorProcess

HTTPROUTE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "httproutes.gateway.networking.k8s.io",  # *.k8s.io groups need the approval note
                 "annotations": {"api-approved.kubernetes.io": "unapproved, a minimal stand-in for tests"}},
    "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
             "names": {"plural": "httproutes", "singular": "httproute", "kind": "HTTPRoute",
                       "listKind": "HTTPRouteList"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def gateway_api(api, wait_for):
    extensions = client.ApiextensionsV1Api(api)
    extensions.create_custom_resource_definition(HTTPROUTE_CRD)

    def established() -> bool:
        crd = extensions.read_custom_resource_definition(HTTPROUTE_CRD["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_for(established, 30, "the HTTPRoute CRD")
    yield
    extensions.delete_custom_resource_definition(HTTPROUTE_CRD["metadata"]["name"])


def test_weighted_httproute_follows_the_spec(cluster, crds, api, namespace, wait_for, gateway_api):
    proc = OperatorProcess(cluster, free_port(), namespace, ("--namespace", namespace),
                           log_name="operator-gateway-api-e2e.log")
    proc.start()
    try:
        kube = Cluster(api, namespace, wait_for)
        created = kube.create(manifest("split", model("a", 70), model("b", 30), model("dark", 0)))
        kube.wait_status("split", "running")
        routes = client.CustomObjectsApi(api)

        def route() -> dict | None:
            try:
                return routes.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", namespace,
                                                           "httproutes", "split")
            except client.ApiException:
                return None

        found = wait_for(route, 10, "the HTTPRoute")
        rule = found["spec"]["rules"][0]
        assert rule["matches"][0]["path"]["value"] == f"/v1/infers/{created['metadata']['uid']}"
        assert {b["name"]: b["weight"] for b in rule["backendRefs"]} == {"split-a": 70, "split-b": 30, "split-dark": 0}
        assert found["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]

        kube.replace_models("split", [model("a", 20), model("b", 80)])
        wait_for(lambda: {b["name"]: b["weight"] for b in route()["spec"]["rules"][0]["backendRefs"]}
                 == {"split-a": 20, "split-b": 80}, 10, "the new weights on the route")
        kube.patch_spec("split", {"stopped": True})
        wait_for(lambda: route() is None, 10, "the route of a stopped service to go")
    finally:
        proc.stop()
