"""The ModelArts service API (CLOUDAPI.md section 3): /v1/{project_id}/services, .../models, signed with
AK/SK as huaweicloudsdkcore signs, or called with X-Auth-Token. project_id is the namespace."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from inference_operator.cloudapi.dialect import AuthContext, Route
from inference_operator.cloudapi.errors import CloudError, Problem
from inference_operator.cloudapi.identity import Caller
from inference_operator.cloudapi.modelarts import auth, errors


class ModelArts:
    name = "modelarts"
    prefix = "/v1/"

    def routes(self) -> Sequence[Route]:
        from inference_operator.cloudapi.modelarts.routes import ROUTES
        return ROUTES

    async def authenticate(self, request: web.Request, body: bytes, ctx: AuthContext) -> Caller:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():  # the first of a repeated header, as the gateway reads it
            headers.setdefault(name.lower(), value)
        if token := headers.get(auth.TOKEN_HEADER, "").strip():
            caller = await ctx.review_token(token)
            if caller is None:
                raise CloudError(Problem.UNAUTHENTICATED, "X-Auth-Token is not a valid Kubernetes token "
                                                          "(TokenReview did not authenticate it)")
            return caller
        if not headers.get("authorization"):
            raise CloudError(Problem.UNAUTHENTICATED, "no credentials: sign the request with an access key "
                                                      "(SDK-HMAC-SHA256) or send X-Auth-Token")
        req = auth.SignedRequest(request.method, request.rel_url.raw_path, request.rel_url.raw_query_string,
                                 headers, body)
        access, signed, sig, date = auth.signature_head(req, ctx.now())
        key = ctx.keys.find(access)
        auth.verify(req, key, access, signed, sig, date)
        assert key is not None
        return key.caller

    def error_body(self, error: CloudError, request_id: str) -> bytes:
        return errors.error_body(error, request_id)
