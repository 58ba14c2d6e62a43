"""The PAI-EAS management API on the cluster, called with the real alibabacloud_eas20210701 client, unchanged
but for its endpoint, signing with the AK/SK of a credential Secret (ACS3-HMAC-SHA256)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alibabacloud_eas20210701 import models
from alibabacloud_eas20210701.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_util import models as util_models
from cloudapi_fixtures import CloudApi, Key, wait_until
from kubernetes import client

REGION = "local"


def eas_client(server: CloudApi, key: Key, secret: str | None = None) -> Client:
    return Client(open_api_models.Config(access_key_id=key.access_key, access_key_secret=secret or key.secret_key,
                                         endpoint=server.host, protocol="http", region_id=REGION))


def service_json(name: str, instances: int = 1) -> str:
    return json.dumps({"metadata": {"name": name, "instance": instances},
                       "containers": [{"image": "python:3.11", "script": "python -m http.server 8000",
                                       "port": 8000}]})


def status_of(eas: Client, name: str) -> str:
    return str(eas.describe_service(REGION, name).body.status)


def services_in(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    answer = client.CustomObjectsApi(api).list_namespaced_custom_object("inference.io", "v1alpha1", namespace,
                                                                        "inferenceservices")
    return list(answer["items"])


def test_create_run_stop_start_delete(cloudapi: CloudApi, access_key: Any, namespace: str, operator: Any,
                                      api: client.ApiClient) -> None:
    eas = eas_client(cloudapi, access_key(namespace))
    created = eas.create_service(models.CreateServiceRequest(body=service_json("demo_svc"))).body
    assert (created.service_name, created.region, created.status) == ("demo_svc", REGION, "Creating")
    assert created.service_id and created.internet_endpoint.endswith(f"/api/predict/{namespace}.demo-svc")
    wait_until(lambda: status_of(eas, "demo_svc") == "Running", 90, "demo_svc Running")
    shown = eas.describe_service(REGION, "demo_svc").body
    assert (shown.running_instance, shown.total_instance, shown.image) == (1, 1, "python:3.11")
    assert json.loads(shown.service_config)["metadata"]["name"] == "demo_svc"
    eas.stop_service(REGION, "demo_svc")
    wait_until(lambda: status_of(eas, "demo_svc") == "Stopped", 60, "demo_svc Stopped")
    assert eas.describe_service(REGION, "demo_svc").body.running_instance == 0
    eas.start_service(REGION, "demo_svc")
    wait_until(lambda: status_of(eas, "demo_svc") == "Running", 90, "demo_svc Running again")
    eas.delete_service(REGION, "demo_svc")
    wait_until(lambda: not services_in(api, namespace), 60, "the InferenceService gone")
    with pytest.raises(ClientException) as err:
        eas.describe_service(REGION, "demo_svc")
    assert (err.value.status_code, err.value.code) == (404, "InvalidService.NotFound")


def test_app_service_preset_gpus(cloudapi: CloudApi, access_key: Any, namespace: str, operator: Any,
                                 api: client.ApiClient) -> None:
    eas = eas_client(cloudapi, access_key(namespace))
    body = eas.create_app_service(models.CreateAppServiceRequest(
        service_name="llm_demo", app_type="LLM", app_version="v1", service_spec="llama_7b_fp16", replicas=1,
        config={"ModelStorage": "oss", "OssPath": "oss://bucket/llama-7b/"})).body
    assert (body.service_name, body.status) == ("llm_demo", "Creating")
    apps = client.AppsV1Api(api)

    def gpus() -> str | None:
        for deploy in apps.list_namespaced_deployment(namespace).items:
            limits = deploy.spec.template.spec.containers[0].resources.limits or {}
            return limits.get("nvidia.com/gpu")
        return None
    assert wait_until(gpus, 60, "the LLM's Deployment") == "1"  # llama_7b_fp16: 13 GiB of weights, one A100
    shown = eas.describe_service(REGION, "llm_demo").body
    assert (shown.app_spec_name, shown.app_type) == ("llama_7b_fp16", "LLM")


def test_list_with_paging_and_other_region(cloudapi: CloudApi, access_key: Any, namespace: str) -> None:
    eas = eas_client(cloudapi, access_key(namespace))
    for i in range(3):
        eas.create_service(models.CreateServiceRequest(body=service_json(f"svc_{i}")))
    first = eas.list_services(models.ListServicesRequest(page_size=2, page_number=1, sort="ServiceName",
                                                         order="asc")).body
    second = eas.list_services(models.ListServicesRequest(page_size=2, page_number=2, sort="ServiceName",
                                                          order="asc")).body
    assert first.total_count == 3 and (first.page_number, first.page_size) == (1, 2)
    assert [s.service_name for s in first.services + second.services] == ["svc_0", "svc_1", "svc_2"]
    only = eas.list_services(models.ListServicesRequest(service_name="svc_1")).body
    assert [s.service_name for s in only.services] == ["svc_1"]
    with pytest.raises(ClientException) as err:
        eas.describe_service("cn-shanghai", "svc_1")
    assert err.value.status_code == 404
    with pytest.raises(ClientException) as err:
        eas.create_service(models.CreateServiceRequest(body=service_json("svc_0")))
    assert (err.value.status_code, err.value.code) == (409, "InvalidService.AlreadyExists")


def test_key_without_rbac_is_403_and_writes_nothing(cloudapi: CloudApi, access_key: Any, namespace: str,
                                                    api: client.ApiClient) -> None:
    eas = eas_client(cloudapi, access_key(namespace, sa="nobody", grant=False))
    with pytest.raises(ClientException) as err:
        eas.create_service(models.CreateServiceRequest(body=service_json("denied")))
    assert (err.value.status_code, err.value.code) == (403, "Forbidden.PrivilegeCheckFailed")
    assert f"system:serviceaccount:{namespace}:nobody" in err.value.message
    assert services_in(api, namespace) == []


def test_wrong_secret_and_stale_date_are_401(cloudapi: CloudApi, access_key: Any, namespace: str,
                                             api: client.ApiClient) -> None:
    key = access_key(namespace)
    with pytest.raises(ClientException) as err:
        eas_client(cloudapi, key, secret="not-the-secret").create_service(
            models.CreateServiceRequest(body=service_json("wrong")))
    assert (err.value.status_code, err.value.code) == (401, "SignatureDoesNotMatch")
    stale = (datetime.now(UTC) - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(ClientException) as err:  # the SDK signs whatever x-acs-date its caller sets
        eas_client(cloudapi, key).create_service_with_options(
            models.CreateServiceRequest(body=service_json("stale")), {"x-acs-date": stale},
            util_models.RuntimeOptions())
    assert (err.value.status_code, err.value.code) == (401, "InvalidTimeStamp.Expired")
    assert services_in(api, namespace) == []
