"""The ModelArts service API on the cluster, called as huaweicloudsdkcore signs (its Signer, unchanged):
every answer read from the API server, every change an InferenceService change made as the key's identity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudapi_fixtures import READER_RULES, CloudApi, Key, modelarts_call, wait_until
from kubernetes import client

from conftest import REPO

GROUP, VERSION, PLURAL = "inference.io", "v1alpha1", "inferenceservices"
AUDIT_LOG = REPO / ".cluster" / "logs" / "audit.log"


def register(cloudapi: CloudApi, key: Key, name: str = "digits", version: str = "1.0.0") -> str:
    answer = modelarts_call(cloudapi, key, "POST", f"/v1/{key.namespace}/models", {
        "model_name": name, "model_version": version, "model_type": "Image",
        "source_location": "registry.example.com/team/digits:1.0", "model_uri": "s3://models/digits"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["model_id"])


def create_body(name: str, model_id: str, **more: Any) -> dict[str, Any]:
    return {"service_name": name, "infer_type": "real-time", "description": "digits",
            "config": [{"model_id": model_id, "weight": 100, "specification": "modelarts.vm.cpu.2u",
                        "instance_count": 1, "envs": {"MODE": "fast"}}], **more}


def show(cloudapi: CloudApi, key: Key, service_id: str) -> dict[str, Any]:
    answer = modelarts_call(cloudapi, key, "GET", f"/v1/{key.namespace}/services/{service_id}")
    return dict(answer.json()) if answer.status_code == 200 else {"http": answer.status_code, **answer.json()}


def test_create_run_stop_start_delete_with_a_registered_model(cloudapi: CloudApi, access_key: Any, operator: Any,
                                                                 namespace: str, api: client.ApiClient) -> None:
    key = access_key(namespace)
    model_id = register(cloudapi, key)
    shown = modelarts_call(cloudapi, key, "GET", f"/v1/{namespace}/models/{model_id}").json()
    assert shown["source_location"] == "registry.example.com/team/digits:1.0" and shown["model_id"] == model_id

    answer = modelarts_call(cloudapi, key, "POST", f"/v1/{namespace}/services",
                            create_body("digits_svc", model_id, vpc_id="vpc-1"))
    assert answer.status_code == 200, answer.text
    service_id = answer.json()["service_id"]
    assert answer.json()["resource_ids"] == [f"INF-{service_id}"]

    objects = client.CustomObjectsApi(api)
    svc = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "digits-svc")
    model = svc["spec"]["models"][0]
    assert svc["metadata"]["uid"] == service_id
    assert (model["image"], model["modelUri"], model["modelId"]) == ("registry.example.com/team/digits:1.0",
                                                                      "s3://models/digits", model_id)
    running = wait_until(lambda: show(cloudapi, key, service_id).get("status") == "running"
                         and show(cloudapi, key, service_id), 90, "the service to run")
    assert running["service_name"] == "digits_svc" and running["vpc_id"] == "vpc-1"  # kept, shown back
    assert running["config"][0]["model_id"] == model_id and running["config"][0]["envs"] == {"MODE": "fast"}

    assert modelarts_call(cloudapi, key, "PUT", f"/v1/{namespace}/services/{service_id}",
                          {"status": "stopped"}).status_code == 200
    wait_until(lambda: show(cloudapi, key, service_id).get("status") == "stopped", 60, "the service to stop")
    svc = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "digits-svc")
    applied = {m["manager"]: json.dumps(m.get("fieldsV1")) for m in svc["metadata"]["managedFields"]
               if m["operation"] == "Apply"}
    assert svc["spec"]["stopped"] is True and "f:stopped" in applied["inference-cloud-api"]

    assert modelarts_call(cloudapi, key, "PUT", f"/v1/{namespace}/services/{service_id}",
                          {"status": "running"}).status_code == 200
    wait_until(lambda: show(cloudapi, key, service_id).get("status") == "running", 60, "the service to start")

    assert modelarts_call(cloudapi, key, "DELETE", f"/v1/{namespace}/services/{service_id}").status_code == 200
    gone = wait_until(lambda: show(cloudapi, key, service_id).get("http") == 404 and show(cloudapi, key, service_id),
                      60, "the service to be gone")
    assert gone["error_code"] == "ModelArts.3502"


def test_list_filters_paging_and_several_ids_deleted(cloudapi: CloudApi, access_key: Any, namespace: str) -> None:
    key = access_key(namespace)
    model_id = register(cloudapi, key)
    ids = []
    for name in ("alpha", "beta", "gamma"):
        answer = modelarts_call(cloudapi, key, "POST", f"/v1/{namespace}/services", create_body(name, model_id))
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["service_id"])
    again = modelarts_call(cloudapi, key, "POST", f"/v1/{namespace}/services", create_body("beta", model_id))
    assert (again.status_code, again.json()["error_code"]) == (409, "ModelArts.3503")

    def listing(**query: Any) -> dict[str, Any]:
        return dict(modelarts_call(cloudapi, key, "GET", f"/v1/{namespace}/services", query=list(query.items())).json())

    page = listing(sort_by="service_name", order="asc", offset=1, limit=1)
    assert (page["total_count"], page["count"], [s["service_name"] for s in page["services"]]) == (3, 1, ["beta"])
    assert [s["service_name"] for s in listing(service_name="mm")["services"]] == ["gamma"]
    assert listing(model_id=model_id)["total_count"] == 3 and listing(infer_type="batch")["total_count"] == 0
    bad = modelarts_call(cloudapi, key, "GET", f"/v1/{namespace}/services", query=[("limit", "zero")])
    assert bad.status_code == 400 and "limit" in bad.json()["error_msg"]

    assert modelarts_call(cloudapi, key, "DELETE", f"/v1/{namespace}/services/{ids[0]},{ids[1]}").status_code == 200
    wait_until(lambda: [s["service_name"] for s in listing()["services"]] == ["gamma"], 30, "two services deleted")
    unknown = modelarts_call(cloudapi, key, "POST", f"/v1/{namespace}/services", create_body("delta", "no-such-id"))
    assert (unknown.status_code, unknown.json()["error_code"]) == (400, "ModelArts.3507")
    assert "config[0].model_id" in unknown.json()["error_msg"]


def _audited_writes(namespace: str, user: str) -> list[dict[str, Any]]:
    """The audit log's writes in `namespace` made as `user` (impersonated), with their answer codes."""
    found = []
    for line in AUDIT_LOG.read_text().splitlines():
        entry = json.loads(line)
        if (entry.get("objectRef") or {}).get("namespace") == namespace and entry.get("verb") in ("create", "patch") \
                and (entry.get("impersonatedUser") or {}).get("username") == user:
            found.append(entry)
    return found


def test_a_key_without_rbac_gets_403_and_nothing_is_written(cloudapi: CloudApi, access_key: Any, namespace: str,
                                                             api: client.ApiClient) -> None:
    # the reader may read the registry and the services, not create them: the create itself is what is refused
    granted, bare = access_key(namespace), access_key(namespace, sa="intruder", rules=READER_RULES)
    model_id = register(cloudapi, granted)
    answer = modelarts_call(cloudapi, bare, "POST", f"/v1/{namespace}/services", create_body("sneaky", model_id))
    assert answer.status_code == 403, answer.text
    assert answer.json()["error_code"] == "APIG.0302" and "forbidden" in answer.json()["error_msg"]
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    assert listed["items"] == []
    writes = wait_until(lambda: _audited_writes(namespace, bare.identity), 10, "the refusal in the audit log")
    assert {w["responseStatus"]["code"] for w in writes} == {403}  # every attempt as that identity was refused


def test_wrong_secret_stale_date_and_unknown_key_are_401_saying_which(cloudapi: CloudApi, access_key: Any,
                                                                      namespace: str) -> None:
    key = access_key(namespace)
    path = f"/v1/{namespace}/services"
    wrong = modelarts_call(cloudapi, key, "GET", path, secret_key="not-the-secret")
    assert wrong.status_code == 401 and "bad signature" in wrong.json()["error_msg"]
    stale_date = (datetime.now(UTC) - timedelta(minutes=20)).strftime("%Y%m%dT%H%M%SZ")
    stale = modelarts_call(cloudapi, key, "GET", path, headers={"X-Sdk-Date": stale_date})
    assert stale.status_code == 401 and "stale date" in stale.json()["error_msg"]
    unknown = modelarts_call(cloudapi, Key("NOSUCHKEY", "x", "", namespace, ""), "GET", path)
    assert unknown.status_code == 401 and "unknown access key" in unknown.json()["error_msg"]
    assert {wrong.json()["error_code"], stale.json()["error_code"]} == {"APIG.0301"}


def test_x_auth_token_acts_as_the_token_s_identity(cloudapi: CloudApi, access_key: Any, namespace: str,
                                                   api: client.ApiClient) -> None:
    key = access_key(namespace)
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        "deployer", namespace, {"spec": {"expirationSeconds": 600}}).status.token
    answer = modelarts_call(cloudapi, None, "GET", f"/v1/{namespace}/services", headers={"X-Auth-Token": token})
    assert answer.status_code == 200, answer.text
    other = modelarts_call(cloudapi, None, "GET", "/v1/default/services", headers={"X-Auth-Token": token})
    assert other.status_code == 403  # the deployer may list only its own namespace
    bad = modelarts_call(cloudapi, None, "GET", f"/v1/{namespace}/services", headers={"X-Auth-Token": "nope"})
    assert bad.status_code == 401 and key.identity


def test_events_and_specifications(cloudapi: CloudApi, access_key: Any, operator: Any, namespace: str) -> None:
    key = access_key(namespace)
    specs = modelarts_call(cloudapi, key, "GET", f"/v1/{namespace}/services/specifications").json()
    names = {s["specification"]: s for s in specs["specifications"]}
    assert names["modelarts.vm.cpu.2u"]["cpu_info"]["cpu"] == 2 and names["modelarts.vm.gpu.t4"]["category"] == "GPU"
    model_id = register(cloudapi, key)
    service_id = modelarts_call(cloudapi, key, "POST", f"/v1/{namespace}/services",
                                create_body("evented", model_id)).json()["service_id"]
    events = wait_until(lambda: modelarts_call(cloudapi, key, "GET",
                                               f"/v1/{namespace}/services/{service_id}/events").json().get("events"),
                        60, "the service's events")
    assert all(e["event_type"] in ("normal", "abnormal") and e["occur_time"] > 0 for e in events)


def test_the_worked_example_of_the_docs_runs(cloudapi: CloudApi, access_key: Any, namespace: str,
                                             capsys: Any) -> None:
    """docs/cloud-api.md's SDK code, as written but for the endpoint, the project and the key."""
    key = access_key(namespace)
    text = (REPO / "docs" / "cloud-api.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    code = (code.replace("cloud-api.example.com:8443", cloudapi.host).replace('"team-a"', f'"{namespace}"')
            .replace("AKTEAMADEPLOYER01", key.access_key).replace("change-me-to-a-long-random-secret", key.secret_key))
    exec(compile(code, "docs/cloud-api.md", "exec"), {})  # noqa: S102 - the documentation's own example
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] in ("deploying", "running") and "'total_count'" in printed[1]


def test_an_update_keeps_what_another_update_set(cloudapi: CloudApi, access_key: Any, operator: Any,
                                                 namespace: str, api: client.ApiClient) -> None:
    """description/config/schedule and status are separate field managers: a stop after a config change keeps
    the change, and a config change after a stop keeps the service stopped."""
    key = access_key(namespace)
    first, second = register(cloudapi, key), register(cloudapi, key, version="2.0.0")
    service_id = modelarts_call(cloudapi, key, "POST", f"/v1/{namespace}/services",
                                create_body("updated", first)).json()["service_id"]
    path = f"/v1/{namespace}/services/{service_id}"
    early = modelarts_call(cloudapi, key, "PUT", path, {"config": []})
    assert show(cloudapi, key, service_id)["status"] != "deploying" or early.json()["error_code"] == "ModelArts.3519"
    wait_until(lambda: show(cloudapi, key, service_id).get("status") == "running", 90, "the service to run")
    changed = modelarts_call(cloudapi, key, "PUT", path, {"description": "two versions", "config": [
        {"model_id": first, "weight": 70, "specification": "modelarts.vm.cpu.2u"},
        {"model_id": second, "weight": 30, "specification": "modelarts.vm.cpu.2u"}]})
    assert changed.status_code == 200, changed.text
    assert modelarts_call(cloudapi, key, "PUT", path, {"status": "stopped"}).status_code == 200
    wait_until(lambda: show(cloudapi, key, service_id).get("status") == "stopped", 60, "the service to stop")
    assert modelarts_call(cloudapi, key, "PUT", path, {"description": "still two"}).status_code == 200
    shown = show(cloudapi, key, service_id)
    assert shown["description"] == "still two"
    assert [(c["model_version"], c["weight"]) for c in shown["config"]] == [("1.0.0", 70), ("2.0.0", 30)]
    svc = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "updated")
    assert svc["spec"]["stopped"] is True and svc["spec"]["description"] == "still two"
    same = modelarts_call(cloudapi, key, "PUT", path, {"config": [
        {"model_id": first, "weight": 50, "specification": "modelarts.vm.cpu.2u"},
        {"model_id": first, "weight": 50, "specification": "modelarts.vm.cpu.2u"}]})
    assert (same.status_code, same.json()["error_code"]) == (400, "ModelArts.3516")
