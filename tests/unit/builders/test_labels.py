"""Labels and owner references name the service and the model."""

from __future__ import annotations

from collections.abc import Callable

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders import labels


class TestLabels:
    def test_selector_is_service_and_model_only(self, make_svc: Callable[..., InferenceService]) -> None:
        svc = make_svc()
        assert labels.selector_labels(svc, svc.spec.models[0]) == {
            "inference.io/service": "service-demo", "inference.io/model": "v1"}

    def test_model_labels(self, make_svc: Callable[..., InferenceService]) -> None:
        svc = make_svc()
        assert labels.model_labels(svc, svc.spec.models[0]) == {
            "inference.io/service": "service-demo", "inference.io/model": "v1",
            "app.kubernetes.io/managed-by": "inference-operator",
            "app.kubernetes.io/part-of": "service-demo"}

    def test_owner_reference(self, make_svc: Callable[..., InferenceService]) -> None:
        assert labels.owner_reference(make_svc()) == {
            "apiVersion": "inference.io/v1alpha1", "kind": "InferenceService", "name": "service-demo",
            "uid": "0b7e-uid", "controller": True, "blockOwnerDeletion": True}

    def test_child_metadata_and_selector(self, make_svc: Callable[..., InferenceService]) -> None:
        svc = make_svc()
        meta = labels.child_metadata(svc, "x", labels.service_labels(svc))
        assert meta["namespace"] == "team-a" and meta["ownerReferences"][0]["uid"] == "0b7e-uid"
        assert "inference.io/model" not in meta["labels"]
