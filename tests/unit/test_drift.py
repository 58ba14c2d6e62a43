"""drift: desired is a subset of live, quantities by value, paths that name what changed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from inference_operator.policies.drift import differences, drifted, parse_quantity, restorers_of, spec_writers

DEPLOYMENT = {
    "metadata": {"name": "d", "labels": {"inference.io/model": "m"}},
    "spec": {"replicas": 2, "template": {"spec": {
        "containers": [{"name": "model", "image": "a:1", "env": [{"name": "A", "value": "1"}],
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "500m", "memory": "2048Mi"},
                                      "limits": {"memory": "2048Mi", "nvidia.com/gpu": "1"}}}],
        "nodeSelector": {"gpu": "a100"}, "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        "volumes": [{"name": "v", "emptyDir": {}}]}}},
}


def live_copy() -> dict:
    """What the API server returns for DEPLOYMENT: defaults added, quantities canonical."""
    import copy
    live = copy.deepcopy(DEPLOYMENT)
    live["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    container = live["spec"]["template"]["spec"]["containers"][0]
    container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    container["resources"] = {"requests": {"cpu": "500m", "memory": "2Gi"},
                              "limits": {"memory": "2Gi", "nvidia.com/gpu": "1"}}
    return live


@pytest.mark.parametrize(("text", "value"), [
    ("500m", Decimal("0.5")), ("2Gi", Decimal(2 * 2**30)), ("2048Mi", Decimal(2 * 2**30)), ("1e3", Decimal(1000)),
    ("1E", Decimal(10) ** 18), ("1.5", Decimal("1.5")), (4, Decimal(4)), ("100k", Decimal(100000)),
])
def test_quantities_parse(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["abc", "", "1Xi", True, None, "1" * 100])
def test_non_quantities_are_none(text):
    assert parse_quantity(text) is None


def test_a_live_object_with_defaults_and_canonical_quantities_has_no_drift():
    assert drifted(DEPLOYMENT, live_copy()) == []


@pytest.mark.parametrize(("change", "path"), [
    (lambda c, s: c.update(image="b:2"), "spec.template.spec.containers[model].image"),
    (lambda c, s: c["env"][0].update(value="2"), "spec.template.spec.containers[model].env[A].value"),
    (lambda c, s: c["resources"]["limits"].update(memory="1Gi"),
     "spec.template.spec.containers[model].resources.limits.memory"),
    (lambda c, s: c["ports"][0].update(containerPort=1),
     "spec.template.spec.containers[model].ports[http].containerPort"),
    (lambda c, s: s.pop("nodeSelector"), "spec.template.spec.nodeSelector"),
    (lambda c, s: s.update(tolerations=[]), "spec.template.spec.tolerations"),
    (lambda c, s: c.pop("env"), "spec.template.spec.containers[model].env"),
])
def test_changed_owned_fields_are_named(change, path):
    live = live_copy()
    spec = live["spec"]["template"]["spec"]
    change(spec["containers"][0], spec)
    assert drifted(DEPLOYMENT, live) == [path]


def test_replicas_and_labels_are_compared():
    live = live_copy()
    live["spec"]["replicas"] = 5
    live["metadata"]["labels"]["inference.io/model"] = "x"
    assert drifted(DEPLOYMENT, live) == ["metadata.labels.inference.io/model", "spec.replicas"]


def test_elements_others_add_to_keyed_lists_are_left_alone():
    live = live_copy()
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["env"].insert(0, {"name": "INJECTED", "value": "x"})
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "s:1"})
    assert drifted(DEPLOYMENT, live) == []
    container["env"][1]["value"] = "changed"
    assert drifted(DEPLOYMENT, live) == ["spec.template.spec.containers[model].env[A].value"]


def test_atomic_lists_compare_whole():
    assert differences(["--a", "--b"], ["--a", "--b", "--c"], "args") == ["args"]
    assert differences(["--a", "--b"], ["--b", "--a"], "args") == ["args[0]", "args[1]"]


def test_wanted_empty_values_are_met_by_their_absence():
    assert differences({"emptyDir": {}, "env": []}, {}, "x") == []
    assert differences({"emptyDir": {}}, {"emptyDir": {"medium": ""}}, "x") == []


def test_types_matter_except_between_numbers():
    assert differences({"a": 1}, {"a": "1"}) == ["a"]
    assert differences({"a": True}, {"a": 1}) == ["a"]
    assert differences({"a": 1}, {"a": 1.0}) == []


def test_hpa_metric_quantities_compare_by_value():
    want = {"metrics": [{"type": "Pods", "pods": {"target": {"type": "AverageValue", "averageValue": "1000m"}}}]}
    have = {"metrics": [{"type": "Pods", "pods": {"target": {"type": "AverageValue", "averageValue": "1"}}}]}
    assert differences(want, have, "spec") == []


def test_many_changes_are_capped():
    want = {f"k{i}": i for i in range(50)}
    assert len(differences(want, {}, "spec")) == 20


MANAGED_FIELDS = [  # a Deployment after `kubectl set image` and `kubectl annotate`, as the API server records it
    {"manager": "inference-operator", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
        "f:containers": {'k:{"name":"model"}': {".": {}, "f:image": {}, "f:name": {}}}}}}}},
    {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:metadata": {"f:annotations": {
        "f:deployment.kubernetes.io/revision": {}}}}},
    {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
     "fieldsV1": {"f:status": {"f:replicas": {}}}},
    {"manager": "kubectl-set", "operation": "Update", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
        "f:containers": {'k:{"name":"model"}': {"f:image": {}}}}}}}},
    {"manager": "kubectl-annotate", "operation": "Update", "fieldsV1": {"f:metadata": {"f:annotations": {
        "f:team.example/note": {}}}}},
    {"manager": "kubectl-scale", "operation": "Update", "subresource": "scale",
     "fieldsV1": {"f:spec": {"f:replicas": {}}}},
]


def test_the_writer_of_a_drifted_field_is_named_not_the_operator_or_bystanders():
    writers = spec_writers(MANAGED_FIELDS, ("inference-operator", "inference-operator-handover"))
    assert [w[0] for w in writers] == ["kube-controller-manager", "kubectl-set", "kubectl-annotate", "kubectl-scale"]
    assert restorers_of(writers, ["spec.template.spec.containers[model].image"]) == ["kubectl-set"]
    assert restorers_of(writers, ["spec.replicas"]) == ["kubectl-scale"]
    assert restorers_of(writers, ["metadata.annotations.team.example/note"]) == ["kubectl-annotate"]
    assert restorers_of(writers, ["spec.template.spec.containers[model].env"]) == []
    assert restorers_of(writers, ["spec.template.spec.containers[other].image"]) == []
    assert restorers_of([["x", "not json"]], ["spec.replicas"]) == []
