"""The ports the reconciler needs: what it writes through, what it reads children as, the errors it understands.

`kube.client.Kube` implements `KubePort` in the operator process; `tests/handlers/` hand the reconciler an
in-memory one. Keeping the protocol here, not in `kube/`, is what lets `reconcile/` never import the client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class KubePort(Protocol):
    """The writes and the one read a pass makes (kube.client.Kube in the process)."""

    async def apply(self, manifest: Mapping[str, Any], subresource: str | None = None,
                    field_manager: str | None = None) -> Any: ...
    async def write_status(self, manifest: Mapping[str, Any], ready: bool = False) -> Any: ...  # ready: see Kube
    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None: ...
    async def read(self, api_version: str, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    async def post_event(self, parent: Mapping[str, Any], event_type: str, reason: str, message: str) -> None: ...


@dataclass(frozen=True)
class Children:
    """A service's children as last seen on the watches."""

    objects: Sequence[Mapping[str, Any]] = ()
    pods: Sequence[Mapping[str, Any]] = ()


class ApiError(Exception):
    """A non-2xx answer of the API server, with its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class NamespaceTerminating(Exception):
    """The namespace is being deleted: nothing new can be created there, and nothing needs to be."""
