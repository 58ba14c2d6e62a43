"""The flavor catalog: the built-in flavors plus the admin's ConfigMap, watched so that admins edit flavors
without restarting the operator."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from inference_operator.catalog.flavors import Flavor, FlavorError, load_catalog
from inference_operator.kube.client import Kube

log = logging.getLogger(__name__)


@dataclass
class FlavorWatch:
    """The catalog in use (`flavors`), reloaded at each change of the ConfigMap, then `changed()` (every
    service gets a pass)."""

    kube: Kube
    namespace: str
    name: str
    changed: Callable[[], Awaitable[None]]
    flavors: dict[str, Flavor] = field(default_factory=load_catalog)
    data: Mapping[str, str] | None = None  # the ConfigMap's data last read; None: absent
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._watch())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _watch(self) -> None:
        first = True
        async for event_type, configmap in self.kube.watch_one("v1", "ConfigMap", self.namespace, self.name):
            data = None if event_type == "DELETED" else configmap.get("data") or {}
            if data == self.data and not first:
                continue
            first = False
            self.data = data
            log.info("flavor ConfigMap %s/%s %s", self.namespace, self.name,
                     "absent: built-in flavors only" if data is None else f"read: {len(data)} entries")
            self.load(data)
            await self.changed()

    def load(self, data: Mapping[str, str] | None) -> None:
        """Built-ins plus the admin's entries; a bad entry keeps the previous catalog and says why."""
        try:
            self.flavors = load_catalog(data)
        except FlavorError as exc:
            log.error("flavor ConfigMap %s/%s ignored: %s", self.namespace, self.name, exc)
