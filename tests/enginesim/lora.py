"""LoRA adapters on the simulated engine, after vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True:

- Registered adapters (`POST /v1/load_lora_adapter`): any number up to `max_adapters` (vLLM keeps them in CPU
  memory); `/v1/models` lists each with `parent`, the base model. A `lora_path` containing "invalid" is refused
  with 400, as vLLM refuses a directory without adapter_config.json; loading a name already loaded is a 400 too
  ("has already been loaded"), unloading an unknown one a 404, as vLLM answers. A load takes `register_seconds`
  (vLLM reads the adapter's files); `load_calls` counts them all.
- GPU slots (`--max-loras`): one batch mixes at most that many adapters. A request for an adapter that is not
  resident waits for a slot (a resident adapter with no running request is evicted, least recently used
  first), then pays `load_seconds` to bring it in: a "load", counted, and the request is one that waited for a
  load (and so is every request for it that arrives while it is brought in). `vllm:lora_requests_info`
  reports running and waiting adapters and max_lora as vLLM does.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


class AdapterError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Adapters:
    max_loras: int = 0  # 0: LoRA off (vLLM without --enable-lora)
    max_adapters: int = 64
    load_seconds: float = 0.1
    registered: dict[str, str] = field(default_factory=dict)  # lora_name -> lora_path
    resident: OrderedDict[str, int] = field(default_factory=OrderedDict)  # in a GPU slot -> requests running
    waiting: dict[str, int] = field(default_factory=dict)
    loads: int = 0
    waited_for_load: int = 0  # requests that waited for their adapter to be brought into a slot
    loading: dict[str, asyncio.Event] = field(default_factory=dict)  # adapters being brought in -> done
    register_seconds: float = 0.0  # how long a POST /v1/load_lora_adapter takes (vLLM reads the files)
    load_calls: int = 0  # POST /v1/load_lora_adapter received, whatever their answer

    def __post_init__(self) -> None:
        self._changed = asyncio.Condition()

    def register(self, name: str, path: str) -> None:
        if self.max_loras <= 0:
            raise AdapterError(400, "LoRA is not enabled: the engine was started without --enable-lora")
        if not name or not path:
            raise AdapterError(400, "Both 'lora_name' and 'lora_path' must be provided.")
        if name in self.registered:
            raise AdapterError(400, f"The lora adapter '{name}' has already been loaded.")
        if "invalid" in path:
            raise AdapterError(400, f"Loading lora {name} failed: No adapter found for {path}")
        if len(self.registered) >= self.max_adapters:
            raise AdapterError(400, f"Loading lora {name} failed: no free adapter slot ({self.max_adapters} loaded)")
        self.registered[name] = path

    def unregister(self, name: str) -> None:
        if name not in self.registered:
            raise AdapterError(404, f"The lora adapter '{name}' cannot be found.")
        del self.registered[name]
        if self.resident.get(name) == 0:
            del self.resident[name]

    def running(self) -> list[str]:
        return [name for name, n in self.resident.items() if n > 0]

    @asynccontextmanager
    async def slot(self, name: str, speed: float) -> AsyncIterator[None]:
        """Hold `name` in a GPU slot while a request of it runs (loading it first when it is not resident)."""
        loaded = await self._acquire(name)
        if loaded:
            self.loads += 1
            self.waited_for_load += 1
            try:
                await asyncio.sleep(self.load_seconds * speed)
            finally:
                self.loading.pop(name).set()
        elif name in self.loading:  # another request is bringing it in: this one waits for that load too
            self.waited_for_load += 1
            await self.loading[name].wait()
        try:
            yield
        finally:
            async with self._changed:
                self.resident[name] -= 1
                if name not in self.registered and self.resident[name] == 0:
                    del self.resident[name]
                self._changed.notify_all()

    async def _acquire(self, name: str) -> bool:
        async with self._changed:
            if name in self.resident:
                self.resident[name] += 1
                self.resident.move_to_end(name)
                return False
            self.waiting[name] = self.waiting.get(name, 0) + 1
            try:
                while len(self.resident) >= self.max_loras and not self._evict():
                    await self._changed.wait()
            finally:
                self.waiting[name] -= 1
                if not self.waiting[name]:
                    del self.waiting[name]
            self.resident[name] = 1
            self.loading[name] = asyncio.Event()
            return True

    def _evict(self) -> bool:
        for resident, count in self.resident.items():
            if count == 0:
                del self.resident[resident]
                return True
        return False

    def info_line(self, now: float) -> str:
        running, waiting = ",".join(self.running()), ",".join(sorted(self.waiting))
        return (f'vllm:lora_requests_info{{max_lora="{self.max_loras}",running_lora_adapters="{running}",'
                f'waiting_lora_adapters="{waiting}"}} {now}')
