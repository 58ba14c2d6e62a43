"""Which LoRA adapters to load on and unload from one replica, and when a failed one may be tried again
(docs/lora.md). Pure: the clock and what the engine said are parameters; runtime/adapters.py does the I/O.

- What a replica holds is read from its engine every round (vLLM's `GET /v1/models` lists each loaded
  adapter with `parent`, its base model), never remembered: a replica that restarted shows none, and gets
  them all again; one that holds an adapter the spec no longer names gets it unloaded.
- A load the engine refused (4xx: files it cannot read, no free slot) or that did not answer is tried again
  after an exponential backoff per replica and adapter (`RETRY_FIRST` seconds doubling up to `RETRY_MOST`),
  never in a tight loop; its reason is kept for status until the adapter loads or leaves the spec.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RETRY_FIRST = 5.0
RETRY_MOST = 300.0
MAX_LISTED = 1024  # a /v1/models answer listing more entries is read up to this many
MAX_NAME = 256
MAX_REASON = 512


@dataclass(frozen=True, slots=True)
class Failure:
    """The last failed load of one adapter on one replica."""

    reason: str
    attempts: int
    retry_at: float  # monotonic seconds


@dataclass(frozen=True, slots=True)
class Plan:
    loads: tuple[tuple[str, str], ...] = ()  # (lora_name, lora_path), in spec order
    unloads: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.loads or self.unloads)


def loaded_adapters(answer: Any, base: str) -> frozenset[str] | None:
    """The adapters an engine's `/v1/models` answer lists on top of `base` (entries whose `parent` is it);
    None for an answer that is not OpenAI's list shape. Every byte is the engine's: types and sizes checked."""
    data = answer.get("data") if isinstance(answer, Mapping) else None
    if not isinstance(data, list):
        return None
    found = set()
    for entry in data[:MAX_LISTED]:
        if not isinstance(entry, Mapping) or entry.get("parent") != base:
            continue
        name = entry.get("id")
        if isinstance(name, str) and 0 < len(name) <= MAX_NAME:
            found.add(name)
    return frozenset(found)


def plan(desired: Mapping[str, str], loaded: frozenset[str], failures: Mapping[str, Failure], now: float) -> Plan:
    """What to do on one replica: load what the spec names and the engine lacks (unless its last failure's
    backoff runs), unload what the engine holds and the spec no longer names (`desired`: lora_name -> path)."""
    loads = tuple((name, path) for name, path in desired.items()
                  if name not in loaded and (name not in failures or failures[name].retry_at <= now))
    return Plan(loads, tuple(sorted(loaded - desired.keys())))


def backoff(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones."""
    return min(RETRY_MOST, RETRY_FIRST * 2.0 ** max(0, attempts - 1))


def failed(previous: Failure | None, reason: str, now: float) -> Failure:
    """The failure after one more failed load (the engine's words, bounded)."""
    attempts = (previous.attempts if previous else 0) + 1
    return Failure(reason[:MAX_REASON], attempts, now + backoff(attempts))


def already_loaded(status: int, text: str) -> bool:
    """vLLM answers 400 "... has already been loaded" to a load of a name it holds: the load's goal is met."""
    return status == 400 and "already been loaded" in text


def engine_reason(status: int, text: str) -> str:
    """A refused load's reason as status shows it: the engine's status code and its message (vLLM's error body
    is {"message": ...}, OpenAI's {"error": {"message": ...}}; anything else is shown as text)."""
    message = text.strip()
    try:
        body = json.loads(message)
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        error = body.get("error")
        inner = error.get("message") if isinstance(error, Mapping) else body.get("message")
        if isinstance(inner, str):
            message = inner
    return f"the engine refused to load it ({status}): {message[:MAX_REASON]}"
