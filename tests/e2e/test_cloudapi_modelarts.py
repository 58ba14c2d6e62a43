"""The ModelArts service API on the cluster, called as huaweicloudsdkcore signs (its Signer, unchanged)."""

from __future__ import annotations

from typing import Any

from cloudapi_fixtures import CloudApi, modelarts_call


def test_signed_list_of_an_empty_project(cloudapi: CloudApi, access_key: Any, namespace: str) -> None:
    key = access_key(namespace)
    answer = modelarts_call(cloudapi, key, "GET", f"/v1/{namespace}/services")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"total_count": 0, "count": 0, "services": []}
