"""Ghosts: objects deleted while a watch was away, which the operator's indices still hold.

When a watch cannot resume (410 Gone: the API server restarted and its watch cache no longer has the
resource version), kopf lists the resource again but never drops what the new list lacks. A DELETED
missed that way leaves a ghost: a child that seems to exist (so it is never applied again), a pod that
seems unready, a deleted service fighting its re-created namesake over children and status. After such
a relist the operator lists what it manages once; every object its indices held before that list and
the list lacks is a ghost from then on (uids are never reused) and is left out of every pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inference_operator.api.v1alpha1 import GROUP, PLURAL, VERSION
from inference_operator.builders.labels import MANAGED_SELECTOR, SERVICE_LABEL
from inference_operator.runtime.served import OPTIONAL_APIS

log = logging.getLogger(__name__)
Key = tuple[str, str]  # namespace, service name
MANAGED = MANAGED_SELECTOR
LISTS = [  # (path in a namespace, label selector): what the indices hold
    (f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/{PLURAL}", None),
    ("/apis/apps/v1/namespaces/{ns}/deployments", MANAGED),
    ("/api/v1/namespaces/{ns}/services", MANAGED),
    ("/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers", MANAGED),
    ("/apis/batch/v1/namespaces/{ns}/jobs", MANAGED),
    ("/api/v1/namespaces/{ns}/pods", SERVICE_LABEL),
]
OPTIONAL = {api.plural: (f"/apis/{api.group}/{api.version}/namespaces/{{ns}}/{api.plural}", MANAGED)
            for api in OPTIONAL_APIS}  # listed only while served


def indexed(indices: Mapping[str, Any]) -> dict[str, tuple[str, Key, Mapping[str, Any]]]:
    """uid -> (index name, key, object) of everything the indices hold now."""
    out = {}
    for name, index in indices.items():
        if name != "inference_services" and not name.startswith("children_"):
            continue
        for key in list(index):
            for obj in list(index.get(key, [])):
                uid = (obj.get("metadata") or {}).get("uid")
                if uid:
                    out[uid] = (name, key, obj)
    return out


@dataclass
class Ghosts:
    """The uids known deleted that the indices still hold, and the resync that finds them."""

    delay: float = 2.0  # lets kopf's relist finish before we list
    uids: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    def live(self, objects: Any) -> list[Mapping[str, Any]]:
        return [o for o in objects if (o.get("metadata") or {}).get("uid") not in self.uids]

    def soon(self, find: Callable[[], Awaitable[None]]) -> None:
        """One resync after a relist (debounced: a relist brings many events)."""
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._after_delay(find))

    async def _after_delay(self, find: Callable[[], Awaitable[None]]) -> None:
        await asyncio.sleep(self.delay)
        try:
            await find()
        except Exception as exc:  # noqa: BLE001 - the next relist tries again
            log.warning("resync after a relist failed: %s", exc)

    async def find(self, kube: Any, indices: Mapping[str, Any], hidden: frozenset[str] = frozenset(),
                   ) -> dict[str, tuple[str, Key, Mapping[str, Any]]]:
        """List every namespace the indices know (the optional kinds while served: not the `hidden`
        plurals, whose children are left out of the passes anyway); returns the new ghosts (uid ->
        index, key, object)."""
        before = {uid: where for uid, where in indexed(indices).items()
                  if where[0].removeprefix("children_") not in hidden}
        lists = [*LISTS, *(where for plural, where in OPTIONAL.items() if plural not in hidden)]
        namespaces = sorted({key[0] for _, key, _ in before.values()})
        listed: set[str] = set()
        for namespace in namespaces:
            for path, selector in lists:
                query = [("labelSelector", selector)] if selector else []
                found = await kube.get_json(path.format(ns=namespace), query)
                listed |= {uid for o in found.get("items") or [] if (uid := (o.get("metadata") or {}).get("uid"))}
        ghosts = {uid: where for uid, where in before.items() if uid not in listed and uid not in self.uids}
        self.uids |= set(ghosts)
        if ghosts:
            log.warning("%d object(s) deleted while the watches were away are still in the indices: %s", len(ghosts),
                        ", ".join(f"{where[0]} {where[1][0]}/{(where[2].get('metadata') or {}).get('name')}"
                                  for where in list(ghosts.values())[:10]))
        return ghosts
