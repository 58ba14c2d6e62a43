"""What a pass reads of the indices: a service's live entry among those of its name, and its children."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inference_operator.ports import Children
from inference_operator.runtime.ghosts import Ghosts
from inference_operator.runtime.slim import CHILD_KINDS


def children_of(key: tuple[str, str], indices: Mapping[str, Any], ghosts: Ghosts | None = None,
                hidden: frozenset[str] = frozenset()) -> Children:
    """A service's children from the indices (keyed by namespace and service name), ghosts and the
    kinds whose API is not served now (`hidden` plurals) left out."""
    objects = [o for plural in CHILD_KINDS if plural[-1] not in hidden
               for o in indices.get(f"children_{plural[-1]}", {}).get(key, [])]
    pods = list(indices["children_pods"].get(key, []))
    if ghosts is not None and ghosts.uids:
        objects, pods = ghosts.live(objects), ghosts.live(pods)
    return Children(objects=objects, pods=pods)


def current(parents: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The one live service among index entries of one name. Two entries mean a service deleted and
    re-created while a watch was away (its DELETED missed): every resourceVersion of the deleted one
    predates the re-created one's, so the highest is the live one. Opaque versions: all are kept."""
    if len(parents) < 2:
        return parents
    try:
        return [max(parents, key=lambda p: int(p["metadata"].get("resourceVersion", "")))]
    except ValueError:
        return parents
