"""How a dialect plugs into the server: its path prefix, its route table, its auth check and its error JSON.

A dialect is an object with the `Dialect` protocol's members. The server reads each request's body
(bounded, within the time limit) before the dialect sees it, asks the dialect's `authenticate` who the
caller is (signatures are over the bytes received), and hands the route's handler a `Call`: the body,
the caller, and `kube`, a client whose every request impersonates the caller. Handlers raise CloudError;
the server renders it with the dialect's `error_body`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from inference_operator.cloudapi.credentials import KeyRing
from inference_operator.cloudapi.errors import CloudError, Problem
from inference_operator.cloudapi.identity import Caller
from inference_operator.kube.client import Kube


@dataclass(frozen=True)
class Settings:
    """What the process was started with that handlers need: the region (EAS ClusterId), the base URL
    of the inference gateway (access addresses), the credentials namespace."""

    region: str = "local"
    gateway_url: str = ""
    credentials_namespace: str = "default"


@dataclass
class Call:
    """One authenticated request as a handler sees it."""

    request: web.Request
    body: bytes
    caller: Caller
    kube: Kube  # every request made as the caller (Kube.acting_as)
    settings: Settings

    @property
    def params(self) -> Mapping[str, str]:
        return self.request.match_info

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query

    def json(self) -> Any:
        """The body as JSON; a CloudError (400) saying where it is not."""
        if not self.body.strip():
            raise CloudError(Problem.BAD_REQUEST, "the request body is empty; expected a JSON object")
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as err:
            raise CloudError(Problem.BAD_REQUEST, f"the request body is not JSON: {str(err)[:200]}") from None


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """`path` in aiohttp's syntax (`/v1/{project_id}/services/{service_id}`), including the dialect's prefix."""

    method: str
    path: str
    handler: Handler


@dataclass(frozen=True)
class AuthContext:
    """What an auth check may consult: the access keys, the TokenReview call, the server's clock."""

    keys: KeyRing
    review_token: Callable[[str], Awaitable[Caller | None]]
    now: Callable[[], datetime]


class Dialect(Protocol):
    name: str
    prefix: str  # e.g. "/v1/" or "/api/v2/": requests under it are this dialect's, errors in its shape

    def routes(self) -> Sequence[Route]: ...

    async def authenticate(self, request: web.Request, body: bytes, auth: AuthContext) -> Caller:
        """The caller, or CloudError (401 naming what failed: unknown key, bad signature, stale date)."""
        ...

    def error_body(self, error: CloudError, request_id: str) -> bytes: ...


def reply(data: Any, status: int = 200) -> web.Response:
    """A JSON answer (ASCII: nothing of a client's input can break the encoding)."""
    return web.Response(status=status, body=json.dumps(data).encode(), content_type="application/json")
