"""Which ready endpoint of an OpenAI-speaking model a request goes to (spec.routing; docs/gateway.md).

- weighted-random: uniform, as for every other model (routes.py's draw is kept).
- least-load: the endpoint with the fewest requests in flight: this gateway's own count (exact, now) plus
  what the engine's queue metrics say the other gateway replicas have there (engine_metrics.py); ties at
  random.
- prefix: consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018). The prompt's
  leading `PREFIX_WORDS` words (tokens are words, as in the test engine) hash to a point on a ring of
  `VNODES` points per endpoint; the request goes to the first endpoint clockwise whose load is under the
  bound `max(FLOOR, ceil(FACTOR * (total load + 1) / endpoints))`. Requests sharing a prefix therefore
  land on one engine, whose prefix cache holds it, until that engine is busy, then on the next ones on
  the ring (so a hot system prompt spreads instead of piling onto one replica), and a slow engine, which
  holds its requests longer, is passed over; after `SAMPLE` full ones in a row, least-load. The ring
  depends only on the endpoints' addresses, so every gateway replica hashes a prefix to the same engine
  without talking to the others. A prompt shorter than `MIN_WORDS` has no prefix worth keeping:
  least-load.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from inference_operator.api.states import Routing
from inference_operator.gateway.engine_metrics import EngineLoads
from inference_operator.gateway.entries import Endpoint, Key, ModelRoute

PREFIX_WORDS = 256  # the leading words a prefix is named by (4 blocks of 64, the prefix routers' usual block)
MIN_WORDS = 64
VNODES = 40  # points per endpoint on the ring: loads within a few percent of even at 8 endpoints
FACTOR = 1.25  # an endpoint takes up to 25 % more than the average before its prefix spills over
FLOOR = 4  # ... and at least this many: an engine batches several sequences at no cost
SAMPLE = 32  # least-load looks at every endpoint up to this many, else at this many drawn at random
RINGS = 256  # rings kept (one per endpoint set in use)


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

    def walk(self, key: int) -> Iterator[Endpoint]:
        """The endpoints clockwise from `key`, each once."""
        start, seen = bisect.bisect(self.keys, key), set()
        for i in range(len(self.owners)):
            owner = self.owners[(start + i) % len(self.owners)]
            if owner not in seen:
                seen.add(owner)
                yield owner


class Picker:
    def __init__(self, loads: EngineLoads | None = None) -> None:
        self.loads = loads or EngineLoads()
        self.inflight: dict[Endpoint, int] = {}
        self.totals: dict[Key, int] = {}  # in flight per model Service, (namespace, name)
        self._rings: OrderedDict[tuple[Endpoint, ...], Ring] = OrderedDict()

    def begin(self, endpoint: Endpoint, backend: Key) -> None:
        """A request goes to `endpoint` of the model Service `backend`."""
        self.inflight[endpoint] = self.inflight.get(endpoint, 0) + 1
        self.totals[backend] = self.totals.get(backend, 0) + 1

    def end(self, endpoint: Endpoint, backend: Key) -> None:
        _decrement(self.inflight, endpoint)
        _decrement(self.totals, backend)

    def own(self, endpoint: Endpoint) -> int:
        return self.inflight.get(endpoint, 0)

    def load(self, endpoint: Endpoint) -> float:
        return self.inflight.get(endpoint, 0) + self.loads.others(endpoint)

    def pick(self, model: ModelRoute, backend: Key, endpoints: tuple[Endpoint, ...], prefix: Sequence[str],
             rng: random.Random) -> Endpoint | None:
        """The endpoint of the model Service `backend` by the model's policy (`prefix`: the prompt's leading
        words); None: weighted-random (keep the table's draw)."""
        if model.routing is Routing.WEIGHTED_RANDOM or not endpoints:
            return None
        if model.routing is Routing.PREFIX and len(prefix) >= MIN_WORDS:
            total = self.totals.get(backend, 0) + self.loads.others_total(endpoints)
            return self.by_prefix(endpoints, " ".join(prefix), total, rng)
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

    def by_prefix(self, endpoints: tuple[Endpoint, ...], prefix: str, total: float, rng: random.Random) -> Endpoint:
        """The first endpoint on the ring from the prefix's point whose load is under the bound (`total`: the
        load of all of them)."""
        bound = max(FLOOR, math.ceil(FACTOR * (total + 1) / len(endpoints)))
        for tried, endpoint in enumerate(self._ring(endpoints).walk(_point(prefix))):
            if self.load(endpoint) < bound:
                return endpoint
            if tried == SAMPLE:
                break  # that many full in a row: the prefix's neighbourhood is hot, take the least loaded
        return self.least_loaded(endpoints, rng)

    def _ring(self, endpoints: tuple[Endpoint, ...]) -> Ring:
        ring = self._rings.get(endpoints)
        if ring is None:
            ring = self._rings[endpoints] = Ring(endpoints)
            if len(self._rings) > RINGS:
                self._rings.popitem(last=False)
        else:
            self._rings.move_to_end(endpoints)
        return ring
