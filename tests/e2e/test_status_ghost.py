"""The status write of a service's ghost (deleted, its DELETED event not here yet, e.g. on a slow link) never
lands on its re-created namesake. Found by the chaos run (slow-lossy-link): server-side apply ignores
metadata.uid, so a stale pass wrote `stopped at generation 2` onto a new object at generation 1."""

from __future__ import annotations

import asyncio

import pytest
from services import Cluster, manifest, model

from inference_operator.kube.client import Kube
from inference_operator.kube.kubeconfig import Connection
from inference_operator.ports import ApiError


def test_a_status_written_for_a_deleted_uid_does_not_land_on_the_namesake(api, cluster, crds, namespace, wait_for,
                                                                          alone):
    kube = Cluster(api, namespace, wait_for)
    old = kube.create(manifest("twin", model("a")))["metadata"]["uid"]
    kube.crd.delete_namespaced_custom_object("inference.io", "v1alpha1", namespace, "inferenceservices", "twin")
    wait_for(lambda: not [o for o in kube.crd.list_namespaced_custom_object(
        "inference.io", "v1alpha1", namespace, "inferenceservices")["items"]], 30, "the first twin gone")
    new = kube.create(manifest("twin", model("a")))["metadata"]["uid"]
    assert new != old

    async def write(uid: str) -> None:
        port = Kube(Connection.from_kubeconfig(cluster), "status-ghost-test")
        try:
            await port.write_status({"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService",
                                     "metadata": {"name": "twin", "namespace": namespace, "uid": uid},
                                     "status": {"status": "stopped", "observedGeneration": 2}})
        finally:
            await port.close()

    with pytest.raises(ApiError) as refused:
        asyncio.run(write(old))
    assert refused.value.status == 422
    assert kube.status("twin").get("observedGeneration") != 2, "the ghost's status did not land"
    asyncio.run(write(new))
    assert kube.status("twin")["observedGeneration"] == 2  # the object's own uid: written
