"""Which ready endpoint of an OpenAI-speaking model a request goes to (spec.routing; docs/gateway.md).

- weighted-random: uniform, as for every other model (routes.py's draw is kept).
- least-load: the endpoint with the fewest requests in flight: this gateway's own count (exact, now) plus
  what the engine's queue metrics say the other gateway replicas have there (engine_metrics.py); ties at
  random.
- prefix: consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018). The prompt's
  leading `PREFIX_WORDS` words (tokens are words, as in the test engine) hash to a point on a ring of
  `VNODES` points per endpoint; the request goes to the first endpoint clockwise whose load is under the
  bound `max(FLOOR, ceil(FACTOR * (total load + 1) / endpoints))` and, while it has a request in flight,
  whose share of the model's recent requests (decayed over `RECENT_SECONDS`) is under `FAIR` times the
  even share. Requests sharing a prefix therefore land on one engine, whose prefix cache holds it, until
  that engine is busy, then on the next ones on the ring (so a hot system prompt spreads instead of piling
  onto one replica), and a slow engine, which holds its requests longer, is passed over; after `SAMPLE`
  full ones in a row, least-load. The share bound is what evens the engines out when they are not busy:
  32 groups hashed onto 8 engines land 2 to 6 per engine (balls in bins; more points per endpoint do not
  change that), so without it an engine gets 3 times another's requests at a load none of them notices.
  An engine over its share passes the prefix to another engine that already served it (up to `HOMES` are
  remembered per prefix), else to one more, whose cache then holds it too: a prefix lives on one or two
  engines, not on all. An idle engine is never over its share: requests one after the other stay on the
  prefix's engine. The ring depends only on the endpoints' addresses, so every gateway replica hashes a
  prefix to the same engine without talking to the others until it first spills (each then evens out its
  own requests). A prompt shorter than `MIN_WORDS` has no prefix worth keeping: least-load.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from inference_operator.api.states import Routing
from inference_operator.gateway.adapter_loads import Pulse
from inference_operator.gateway.adapters import SentAdapters
from inference_operator.gateway.engine_metrics import EngineLoads
from inference_operator.gateway.entries import Endpoint, Key, ModelRoute

PREFIX_WORDS = 256  # the leading words a prefix is named by (4 blocks of 64, the prefix routers' usual block)
MIN_WORDS = 64
VNODES = 40  # points per endpoint on the ring: loads within a few percent of even at 8 endpoints
FACTOR = 1.25  # an endpoint takes up to 25 % more than the average before its prefix spills over
FLOOR = 4  # ... and at least this many: an engine batches several sequences at no cost
SAMPLE = 32  # least-load looks at every endpoint up to this many, else at this many drawn at random
RINGS = 256  # rings kept (one per endpoint set in use)
HOMES = 4  # endpoints a prefix is remembered on (its ring's first and the last ones it spilled to)
PREFIXES = 65536  # prefixes remembered, the least recently used forgotten first
FAIR = 1.2  # a busy endpoint takes up to 20 % more than an even share of the recent requests
SLACK = 1  # ... and 1 request more: a few requests are no share to judge by (a cold start spreads less)
RECENT_SECONDS = 20.0  # ... recent: a request weighs exp(-age / RECENT_SECONDS), the span of a bench stage


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _texts(document: Mapping[str, Any]) -> list[str]:
    prompt = document.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list):
        return [p for p in prompt if isinstance(p, str)]
    texts: list[str] = []
    messages = document.get("messages")
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return texts


def prompt_prefix(document: Mapping[str, Any] | None, limit: int = PREFIX_WORDS) -> tuple[str, ...]:
    """The leading `limit` words of a completions `prompt` or of the chat `messages`' text, in order. Only
    the start of each text is split (a word is rarely longer than 64 characters): a long prompt costs no
    more than a short one."""
    words: list[str] = []
    for text in _texts(document or {}):
        wanted = limit - len(words)
        found = text[:8 * wanted].split()  # words are short: usually enough, and cheap
        if len(found) <= wanted and len(text) > 8 * wanted:
            found = text[:64 * wanted].split()
        words.extend(found[:wanted])
        if len(words) >= limit:
            break
    return tuple(words)


def _decrement(counts: dict[Any, int], key: Any) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


class Ring:
    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        points = sorted((_point(f"{e.host}:{e.port}#{i}"), e) for e in endpoints for i in range(VNODES))
        self.keys = [p for p, _ in points]
        self.owners = [e for _, e in points]
        self.members = frozenset(endpoints)

    def walk(self, key: int) -> Iterator[Endpoint]:
        """The endpoints clockwise from `key`, each once."""
        start, seen = bisect.bisect(self.keys, key), set()
        for i in range(len(self.owners)):
            owner = self.owners[(start + i) % len(self.owners)]
            if owner not in seen:
                seen.add(owner)
                yield owner


class Recent:
    """Requests per endpoint and per model Service, each weighted exp(-age / RECENT_SECONDS). Every weight
    decays alike, so they are kept scaled by exp((t - origin) / RECENT_SECONDS) and compared as they are: a
    request adds the current scale, O(1), and the sums are rescaled only when the scale grows large."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.origin = clock()
        self.counts: dict[Endpoint, float] = {}
        self.totals: dict[Key, float] = {}

    def scale(self) -> float:
        weight = math.exp((self.clock() - self.origin) / RECENT_SECONDS)
        if weight > 1e12:  # every ~4.6 minutes: keep the floats well within range
            self.origin = self.clock()
            self.counts = {e: c / weight for e, c in self.counts.items() if c / weight > 1e-9}
            self.totals = {k: t / weight for k, t in self.totals.items() if t / weight > 1e-9}
            weight = 1.0
        return weight

    def add(self, endpoint: Endpoint, backend: Key) -> None:
        weight = self.scale()
        self.counts[endpoint] = self.counts.get(endpoint, 0.0) + weight
        self.totals[backend] = self.totals.get(backend, 0.0) + weight

    def over_share(self, endpoint: Endpoint, backend: Key, endpoints: int) -> bool:
        """One more request would give `endpoint` over FAIR times an even share of the recent ones."""
        weight = self.scale()
        share = FAIR * (self.totals.get(backend, 0.0) + weight) / endpoints + SLACK * weight
        return self.counts.get(endpoint, 0.0) + weight > share


class Picker:
    def __init__(self, loads: EngineLoads | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.loads = loads or EngineLoads()
        self.inflight: dict[Endpoint, int] = {}
        self.totals: dict[Key, int] = {}  # in flight per model Service, (namespace, name)
        self.recent = Recent(clock)
        self._rings: OrderedDict[tuple[Endpoint, ...], Ring] = OrderedDict()
        self._homes: OrderedDict[int, list[Endpoint]] = OrderedDict()  # a prefix's point -> who holds it
        self.sent_adapters = SentAdapters()  # the LoRA adapters sent to each endpoint lately (gateway/adapters.py)
        self.room = Pulse()  # fired when a request ends or the engines were read: requests waiting for room look again
        self.loads.listeners.append(self.room.fire)

    def begin(self, endpoint: Endpoint, backend: Key) -> None:
        """A request goes to `endpoint` of the model Service `backend`."""
        self.inflight[endpoint] = self.inflight.get(endpoint, 0) + 1
        self.totals[backend] = self.totals.get(backend, 0) + 1
        self.recent.add(endpoint, backend)

    def end(self, endpoint: Endpoint, backend: Key) -> None:
        _decrement(self.inflight, endpoint)
        _decrement(self.totals, backend)
        self.room.fire()

    def own(self, endpoint: Endpoint) -> int:
        return self.inflight.get(endpoint, 0)

    def load(self, endpoint: Endpoint) -> float:
        return self.inflight.get(endpoint, 0) + self.loads.others(endpoint)

    def pick(self, model: ModelRoute, backend: Key, endpoints: tuple[Endpoint, ...], prefix: Sequence[str],
             rng: random.Random) -> Endpoint | None:
        """The endpoint of the model Service `backend` by the model's policy (`prefix`: the prompt's leading
        words); None: weighted-random (keep the table's draw). A request for a LoRA adapter is placed by adapter
        affinity instead, whatever the policy (gateway/adapter_place.py)."""
        if model.routing is Routing.WEIGHTED_RANDOM or not endpoints:
            return None
        if model.routing is Routing.PREFIX and len(prefix) >= MIN_WORDS:
            total = self.totals.get(backend, 0) + self.loads.others_total(endpoints)
            return self.by_prefix(endpoints, " ".join(prefix), total, rng, backend)
        return self.least_loaded(endpoints, rng)

    def least_loaded(self, endpoints: Sequence[Endpoint], rng: random.Random) -> Endpoint:
        """The least loaded endpoint; of many, the least loaded of `SAMPLE` drawn at random (the power of d
        choices: within a request or two of the least loaded, at a cost that does not grow with the model)."""
        best, fewest = [], math.inf
        for endpoint in endpoints if len(endpoints) <= SAMPLE else rng.sample(endpoints, SAMPLE):
            load = self.load(endpoint)
            if load < fewest:
                best, fewest = [endpoint], load
            elif load == fewest:
                best.append(endpoint)
        return best[0] if len(best) == 1 else rng.choice(best)

    def by_prefix(self, endpoints: tuple[Endpoint, ...], prefix: str, total: float, rng: random.Random,
                  backend: Key = ("", "")) -> Endpoint:
        """Of the endpoints that hold the prefix (its point's first on the ring, then those it spilled to),
        the one with the fewest recent requests that fits: its load under the bound (`total`: the load of
        all of them) and, when it is busy, its recent share under FAIR times an even one. When none fits,
        the prefix spills to one more: the one that fits with the fewest recent requests among the next
        `SAMPLE` on the ring, remembered for the prefix's next requests (its cache will hold the prefix)."""
        bound, count = max(FLOOR, math.ceil(FACTOR * (total + 1) / len(endpoints))), len(endpoints)

        def fits(endpoint: Endpoint) -> bool:
            load = self.load(endpoint)
            return load < bound and not (load >= 1 and self.recent.over_share(endpoint, backend, count))

        ring, point = self._ring(endpoints), _point(prefix)
        homes = self._homes.get(point)
        if homes is None:
            homes = self._homes[point] = [next(ring.walk(point))]
            if len(self._homes) > PREFIXES:
                self._homes.popitem(last=False)
        else:
            self._homes.move_to_end(point)
            homes[:] = [e for e in homes if e in ring.members] or [next(ring.walk(point))]
        chosen = self._fewest_recent(e for e in homes if fits(e))
        if chosen is not None:
            return chosen
        chosen = self._fewest_recent(e for e in islice(ring.walk(point), SAMPLE) if e not in homes and fits(e))
        if chosen is None:
            return self.least_loaded(endpoints, rng)  # the prefix's neighbourhood is full
        homes.append(chosen)
        if len(homes) > HOMES:
            del homes[1]  # the ring's own stays; the spill taken longest ago goes
        return chosen

    def _fewest_recent(self, endpoints: Iterable[Endpoint]) -> Endpoint | None:
        counts = self.recent.counts
        return min(endpoints, key=lambda e: counts.get(e, 0.0), default=None)

    def _ring(self, endpoints: tuple[Endpoint, ...]) -> Ring:
        ring = self._rings.get(endpoints)
        if ring is None:
            ring = self._rings[endpoints] = Ring(endpoints)
            if len(self._rings) > RINGS:
                self._rings.popitem(last=False)
        else:
            self._rings.move_to_end(endpoints)
        return ring
