"""The PAI-EAS dialect: `/api/v2/services` and `/api/v2/app_services` as `alibabacloud_eas20210701` calls them,
signed with ACS3-HMAC-SHA256 as `alibabacloud_tea_openapi` signs (docs/cloud-api.md, section PAI-EAS)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from inference_operator.cloudapi.dialect import AuthContext, Route
from inference_operator.cloudapi.eas import auth, errors
from inference_operator.cloudapi.errors import CloudError
from inference_operator.cloudapi.identity import Caller


class Eas:
    name = "eas"
    prefix = "/api/v2/"

    def routes(self) -> Sequence[Route]:
        from inference_operator.cloudapi.eas.routes import ROUTES
        return ROUTES

    async def authenticate(self, request: web.Request, body: bytes, ctx: AuthContext) -> Caller:
        return await auth.authenticate(request, body, ctx)

    def error_body(self, error: CloudError, request_id: str) -> bytes:
        return errors.error_body(error, request_id)
