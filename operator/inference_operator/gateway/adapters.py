"""Adapter affinity: which endpoints a request for a LoRA adapter may go to (docs/lora.md, "Routing").

vLLM mixes at most `--max-loras` adapters in a batch (its GPU slots) and reports them on `/metrics` as
`vllm:lora_requests_info{running_lora_adapters, waiting_lora_adapters, max_lora}`. A request for an adapter an
engine runs already joins its batch; on an engine with a free slot it pays a load of the adapter first; on an
engine whose slots are all taken by other adapters it waits for one to drain. So, as llm-d's adapter affinity
scorer does: the endpoints running (or queueing) the adapter; else those with a free slot; when there is neither,
none: the request waits in the gateway for room (gateway/adapter_place.py; docs/lora.md says why). The least
loaded of what `choose` returns gets it. Endpoints whose metrics are unknown (no fresh reading) count as having
room: the engine itself is the last word.

The metrics lag (read every second) and name only adapters with requests in flight, while an engine keeps an
idle adapter in its slot until another needs it. So the gateway also remembers, per endpoint, the last
`max_lora` adapters it sent there (`SentAdapters`): likely still in a slot, so a request for one of them counts as
running there. Each gateway replica remembers its own; the metrics carry the others'.

Which adapters an engine holds at all is read from its `/v1/models` (adapters carry `parent`) with its metrics:
a replica that has just started, or restarted, holds none until the operator loads them (runtime/adapters.py,
within a few seconds), and gets no request for an adapter it lacks while another replica has it with room. When
none holds it with room, the gateway loads it on one with a free slot (gateway/adapter_loads.py) first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from inference_operator.gateway.entries import Endpoint

INFO = "vllm:lora_requests_info"
MAX_LABEL = 4096  # bytes of a label value read (64 adapter names)
DEFAULT_SLOTS = 4  # vLLM's max_lora as the operator sets it when maxLoras is not given (api/adapters.py)
MAX_LISTED = 1024  # entries of a /v1/models answer read
REMEMBERED = 4096  # endpoints remembered (the least recently routed to forgotten first)


@dataclass(frozen=True, slots=True)
class LoraInfo:
    running: frozenset[str]
    waiting: frozenset[str]
    max_lora: int
    held: frozenset[str] | None = None  # every adapter it has loaded (its /v1/models); None: not read

    @property
    def free(self) -> bool:
        return len(self.running) < self.max_lora


def _labels(text: str) -> dict[str, str]:
    """`a="x",b="y"` -> {"a": "x", "b": "y"} (values without escapes, as vLLM writes adapter names)."""
    found, rest = {}, text
    while rest:
        name, sep, rest = rest.partition('="')
        value, _, rest = rest.partition('"')
        if not sep:
            break
        found[name.strip(", ")] = value[:MAX_LABEL]
        rest = rest.lstrip(",")
    return found


def lora_info(text: str) -> LoraInfo | None:
    """The newest `vllm:lora_requests_info` sample of a /metrics page (vLLM keeps one per label set, its value
    the time it was set); None: the page has none, or LoRA is off (max_lora 0)."""
    best: tuple[float, LoraInfo] | None = None
    for line in text.splitlines():
        if not line.startswith(INFO + "{"):
            continue
        inside, _, value = line[len(INFO) + 1:].rpartition("}")
        labels = _labels(inside)
        try:
            stamp, max_lora = float(value.strip() or 0), int(labels.get("max_lora", "0"))
        except ValueError:
            continue
        info = LoraInfo(_names(labels.get("running_lora_adapters", "")),
                        _names(labels.get("waiting_lora_adapters", "")), max_lora)
        if best is None or stamp >= best[0]:
            best = (stamp, info)
    return best[1] if best is not None and best[1].max_lora > 0 else None


def _names(value: str) -> frozenset[str]:
    return frozenset(name for name in value.split(",") if name)


@dataclass
class SentAdapters:
    """The adapters this gateway last sent to each endpoint, as many as it has slots."""

    by_endpoint: OrderedDict[Endpoint, OrderedDict[str, None]] = field(default_factory=OrderedDict)

    def note(self, endpoint: Endpoint, adapter: str, info: LoraInfo | None) -> None:
        sent = self.by_endpoint.pop(endpoint, None) or OrderedDict()
        sent.pop(adapter, None)
        sent[adapter] = None
        while len(sent) > (info.max_lora if info is not None else DEFAULT_SLOTS):
            sent.popitem(last=False)
        self.by_endpoint[endpoint] = sent
        if len(self.by_endpoint) > REMEMBERED:
            self.by_endpoint.popitem(last=False)

    def has(self, endpoint: Endpoint, adapter: str) -> bool:
        sent = self.by_endpoint.get(endpoint)
        return sent is not None and adapter in sent


def held_adapters(answer: Any) -> frozenset[str] | None:
    """The adapters an engine's `/v1/models` answer lists (entries with a `parent`); None: not a model list."""
    data = answer.get("data") if isinstance(answer, Mapping) else None
    if not isinstance(data, list):
        return None
    return frozenset(e["id"] for e in data[:MAX_LISTED] if isinstance(e, Mapping) and e.get("parent")
                     and isinstance(e.get("id"), str) and len(e["id"]) <= MAX_LABEL)


class Step(Enum):
    SEND = "send"  # to the least loaded of the endpoints, the adapter loaded there first if it `lacks` it
    HOLD = "hold"  # every endpoint's slots run other adapters: wait in the gateway for room
    BARRED = "barred"  # only endpoints whose last load of it failed lately have room: refused until their backoff ends


@dataclass(frozen=True, slots=True)
class Choice:
    step: Step
    endpoints: tuple[Endpoint, ...] = ()  # SEND: the candidates, best first; BARRED: the ones whose loads failed


def lacks(seen: LoraInfo | None, adapter: str) -> bool:
    """The engine is known not to hold `adapter` (its /v1/models read and without it): it must be loaded first."""
    return seen is not None and seen.held is not None and adapter not in seen.held


def choose(endpoints: Sequence[Endpoint], adapter: str, info: Callable[[Endpoint], LoraInfo | None],
           recent: SentAdapters | None = None, loading: Collection[Endpoint] = (),
           barred: Callable[[Endpoint], bool] = lambda _: False) -> Choice:
    """Where a request for `adapter` goes, best first: the engines holding it (or whose list is unknown) that run
    or queue it, were sent it lately, or are loading it now (`loading`: the request joins that load); else those
    holding it with a free slot (or unknown metrics); else those lacking it with a free slot, where it is loaded
    first, unless their last load of it failed lately (`barred`); else nowhere: HOLD, or BARRED when only barred
    engines have room. Never to an engine whose slots all run other adapters."""
    active: list[Endpoint] = []
    room: list[Endpoint] = []
    elsewhere: list[Endpoint] = []
    refused: list[Endpoint] = []
    for endpoint in endpoints:
        seen = info(endpoint)
        if endpoint in loading:
            active.append(endpoint)
        elif lacks(seen, adapter):
            if seen is not None and seen.free:
                (refused if barred(endpoint) else elsewhere).append(endpoint)
        elif (seen is not None and (adapter in seen.running or adapter in seen.waiting)) or \
                (recent is not None and recent.has(endpoint, adapter)):
            active.append(endpoint)
        elif seen is None or seen.free:
            room.append(endpoint)
    if active or room or elsewhere:
        return Choice(Step.SEND, tuple(active or room or elsewhere))
    return Choice(Step.BARRED, tuple(refused)) if refused else Choice(Step.HOLD)
