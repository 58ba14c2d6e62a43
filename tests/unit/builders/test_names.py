"""Child names are deterministic, DNS-1035 safe and at most 63 characters."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from inference_operator.api.v1alpha1 import InferenceService
from inference_operator.builders import names

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class TestNames:
    def test_short_names_are_kept(self, make_svc: Callable[..., InferenceService]) -> None:
        svc = make_svc()
        model = svc.spec.models[0]
        assert names.deployment_name(svc, model) == "service-demo-v1"
        assert names.service_name(svc, model) == names.hpa_name(svc, model) == "service-demo-v1"
        assert names.httproute_name(svc) == "service-demo"

    @pytest.mark.parametrize(("service", "model"), [("s" * 63, "m" * 40), ("a" * 30, "b" * 40),
                                                    ("svc-" + "x" * 55, "-".join("abcdefghij"))])
    def test_long_names_are_cut_with_a_hash(self, service: str, model: str) -> None:
        name = names.child_name(service, model)
        assert len(name) <= 63 and DNS_1035.match(name), name
        assert name == names.child_name(service, model)
        assert name != names.child_name(service, model[:-1] + "z")

    def test_exactly_63_is_untouched(self) -> None:
        assert names.fit_name("a" * 63) == "a" * 63
        assert len(names.fit_name("a" * 64)) == 63
