"""reconcile.Reconciler and a batch service's Job: the model server is scaled to 0 once the run succeeded.

A Job with a successPolicy says `SuccessCriteriaMet` first (Kubernetes 1.31+) and `Complete` only once its
remaining pods are gone; status/batch.py reads either as success, and so must the reconciler.
"""

from __future__ import annotations

import pytest

from fakes import FakeKube, body, model, settled
from inference_operator.reconcile.reconciler import Reconciler

BATCH = {"srcPath": "pvc://data/in/", "destPath": "pvc://results/out", "reqUri": "/predict", "mappingType": "file"}


@pytest.mark.parametrize("condition", ["Complete", "SuccessCriteriaMet"])
async def test_a_succeeded_batch_job_scales_the_model_server_to_zero(reconciler: Reconciler, kube: FakeKube,
                                                                      condition: str) -> None:
    parent = body([model("m", 100, instanceCount=2)], inferType="batch", batch=BATCH)
    parent = await settled(reconciler, kube, parent)
    [job] = [o for (kind, _), o in kube.objects.items() if kind == "Job"]
    assert kube.objects[("Deployment", "service-demo-m")]["spec"]["replicas"] == 2

    job["status"] = {"conditions": [{"type": condition, "status": "True"}]}
    await reconciler.reconcile(parent, kube.children())

    assert kube.objects[("Deployment", "service-demo-m")]["spec"]["replicas"] == 0
    assert kube.status is not None and kube.status["status"] == "finished"
