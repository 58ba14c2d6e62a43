"""Choosing an endpoint within an OpenAI-speaking model: least load, prefix affinity with bounded loads, the
engines' queue metrics (gateway/picker.py, gateway/engine_metrics.py)."""

from __future__ import annotations

import random
from collections import Counter

from inference_operator.api.states import Routing
from inference_operator.gateway.engine_metrics import EngineLoads, queued
from inference_operator.gateway.entries import Endpoint, ModelRoute, service_route
from inference_operator.gateway.picker import MIN_WORDS, Picker, prompt_prefix

EIGHT = tuple(Endpoint(f"10.0.0.{i}", 8000) for i in range(8))
PREFIX = ModelRoute("m", 100, "svc-m", "qwen", True, routing=Routing.PREFIX)
KEY = ("ns", "svc-m")
LEAST = ModelRoute("m", 100, "svc-m", "qwen", True, routing=Routing.LEAST_LOAD)


def system(group: int) -> tuple[str, ...]:
    return tuple(f"g{group}w{i}" for i in range(300))[:256]


def test_one_prefix_goes_to_one_engine_on_every_gateway_replica():
    first, second = Picker(), Picker()
    rng = random.Random(1)
    picks = {first.pick(PREFIX, KEY, EIGHT, system(3), rng) for _ in range(20)}
    assert len(picks) == 1
    assert picks == {second.pick(PREFIX, KEY, EIGHT, system(3), rng)}


def test_prefixes_spread_over_the_engines():
    picker = Picker()
    owners = Counter(picker.pick(PREFIX, KEY, EIGHT, system(g), random.Random(0)) for g in range(64))
    assert len(owners) == 8 and max(owners.values()) <= 3 * 64 / 8


def test_a_busy_engine_passes_its_prefix_on_and_a_holder_of_it_gets_it_when_free():
    picker, rng = Picker(), random.Random(0)
    home = picker.pick(PREFIX, KEY, EIGHT, system(1), rng)
    assert home is not None
    spread = []
    for _ in range(16):
        chosen = picker.pick(PREFIX, KEY, EIGHT, system(1), rng)
        assert chosen is not None
        picker.begin(chosen, KEY)
        spread.append(chosen)
    assert spread[0] == home  # busy and over its share of the recent requests after that: it passes on
    assert len(set(spread)) > 1 and Counter(spread)[home] < 16
    for chosen in spread:
        picker.end(chosen, KEY)
    back = picker.pick(PREFIX, KEY, EIGHT, system(1), rng)  # free again: an engine that holds the prefix
    assert back in set(spread) and not picker.inflight


def test_a_short_prompt_and_least_load_take_the_least_loaded_engine():
    picker, rng = Picker(), random.Random(0)
    for endpoint in EIGHT[:7]:
        picker.begin(endpoint, KEY)
    assert picker.pick(LEAST, KEY, EIGHT, system(1), rng) == EIGHT[7]
    assert picker.pick(PREFIX, KEY, EIGHT, system(1)[:MIN_WORDS - 1], rng) == EIGHT[7]


def test_weighted_random_keeps_the_tables_draw():
    plain = ModelRoute("m", 100, "svc-m")
    assert Picker().pick(plain, KEY, EIGHT, system(1), random.Random(0)) is None


def test_engine_queues_count_other_gateways_requests_until_stale():
    now = [100.0]
    loads = EngineLoads(interval=1.0, clock=lambda: now[0])
    picker = Picker(loads)
    page = ('vllm:num_requests_running{model_name="qwen"} 5.0\n'
            '# HELP x\nvllm:num_requests_waiting{model_name="qwen"} 3.0\n')
    assert queued(page) == 8.0 and queued("other_metric 1\n") is None
    picker.begin(EIGHT[0], KEY)
    loads.record(EIGHT[0], page, own=picker.own(EIGHT[0]))
    assert picker.load(EIGHT[0]) == 1 + 7
    assert picker.pick(LEAST, KEY, EIGHT[:2], (), random.Random(0)) == EIGHT[1]
    now[0] += 3.5  # older than three intervals: ignored
    assert picker.load(EIGHT[0]) == 1


def test_the_prompt_is_read_from_chat_and_completions_bodies():
    chat = {"messages": [{"role": "system", "content": "you are kind"},
                         {"role": "user", "content": [{"type": "text", "text": "hi there"}]}]}
    assert prompt_prefix(chat) == ("you", "are", "kind", "hi", "there")
    assert prompt_prefix({"prompt": "a  b\nc"}) == ("a", "b", "c")
    assert prompt_prefix({"prompt": ["a b", 3, "c"]}) == ("a", "b", "c")
    assert len(prompt_prefix({"prompt": "w " * 100_000})) == 256
    assert prompt_prefix({"messages": "nope"}) == () == prompt_prefix(None)


def body(runtime: str, routing: str | None = None) -> dict:
    spec = {"models": [{"name": "m", "runtime": runtime, "image": "img", "weight": 100, "modelName": "qwen",
                       "modelVersion": "1"}]}
    if routing:
        spec["routing"] = routing
    return {"metadata": {"uid": "u1", "name": "s", "namespace": "ns"}, "spec": spec}


def test_openai_models_default_to_prefix_and_others_stay_weighted_random():
    assert service_route(body("vllm")).models[0].routing is Routing.PREFIX
    assert service_route(body("vllm", "least-load")).models[0].routing is Routing.LEAST_LOAD
    assert service_route(body("custom", "least-load")).models[0].routing is Routing.WEIGHTED_RANDOM


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_32_groups_on_8_engines_get_even_requests():
    """The shared-prefix workload: 32 groups hashed onto 8 engines land 2 to 6 per engine; requests of random
    groups at a steady rate, each in flight for the next 6 arrivals (about one per engine): every engine ends
    within 1.5x of another, as the in-flight bound alone (never reached at this load) cannot do."""
    clock, rng = Clock(), random.Random(5)
    picker = Picker(clock=clock)
    flying: list[Endpoint] = []
    served: Counter[Endpoint] = Counter()
    for _ in range(800):
        clock.now += 0.2
        chosen = picker.pick(PREFIX, KEY, EIGHT, system(rng.randrange(32)), rng)
        assert chosen is not None
        picker.begin(chosen, KEY)
        flying.append(chosen)
        served[chosen] += 1
        if len(flying) > 6:
            picker.end(flying.pop(0), KEY)
    assert max(served.values()) <= 1.5 * min(served.values()), sorted(served.values())
    homes = Counter(picker.pick(PREFIX, KEY, EIGHT, system(g), rng) for g in range(32))
    assert max(homes.values()) >= 2 * min(homes.values())  # the groups themselves are uneven


def test_requests_one_after_the_other_stay_on_the_prefixs_engine():
    clock, rng = Clock(), random.Random(0)
    picker = Picker(clock=clock)
    picks = []
    for _ in range(50):
        clock.now += 0.5
        chosen = picker.pick(PREFIX, KEY, EIGHT, system(1), rng)
        assert chosen is not None
        picker.begin(chosen, KEY)
        picks.append(chosen)
        picker.end(chosen, KEY)
    assert len(set(picks)) == 1  # never busy: never over a share


def test_a_prefix_spills_to_the_engine_that_already_holds_it():
    clock, rng = Clock(), random.Random(0)
    picker = Picker(clock=clock)
    home = picker.pick(PREFIX, KEY, EIGHT, system(2), rng)
    assert home is not None
    for _ in range(3):  # the home engine busy and well over its share
        picker.begin(home, KEY)
    spilled = picker.pick(PREFIX, KEY, EIGHT, system(2), rng)
    assert spilled not in (None, home)
    picker.begin(spilled, KEY)
    picker.end(spilled, KEY)
    clock.now += 1
    assert picker.pick(PREFIX, KEY, EIGHT, system(2), rng) == spilled  # its cache holds the prefix now
