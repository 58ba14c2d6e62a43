"""The operator's indices: every service and every child, slimmed, by (namespace, service name).

Filled from the watch streams in stream order (watchfeed.py), so an index is complete once its stream's
listing ends. Read as a mapping of mappings: `indices[name].get(key, [])` lists the objects of a key
(names: `inference_services`, `children_<plural>`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Key = tuple[str, str]  # (namespace, service name)
SERVICES = "inference_services"
# Values up to this long are shared between index entries (`shared_strings`); longer ones (messages, compact JSON)
# are rarely equal between objects.
SHARED_UP_TO = 64


def shared_strings(obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` rebuilt with every key and every short string value interned, so that equal strings are one object
    across all index entries. Each watch event is parsed into strings of its own: "metadata", label keys and values,
    the namespace, "True", the owner's uid, thousands of times over. A running service's five entries (a Deployment,
    its pod, Service and HTTPRoute, and the service) take 24 KB as parsed and 13 KB shared. Lists and dicts come
    back new; other values as they are."""
    return {_interned(key): _shared(value) for key, value in obj.items()}


def _shared(value: Any) -> Any:
    if isinstance(value, dict):
        return shared_strings(value)
    if isinstance(value, list):
        return [_shared(inner) for inner in value]
    if isinstance(value, str) and len(value) <= SHARED_UP_TO:
        return _interned(value)
    return value


def _interned(value: Any) -> Any:
    return sys.intern(value) if type(value) is str else value  # sys.intern takes no subclass of str


class KindIndex(Mapping[Key, list[dict[str, Any]]]):
    """The objects of one kind by key; an object is in one key at a time (its latest event's)."""

    def __init__(self) -> None:
        self._by_key: dict[Key, dict[str, dict[str, Any]]] = {}
        self._key_of: dict[str, Key] = {}

    def put(self, key: Key, obj: dict[str, Any]) -> None:
        uid = obj["metadata"]["uid"]
        old = self._key_of.get(uid)
        if old is not None and old != key:
            self.drop(uid)
        self._by_key.setdefault(key, {})[uid] = obj
        self._key_of[uid] = key

    def drop(self, uid: str) -> None:
        key = self._key_of.pop(uid, None)
        if key is None:
            return
        objects = self._by_key.get(key, {})
        objects.pop(uid, None)
        if not objects:
            self._by_key.pop(key, None)

    def drop_namespace(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every object of a namespace (None: of every namespace) leaves; returns them."""
        keys = [key for key in self._by_key if namespace is None or key[0] == namespace]
        gone = [obj for key in keys for obj in self._by_key.pop(key).values()]
        for obj in gone:
            self._key_of.pop(obj["metadata"]["uid"], None)
        return gone

    def __getitem__(self, key: Key) -> list[dict[str, Any]]:
        return list(self._by_key[key].values())

    def objects(self) -> int:
        return len(self._key_of)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._by_key))

    def __len__(self) -> int:
        return len(self._by_key)


class Indices(Mapping[str, KindIndex]):
    """One KindIndex per watched kind, by index name."""

    def __init__(self, names: list[str], on_change: Callable[[int], None] = lambda total: None) -> None:
        self._indices = {name: KindIndex() for name in names}
        self.on_change = on_change  # told the number of objects held after each change (a gauge)

    def observe(self, name: str, key: Key, event_type: str | None, obj: dict[str, Any]) -> None:
        """One watch event: DELETED drops the object, any other puts it under `key`."""
        if event_type == "DELETED":
            self._indices[name].drop(obj["metadata"]["uid"])
        else:
            self._indices[name].put(key, obj)
        self.on_change(self.total())

    def forget(self, name: str, obj: Mapping[str, Any]) -> None:
        uid = (obj.get("metadata") or {}).get("uid")
        if uid:
            self._indices[name].drop(uid)
            self.on_change(self.total())

    def forget_namespace(self, name: str, namespace: str | None) -> list[dict[str, Any]]:
        """The stream of a kind in a namespace ended for good (the namespace is gone): its DELETED events
        will never come, so what it indexed goes now. Returns the objects dropped."""
        gone = self._indices[name].drop_namespace(namespace)
        if gone:
            self.on_change(self.total())
        return gone

    def __getitem__(self, name: str) -> KindIndex:
        return self._indices[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._indices)

    def __len__(self) -> int:
        return len(self._indices)

    def total(self) -> int:
        """Objects held, over every index."""
        return sum(index.objects() for index in self._indices.values())


def index_names(plurals: list[str]) -> list[str]:
    return [SERVICES, *(f"children_{plural}" for plural in plurals)]

