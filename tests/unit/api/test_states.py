"""The state enums and the CRD's status enums list the same values."""

from typing import get_args

from inference_operator.api import v1alpha1
from inference_operator.api.states import ModelState, ServiceState


def literal_values(model: type, field: str) -> set[str]:
    annotation = model.model_fields[field].annotation
    [literal, _none] = get_args(annotation)
    return set(get_args(literal))


def test_service_states_are_the_crds():
    assert literal_values(v1alpha1.InferenceServiceStatus, "status") == {s.value for s in ServiceState}


def test_model_states_are_the_crds():
    assert literal_values(v1alpha1.ModelStatus, "status") == {s.value for s in ModelState}


def test_a_state_is_its_string_on_the_wire():
    import json
    assert json.dumps({"status": ServiceState.RUNNING}) == '{"status": "running"}'
    assert ServiceState("running") is ServiceState.RUNNING


def test_routing_policies_are_the_crds():
    from inference_operator.api.states import Routing
    assert literal_values(v1alpha1.InferenceServiceSpec, "routing") == {r.value for r in Routing}
