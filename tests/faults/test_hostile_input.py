"""Hostile InferenceService manifests, valid and broken in every field (Hypothesis), against the real API server
and a running operator: each is refused at admission with a message naming the field, or accepted and
brought to a status (failed with an errorMsg naming the field where the schema cannot judge); the
operator logs no traceback and keeps serving a canary service throughout.

HOSTILE_EXAMPLES sets the count: 1000 in `make chaos`; `make test` runs 150 (each example is an API round
trip, and the accepted ones wait for the operator's status).
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from typing import Any

import pytest
from e2e_conftest import OperatorProcess, free_port
from e2e_conftest import _localcluster as localcluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

GROUP, VERSION, PLURAL = "inference.io", "v1alpha1", "inferenceservices"
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "150"))
JUDGED = ("InvalidSpec", "UnknownFlavor", "InsufficientGPUMemory")

# ---------------------------------------------------------------- strategies

dns = st.from_regex(r"\A[a-z]([-a-z0-9]{0,10}[a-z0-9])?\Z")
anything = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)
hostile_text = st.one_of(
    st.text(min_size=0, max_size=80),  # unicode of every plane, control characters, empty
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40),
    st.integers(1, 300_000).map(lambda n: "x" * n),  # huge strings
    st.sampled_from(["", " ", "../../etc/passwd", "a" * 64, "UPPER", "-lead", "trail-", "with space",
                     "名前", "\u202eevil", "\x00nul", "a\nb", "${HOME}", "s3://", "pvc://", "custom"]),
)
hostile = st.one_of(anything, hostile_text, st.integers(-10, 300), st.lists(st.integers(), min_size=50, max_size=200),
                    st.lists(st.text(max_size=3), min_size=100, max_size=5000))


@st.composite
def valid_model(draw: Any, name: str) -> dict[str, Any]:
    model: dict[str, Any] = {"name": name, "modelName": draw(st.text(min_size=1, max_size=20)),
                             "modelVersion": draw(st.sampled_from(["1", "1.0.0", "v2"])),
                             "image": "registry.example/m:1", "weight": 100,
                             "specification": draw(st.sampled_from(["modelarts.vm.cpu.2u", "gpu.t4", "cpu.4u"])),
                             "instanceCount": draw(st.integers(1, 3))}
    if draw(st.booleans()):
        model["scaling"] = {"enabled": True, "minReplicas": 1, "maxReplicas": draw(st.integers(1, 4))}
    if draw(st.booleans()):
        model["envs"] = {"MODE": draw(st.text(max_size=10))}
    if draw(st.booleans()):
        model["modelUri"] = draw(st.sampled_from(["pvc://models/a", "s3://bucket/a", "nfs://server/x"]))
    return model


@st.composite
def valid_manifest(draw: Any) -> dict[str, Any]:
    names = draw(st.lists(dns, min_size=1, max_size=3, unique=True))
    models = [draw(valid_model(n)) for n in names]
    weights = [100 // len(models)] * len(models)
    weights[0] += 100 - sum(weights)
    for model, weight in zip(models, weights, strict=True):
        model["weight"] = weight
    spec: dict[str, Any] = {"models": models, "stopped": True}  # stopped: no pods, the cluster stays light
    if draw(st.booleans()):
        spec["description"] = draw(st.text(max_size=50))
    if draw(st.booleans()):
        spec["schedule"] = [{"type": "stop", "timeUnit": "HOURS", "duration": draw(st.integers(1, 48))}]
    if draw(st.booleans()):
        spec["auth"] = {"appAuth": True, "apps": [{"secretName": "app-1"}]}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService",
            "metadata": {"name": f"h-{uuid.uuid4().hex[:10]}"}, "spec": spec}


MODEL_FIELDS = ["name", "modelName", "modelVersion", "modelId", "runtime", "image", "command", "args", "port",
                "modelUri", "weight", "specification", "customSpec", "instanceCount", "scaling", "envs"]
SPEC_FIELDS = ["description", "inferType", "stopped", "models", "schedule", "auth", "batch"]


@st.composite
def broken(draw: Any) -> tuple[dict[str, Any], list[str]]:
    """A valid manifest with one field made hostile; the words an error about it must contain."""
    body = draw(valid_manifest())
    spec = body["spec"]
    where = draw(st.sampled_from(["spec", "model", "unknown", "customSpec", "scaling", "schedule", "auth",
                                  "batch", "duplicate", "weights", "flavor", "name", "batch-mapping"]))
    model = spec["models"][0]
    if where == "spec":
        key = draw(st.sampled_from(SPEC_FIELDS))
        spec[key] = draw(hostile)
        return body, [key]
    if where == "model":
        key = draw(st.sampled_from(MODEL_FIELDS))
        model[key] = draw(hostile)
        return body, [key, "models"]
    if where == "unknown":
        target = draw(st.sampled_from([body, spec, model]))
        key = draw(st.sampled_from(["extra", "replicas", "Weight", "apiKey", "x" * 70]))
        target[key] = draw(anything)
        return body, [key]
    if where == "customSpec":
        model["specification"] = "custom"
        key = draw(st.sampled_from(["cpu", "memory", "gpu", "ascend"]))
        model["customSpec"] = {"cpu": 1, "memory": 1024, key: draw(hostile)}
        return body, [key, "customSpec"]
    if where == "scaling":
        key = draw(st.sampled_from(["enabled", "minReplicas", "maxReplicas", "targetCPUUtilization", "metrics"]))
        model["scaling"] = {"enabled": True, "minReplicas": 2, "maxReplicas": 3, key: draw(hostile)}
        return body, [key, "scaling", "minReplicas", "maxReplicas"]
    if where == "schedule":
        key = draw(st.sampled_from(["type", "timeUnit", "duration"]))
        entry = {"type": "stop", "timeUnit": "HOURS", "duration": 2, key: draw(hostile)}
        spec["schedule"] = draw(st.sampled_from([[entry], [entry] * 5]))
        return body, [key, "schedule"]
    if where == "auth":
        spec["auth"] = {"appAuth": True, "apps": draw(st.one_of(
            st.lists(st.fixed_dictionaries({"secretName": hostile}), max_size=3),
            st.just([{"secretName": "a"}] * 40), hostile))}
        return body, ["apps", "secretName", "auth"]
    if where in ("batch", "batch-mapping"):
        spec["inferType"] = "batch"
        spec["models"] = [model]
        model["weight"] = 100
        spec.pop("schedule", None)
        batch = {"srcPath": "s3://in/", "destPath": "s3://out/", "reqUri": "/v1/infer", "mappingType": "csv"}
        key = "mappingRule" if where == "batch-mapping" else draw(st.sampled_from(list(batch)))
        batch[key] = draw(hostile)
        spec["batch"] = batch
        return body, [key, "batch"]
    if where == "duplicate":
        spec["models"] = [model, {**copy.deepcopy(model), "weight": 0}]
        return body, ["name", "models"]
    if where == "weights":
        for m in spec["models"]:
            m["weight"] = draw(st.integers(0, 100))
        return body, ["weight", "models"]
    if where == "flavor":  # the schema cannot know the catalog: the operator must judge it
        model["specification"] = draw(st.sampled_from(["gpu.h100", "llama_900b_fp16", "modelarts.vm.cpu.0u",
                                                       "nope", "名前"]))
        return body, ["specification"]
    body["metadata"]["name"] = draw(st.sampled_from([f"9{uuid.uuid4().hex[:8]}", f"a.b{uuid.uuid4().hex[:6]}",
                                                     f"x{uuid.uuid4().hex}" * 2]))
    return body, ["name"]


manifests = st.one_of(valid_manifest().map(lambda b: (b, [])), broken())

# ---------------------------------------------------------------- the test


@pytest.fixture
def operator_in(cluster, crds, namespace) -> Any:
    proc = OperatorProcess(cluster, free_port(), namespace, ("--namespace", namespace),
                           log_name=f"hostile-{namespace}.log")
    proc.start()
    yield proc
    proc.stop()


def names_a_field(message: str, words: list[str]) -> bool:
    return any(word in message for word in words)


def test_hostile_manifests(api, namespace, wait_for, operator_in) -> None:
    crd = client.CustomObjectsApi(api)
    canary = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": "canary"},
              "spec": {"models": [{"name": "a", "modelName": "a", "modelVersion": "1", "image": "r/a:1",
                                   "specification": "modelarts.vm.cpu.2u"}], "stopped": True}}
    crd.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, canary)
    accepted: dict[str, list[str]] = {}
    refused: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(manifests)
    def apply(case: tuple[dict[str, Any], list[str]]) -> None:
        body, words = case
        body = copy.deepcopy(body)
        try:
            crd.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict")
        except client.ApiException as exc:
            assert exc.status in (400, 413, 422), f"{exc.status} for {words}: {exc.body[:500]}"
            message = exc.body if isinstance(exc.body, str) else str(exc.body)
            if exc.status != 413:  # a body too large for the API server names no field, rightly
                assert names_a_field(message, words or ["spec"]), f"refused without naming {words}: {message[:800]}"
            refused.append(body["metadata"]["name"])
            return
        accepted[body["metadata"]["name"]] = words

    apply()
    assert accepted and refused, f"the generator must produce both: {len(accepted)} accepted, {len(refused)} refused"

    def statuses() -> dict[str, dict]:
        items = crd.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        return {o["metadata"]["name"]: o for o in items}

    def judged() -> list[str] | None:
        objects = statuses()
        waiting = [n for n in accepted if (objects[n].get("status") or {}).get("observedGeneration")
                   != objects[n]["metadata"]["generation"]]
        return None if waiting else []

    try:
        wait_for(lambda: judged() is not None, 120 + EXAMPLES * 0.2, "every accepted manifest to get a status")
    except AssertionError:
        objects = statuses()
        missing = {n: accepted[n] for n in accepted if not (objects[n].get("status") or {}).get("status")}
        raise AssertionError(f"{len(missing)} accepted manifests never got a status, e.g. "
                             f"{list(missing.items())[:5]}; {objects[next(iter(missing))]['spec']}") from None
    objects = statuses()
    for name, words in accepted.items():
        status = objects[name]["status"]
        reasons = {c.get("reason") for c in status.get("conditions") or []}
        if status.get("status") == "failed" and reasons & set(JUDGED):
            assert words and names_a_field(status.get("errorMsg", ""), words), (
                f"{name}: failed without naming {words}: {status.get('errorMsg')}")

    # still serving: the canary follows a change, and nothing was logged as a traceback
    crd.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "canary", {"spec": {"stopped": False}})
    wait_for(lambda: (statuses()["canary"].get("status") or {}).get("status") == "running", 60,
             "the canary to run after the hostile manifests")
    assert operator_in.proc.poll() is None, "the operator is still running"
    log = operator_in.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 500:][:3000]


def test_objects_stored_under_a_looser_schema_are_reported_invalid(api, cluster, crds, namespace, wait_for,
                                                                   operator_in) -> None:
    """An older, looser CRD served first (no bounds, no rules), objects stored under it, then the current
    CRD installed again: the operator reports them failed with InvalidSpec naming the field, no crash."""
    lc = localcluster()
    ext = client.ApiextensionsV1Api(api)
    crd_obj = ext.read_custom_resource_definition("inferenceservices.inference.io")
    loose = client.ApiClient().sanitize_for_serialization(crd_obj)
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        loose["metadata"].pop(key, None)
    loose.pop("status", None)
    version = loose["spec"]["versions"][0]
    version["schema"] = {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}
    crd = client.CustomObjectsApi(api)
    bad = {
        "weights": ({"models": [{"name": "a", "modelName": "a", "modelVersion": "1", "image": "r/a:1",
                                 "weight": 30, "specification": "cpu.2u"}]}, "weight"),
        "count": ({"models": [{"name": "a", "modelName": "a", "modelVersion": "1", "image": "r/a:1",
                               "instanceCount": "many", "specification": "cpu.2u"}]}, "instanceCount"),
        "nomodels": ({"models": []}, "models"),
        "port": ({"models": [{"name": "a", "modelName": "a", "modelVersion": "1", "image": "r/a:1",
                              "port": 70000}]}, "port"),
    }
    try:
        lc.kubectl("replace", "-f", "-", input=json.dumps(loose))
        for name, (spec, _) in bad.items():
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": name},
                    "spec": spec}
            wait_for(lambda body=body: _created(crd, namespace, body), 30, f"{body['metadata']['name']} stored")
    finally:
        lc.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(lc.REPO / "crds"))
        lc.kubectl("wait", "--for=condition=Established", "crd/inferenceservices.inference.io", "--timeout=60s")
    for name, (_, word) in bad.items():
        status = wait_for(lambda name=name: (crd.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
                                             .get("status") or {}).get("errorMsg") and
                          crd.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)["status"],
                          60, f"{name} to be judged")
        reasons = {c.get("reason") for c in status.get("conditions") or []}
        assert status["status"] == "failed" and "InvalidSpec" in reasons, status
        assert word in status["errorMsg"], status["errorMsg"]
    assert operator_in.proc.poll() is None
    assert "Traceback" not in operator_in.log_path.read_text(errors="replace")


def _created(crd: client.CustomObjectsApi, namespace: str, body: dict) -> bool:
    try:
        crd.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        return True
    except client.ApiException as exc:
        if exc.status == 409:
            return True
        if exc.status == 422:  # the looser schema is not served yet
            return False
        raise
