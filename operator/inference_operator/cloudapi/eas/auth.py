"""Who an EAS caller is: an access key whose ACS3-HMAC-SHA256 signature (acs3.py) verifies over the request
as received. Every refusal is 401 and says which check failed, with the gateway's code for it."""

from __future__ import annotations

from aiohttp import web

from inference_operator.cloudapi.dialect import AuthContext
from inference_operator.cloudapi.eas import acs3
from inference_operator.cloudapi.errors import CloudError, Problem, printable
from inference_operator.cloudapi.identity import Caller


def received(request: web.Request, body: bytes) -> acs3.Received:
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    return acs3.Received(request.method, request.rel_url.raw_path, request.rel_url.raw_query_string, headers, body)


def _refusal(err: acs3.Acs3Error) -> CloudError:
    return CloudError(Problem.UNAUTHENTICATED, err.message, err.kind.value)


async def authenticate(request: web.Request, body: bytes, ctx: AuthContext) -> Caller:
    req = received(request, body)
    try:
        auth = acs3.parse_authorization(next(iter(req.headers.get("authorization") or ()), None))
        key = ctx.keys.find(auth.access_key)
        if key is None:
            raise acs3.Acs3Error(acs3.Failure.UNKNOWN_KEY, f"unknown access key {printable(auth.access_key)}")
        acs3.verify(req, auth, key.secret_key, ctx.now())
    except acs3.Acs3Error as err:
        raise _refusal(err) from None
    if not key.caller.namespace:
        raise CloudError(Problem.FORBIDDEN, f"the access key {printable(auth.access_key)} names no default namespace "
                                            "(annotation inference.io/namespace): EAS calls act there")
    return key.caller
