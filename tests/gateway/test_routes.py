"""The RouteTable: services, endpoints and credentials from object bodies; the weighted choice."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from inference_operator.gateway.entries import Endpoint, service_route, slice_endpoints
from inference_operator.gateway.errors import GatewayError
from inference_operator.gateway.routes import RouteTable

from .conftest import NS, service_body, slice_body

UID = "uid-1"


def table_with(models: list[tuple[str, int]], ready: dict[str, list[str]], **kwargs) -> RouteTable:
    table = RouteTable()
    table.upsert_service(service_body("demo", UID, models, **kwargs))
    for model, addresses in ready.items():
        table.upsert_slice(slice_body("demo", model, addresses, 8080))
    return table


class TestServiceRoute:
    def test_models_weights_and_backends(self):
        route = service_route(service_body("demo", UID, [("v1", 70), ("v2", 30)]))
        assert route is not None
        assert [(m.name, m.weight, m.backend) for m in route.models] == [("v1", 70, "demo-v1"), ("v2", 30, "demo-v2")]
        assert route.unavailable is None and not route.app_auth

    def test_stopped_and_auth(self):
        route = service_route(service_body("demo", UID, [("v1", 100)], stopped=True, apps=["a", "b"]))
        assert route and "stopped" in (route.unavailable or "")
        assert route.app_auth and route.app_secrets == ("a", "b")

    def test_invalid_spec_is_unavailable_with_the_reason(self):
        route = service_route(service_body("demo", UID, [("v1", 60)]))
        assert route and "must sum to 100" in (route.unavailable or "")

    def test_no_uid_yet(self):
        body = service_body("demo", UID, [("v1", 100)])
        del body["metadata"]["uid"]
        assert service_route(body) is None

    def test_annotations_become_options(self):
        route = service_route(service_body("demo", UID, [("v1", 100)], annotations={
            "inference.io/gateway-timeout-seconds": "90", "inference.io/gateway-body-limit-mb": "bad"}))
        assert route and route.options.timeout_seconds == 90 and route.options.body_limit_mb is None


class TestSliceEndpoints:
    def test_ready_addresses_and_the_http_port(self):
        body = slice_body("demo", "v1", ["10.0.0.2", "10.0.0.1"], 8080)
        body["endpoints"].append({"addresses": ["10.0.0.3"], "conditions": {"ready": False}})
        body["endpoints"].append({"addresses": ["10.0.0.4"]})  # no conditions: ready
        body["ports"].insert(0, {"name": "metrics", "port": 9090})
        assert slice_endpoints(body) == tuple(Endpoint(f"10.0.0.{i}", 8080) for i in (1, 2, 4))

    def test_no_http_port(self):
        body = slice_body("demo", "v1", ["10.0.0.1"], 8080)
        body["ports"] = [{"name": "grpc", "port": 9000}, {"name": "metrics", "port": 9090}]
        assert slice_endpoints(body) == ()

    def test_fqdn_slices_route_by_name(self):
        body = {**slice_body("demo", "v1", ["a.example"], 80), "addressType": "FQDN"}
        assert slice_endpoints(body) == (Endpoint("a.example", 80),)

    def test_ipv6_origin(self):
        assert Endpoint("fd00::1", 80).origin == "http://[fd00::1]:80"


class TestTable:
    def test_slices_of_one_service_are_merged_and_removed(self):
        table = table_with([("v1", 100)], {})
        a = slice_body("demo", "v1", ["10.0.0.1"], 8080, suffix="a")
        b = slice_body("demo", "v1", ["10.0.0.2"], 8080, suffix="b")
        table.upsert_slice(a)
        table.upsert_slice(b)
        assert [e.host for e in table.endpoints(NS, "demo-v1")] == ["10.0.0.1", "10.0.0.2"]
        table.remove_slice(a)
        assert [e.host for e in table.endpoints(NS, "demo-v1")] == ["10.0.0.2"]
        table.replace_slices([])
        assert table.endpoints(NS, "demo-v1") == ()

    def test_replace_in_one_namespace_keeps_the_others(self):
        table = RouteTable()
        table.upsert_service(service_body("a", "uid-a", [("v1", 100)], namespace="one"))
        table.upsert_service(service_body("b", "uid-b", [("v1", 100)], namespace="two"))
        table.upsert_slice(slice_body("a", "v1", ["10.0.0.1"], 80, namespace="one"))
        table.upsert_slice(slice_body("b", "v1", ["10.0.0.2"], 80, namespace="two"))
        table.replace_services([], namespace="one")
        table.replace_slices([], namespace="one")
        assert set(table.services) == {"uid-b"}
        assert table.endpoints("two", "b-v1") and not table.endpoints("one", "a-v1")

    def test_unknown_service_is_404(self):
        with pytest.raises(GatewayError) as err:
            RouteTable().lookup("nope")
        assert err.value.status == 404

    def test_removed_service_is_forgotten(self):
        table = table_with([("v1", 100)], {"v1": ["10.0.0.1"]})
        table.remove_service(service_body("demo", UID, [("v1", 100)]))
        assert UID not in table.services

    def test_wanted_secrets_and_listeners(self):
        table = RouteTable()
        calls = []
        table.listeners.append(lambda: calls.append(1))
        table.upsert_service(service_body("demo", UID, [("v1", 100)], apps=["s1"]))
        assert table.wanted_secrets() == {(NS, "s1")} and calls

    def test_secret_data_is_decoded_and_deleted(self):
        table = RouteTable()
        table.upsert_service(service_body("demo", UID, [("v1", 100)], apps=["s1"]))
        table.set_secret(NS, "s1", {"appKey": "a2V5", "appSecret": "c2VjcmV0", "appCode": "!!"})
        (app,) = table.apps(table.lookup(UID))
        assert (app.key, app.secret, app.code) == ("key", "secret", "")
        table.set_secret(NS, "s1", None)
        assert table.apps(table.lookup(UID)) == []


class TestChoose:
    def test_weights_are_followed(self):
        table = table_with([("v1", 70), ("v2", 30), ("dark", 0)], {"v1": ["10.0.0.1"], "v2": ["10.0.0.2"],
                                                                    "dark": ["10.0.0.3"]})
        rng, route = random.Random(7), table.lookup(UID)
        picks = Counter(table.choose(route, rng)[0].name for _ in range(10000))
        assert picks["dark"] == 0
        assert abs(picks["v1"] / 10000 - 0.7) < 0.02

    def test_a_model_without_ready_endpoints_gives_its_share_to_the_others(self):
        table = table_with([("v1", 70), ("v2", 30)], {"v1": ["10.0.0.1"]})
        route = table.lookup(UID)
        assert {table.choose(route, random.Random(i))[0].name for i in range(200)} == {"v1"}

    def test_only_a_weight_zero_model_ready_is_503(self):
        table = table_with([("v1", 100), ("dark", 0)], {"dark": ["10.0.0.3"]})
        with pytest.raises(GatewayError) as err:
            table.choose(table.lookup(UID), random.Random())
        assert err.value.status == 503 and "v1" in err.value.message

    def test_stopped_is_400(self):
        table = table_with([("v1", 100)], {"v1": ["10.0.0.1"]}, stopped=True)
        with pytest.raises(GatewayError) as err:
            table.choose(table.lookup(UID), random.Random())
        assert (err.value.status, err.value.code) == (400, "ModelArts.4203")

    def test_endpoints_are_spread(self):
        table = table_with([("v1", 100)], {"v1": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]})
        route, rng = table.lookup(UID), random.Random(1)
        assert {table.choose(route, rng)[1].host for _ in range(100)} == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}


class TestPick:
    """`pick`: `choose` aware of models that scale to zero (a sleeping model: scales to zero, no endpoint)."""

    def test_a_service_with_no_sleeping_model_draws_as_choose_does(self):
        for sleepy in ((), ("v2",)):  # v2 scales to zero but is awake: nothing sleeps
            table = table_with([("v1", 70), ("v2", 30)], {"v1": ["10.0.0.1", "10.0.0.2"], "v2": ["10.0.0.3"]},
                               scale_to_zero=sleepy)
            route = table.lookup(UID)
            assert route.scales_to_zero == bool(sleepy)
            a, b = random.Random(3), random.Random(3)
            picks = [table.pick(route, a) for _ in range(500)]
            assert [(p.model, p.endpoint) for p in picks] == [table.choose(route, b) for _ in range(500)]
            assert a.random() == b.random() and not any(p.woken for p in picks)

    def test_the_only_model_asleep_holds_the_request(self):
        table = table_with([("v1", 100)], {}, scale_to_zero=("v1",))
        pick = table.pick(table.lookup(UID), random.Random(1))
        assert (pick.model.name, pick.endpoint, pick.woken) == ("v1", None, None)
        assert not table.ready(table.lookup(UID))
        with pytest.raises(GatewayError) as err:  # choose cannot hold: 503 as ever
            table.choose(table.lookup(UID), random.Random(1))
        assert err.value.status == 503

    def test_ready_models_keep_their_split_and_the_sleeping_one_gets_its_share_as_demand(self):
        table = table_with([("v1", 50), ("v2", 30), ("v3", 20)], {"v1": ["10.0.0.1"], "v2": ["10.0.0.2"]},
                           scale_to_zero=("v3",))
        route, rng = table.lookup(UID), random.Random(5)
        picks = [table.pick(route, rng) for _ in range(20000)]
        served = Counter(p.model.name for p in picks)
        assert set(served) == {"v1", "v2"} and all(p.endpoint for p in picks)
        assert abs(served["v1"] / 20000 - 50 / 80) < 0.02
        woken = Counter(p.woken.name for p in picks if p.woken)
        assert set(woken) == {"v3"} and abs(woken["v3"] / 20000 - 0.2) < 0.02

    def test_nothing_ready_holds_for_the_sleeping_model_picked_else_the_first(self):
        table = table_with([("v1", 50), ("v2", 25), ("v3", 25)], {}, scale_to_zero=("v2", "v3"))
        route = table.lookup(UID)
        held = Counter(table.pick(route, random.Random(i)).model.name for i in range(2000))
        assert all(table.pick(route, random.Random(i)).endpoint is None for i in range(50))
        # v1 does not scale to zero: its share waits for v2, the first sleeping model
        assert set(held) == {"v2", "v3"} and abs(held["v3"] / 2000 - 0.25) < 0.04

    def test_named_models_without_weight_are_picked_evenly(self):
        table = table_with([("v1", 100), ("a", 0), ("b", 0)], {"a": ["10.0.0.1"]}, scale_to_zero=("b",))
        route = table.lookup(UID)
        among = tuple(m for m in route.models if m.name in ("a", "b"))
        rng = random.Random(2)
        picks = [table.pick(route, rng, among) for _ in range(2000)]
        assert {p.model.name for p in picks} == {"a"}
        assert abs(sum(1 for p in picks if p.woken) / 2000 - 0.5) < 0.05

    def test_a_stopped_service_refuses_before_anything_sleeps(self):
        table = table_with([("v1", 100)], {}, stopped=True, scale_to_zero=("v1",))
        with pytest.raises(GatewayError) as err:
            table.pick(table.lookup(UID), random.Random())
        assert (err.value.status, err.value.code) == (400, "ModelArts.4203")

    def test_endpoint_listeners_hear_which_service_changed(self):
        table = table_with([("v1", 100)], {}, scale_to_zero=("v1",))
        heard: list[tuple[str, str]] = []
        table.endpoint_listeners.append(heard.append)
        table.upsert_slice(slice_body("demo", "v1", ["10.0.0.1"], 8080))
        table.remove_slice(slice_body("demo", "v1", ["10.0.0.1"], 8080))
        assert heard == [(NS, "demo-v1"), (NS, "demo-v1")]

    def test_route_listeners_hear_which_service_changed(self):
        table = table_with([("v1", 100)], {}, scale_to_zero=("v1",))
        heard: list[str | None] = []
        table.route_listeners.append(heard.append)
        table.upsert_service(service_body("other", "uid-2", [("v1", 100)]))  # new: only its own id
        assert heard == ["uid-2"]
        heard.clear()
        table.upsert_service(service_body("demo", UID, [("v1", 100)], stopped=True))
        table.remove_service(service_body("demo", UID, [("v1", 100)]))
        table.replace_services([])
        assert heard == [UID, UID, None]  # the service of an upsert or a removal; a re-list: any
