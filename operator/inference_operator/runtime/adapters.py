"""The LoRA adapters loop: every ready replica of a model holds the adapters its spec names (docs/lora.md).

Every `adapters_interval_seconds`, for each model with LoRA on (ModelSpec.lora), each ready pod's engine is
asked what it holds (`GET /v1/models`: adapters carry `parent`), and what the spec names and it lacks is
loaded (`POST /v1/load_lora_adapter`), what it holds and the spec does not name is unloaded
(`POST /v1/unload_lora_adapter`); policies/adapters.py decides. Nothing is remembered of what a replica holds:
a replica that restarted lists none and gets them again. Every call is bounded by `adapters_timeout_seconds`;
a refused or unanswered load is retried after an exponential backoff and its reason goes to status
(status/adapters.py) through a pass of the service, asked for when a model's counts change.

Why a loop of its own and not a step of a pass: passes run on watch events and the engines' state changes
without one (a restarted engine process in a pod that stays Ready), and a pass must not wait on engines.
With leader election, only the leader calls the engines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from inference_operator.api.v1alpha1 import InferenceService, InvalidSpecError, ModelSpec
from inference_operator.builders.labels import MODEL_LABEL
from inference_operator.config import OperatorConfig
from inference_operator.policies.adapters import (
    Failure,
    already_loaded,
    engine_reason,
    failed,
    loaded_adapters,
    plan,
)
from inference_operator.runtime.slim import POD_PORT
from inference_operator.status.adapters import ModelAdapters

log = logging.getLogger(__name__)
PARALLEL = 16  # engines called at once
MAX_ANSWER = 1 << 20  # bytes of an engine's answer read
Key = tuple[str, str]  # (namespace, service name)
Target = tuple[str, Key, ModelSpec, list[Mapping[str, Any]]]  # service uid, its key, a model, its pods


def ready_origin(pod: Mapping[str, Any], model: ModelSpec) -> str | None:
    """http://ip:port of a ready pod's engine, None for a pod that is not ready or has no address yet."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    ip = status.get("podIP")
    if not ready or not isinstance(ip, str) or not ip:
        return None
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{pod.get(POD_PORT, model.port)}"


@dataclass
class Replica:
    """One round's result on one replica: what it holds now, and the reasons of what it failed to load."""

    loaded: frozenset[str] = frozenset()
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass
class AdapterLoop:
    cfg: OperatorConfig
    targets: Callable[[], Iterable[Target]]  # every model with LoRA on, with its service and pods
    changed: Callable[[str, str], Awaitable[None]]  # a pass for (namespace, name): its counts moved
    may_write: Callable[[], bool] | None = None
    clock: Callable[[], float] = time.monotonic
    counts: dict[str, dict[str, ModelAdapters]] = field(default_factory=dict)  # service uid -> model -> counts
    failures: dict[tuple[str, str], Failure] = field(default_factory=dict)  # (pod uid, lora name) -> last failure
    task: asyncio.Task[None] | None = None

    def of(self, uid: str) -> Mapping[str, ModelAdapters]:
        return self.counts.get(uid, {})

    def forget(self, uid: str) -> None:
        self.counts.pop(uid, None)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._forever())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _forever(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.cfg.adapters_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    if self.may_write is None or self.may_write():
                        await self.round(session)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # one bad round must not end the loop
                    log.warning("adapters: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(self.cfg.adapters_interval_seconds)

    async def round(self, session: aiohttp.ClientSession) -> None:
        """One pass over every model with LoRA on; a pass for each service whose counts changed."""
        gate = asyncio.Semaphore(PARALLEL)
        seen: dict[str, dict[str, ModelAdapters]] = {}
        keys: dict[str, Key] = {}
        live: set[tuple[str, str]] = set()
        for uid, key, model, pods in list(self.targets()):
            keys[uid] = key
            desired = model.adapter_loads()
            replicas = [(pod["metadata"]["uid"], origin) for pod in pods
                        if (origin := ready_origin(pod, model)) is not None]
            live.update((pod_uid, name) for pod_uid, _ in replicas for name in desired)
            results = await asyncio.gather(*(self._replica(session, gate, model.model_name, pod_uid, origin, desired)
                                             for pod_uid, origin in replicas))
            seen.setdefault(uid, {})[model.name] = _count(desired, results)
        for gone in [k for k in self.failures if k not in live]:
            del self.failures[gone]
        moved = [uid for uid in seen if self.counts.get(uid) != seen[uid]]
        moved += [uid for uid in self.counts if uid not in seen]
        self.counts = seen
        for uid in moved:
            if uid in keys:
                await self.changed(*keys[uid])

    async def _replica(self, session: aiohttp.ClientSession, gate: asyncio.Semaphore, base: str, pod_uid: str,
                       origin: str, desired: Mapping[str, str]) -> Replica:
        async with gate:
            try:
                listed = await self._list(session, origin, base)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                reason = f"the replica's engine at {origin} did not list its adapters: {type(exc).__name__} {exc}"
                return Replica(reasons={name: reason for name in desired})
            now = self.clock()
            mine = {name: f for (pod, name), f in self.failures.items() if pod == pod_uid}
            todo = plan(desired, listed, mine, now)
            held, reasons = set(listed), {name: f.reason for name, f in mine.items() if name not in listed}
            for name in todo.unloads:
                if await self._unload(session, origin, name):
                    held.discard(name)
            for name, path in todo.loads:
                problem = await self._load(session, origin, name, path)
                if problem is None:
                    held.add(name)
                    reasons.pop(name, None)
                    self.failures.pop((pod_uid, name), None)
                else:
                    failure = self.failures[(pod_uid, name)] = failed(self.failures.get((pod_uid, name)), problem, now)
                    reasons[name] = failure.reason
                    log.info("adapter %s on %s: %s (next try in %.0fs)", name, origin, problem,
                             failure.retry_at - now)
            return Replica(frozenset(held), reasons)

    async def _list(self, session: aiohttp.ClientSession, origin: str, base: str) -> frozenset[str]:
        async with session.get(origin + "/v1/models") as resp:
            if resp.status != 200:
                raise ValueError(f"status {resp.status}")
            found = loaded_adapters(json.loads(await resp.content.read(MAX_ANSWER)), base)
        if found is None:
            raise ValueError("not a model list")
        return found

    async def _load(self, session: aiohttp.ClientSession, origin: str, name: str, path: str) -> str | None:
        """None once loaded, else why not."""
        try:
            async with session.post(origin + "/v1/load_lora_adapter",
                                    json={"lora_name": name, "lora_path": path}) as resp:
                text = (await resp.content.read(MAX_ANSWER)).decode("utf-8", "replace")
                if resp.status < 300 or already_loaded(resp.status, text):
                    return None
                return engine_reason(resp.status, text)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"the engine did not answer the load: {type(exc).__name__} {exc}".strip()

    async def _unload(self, session: aiohttp.ClientSession, origin: str, name: str) -> bool:
        try:
            async with session.post(origin + "/v1/unload_lora_adapter", json={"lora_name": name}) as resp:
                await resp.content.read(MAX_ANSWER)
                return resp.status < 300 or resp.status == 404  # 404: not there, which is what was wanted
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("adapter %s on %s: unload did not answer: %s", name, origin, exc)
            return False


def _count(desired: Mapping[str, str], results: list[Replica]) -> ModelAdapters:
    loaded = {name: sum(1 for r in results if name in r.loaded) for name in desired}
    reasons: dict[str, str] = {}
    for result in results:
        for name, reason in result.reasons.items():
            if name in desired and name not in result.loaded:
                reasons.setdefault(name, reason)
    return ModelAdapters(len(results), loaded, reasons)


def lora_targets(services: Mapping[Key, list[dict[str, Any]]], pods: Mapping[Key, list[dict[str, Any]]],
                 live: Callable[[list[Mapping[str, Any]]], list[Mapping[str, Any]]]) -> list[Target]:
    """Every model with LoRA on of every running service, with its pods (`live`: the services' current entry,
    ghosts left out)."""
    found: list[Target] = []
    for key, parents in services.items():
        for parent in live(list(parents)):
            try:
                svc = InferenceService.from_body(parent)
            except InvalidSpecError:
                continue
            if svc.spec.stopped or svc.spec.infer_type == "batch":
                continue
            for model in (m for m in svc.spec.models if m.lora):
                mine: list[Mapping[str, Any]] = [p for p in pods.get(key, [])
                                                 if (p["metadata"].get("labels") or {}).get(MODEL_LABEL) == model.name]
                found.append((parent["metadata"]["uid"], key, model, mine))
    return found
