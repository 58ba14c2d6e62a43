"""Gateway errors as the cloud's clients expect them: JSON {"error_code", "error_msg", "request_id"}.

The codes and statuses are GATEWAY.md's table, itself taken from the ModelArts / API Gateway error
code pages (seed 000: `{"error_code": "ModelArts.4503", "error_msg": "Failed to find backend ..."}`).
Handlers raise GatewayError; one place (server.error_middleware) turns it into a response.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

NO_SERVICE_ID = ("ModelArts.4201", 400)
NOT_RUNNING = ("ModelArts.4203", 400)
AUTH_FAILED = ("APIG.0303", 401)
AUTH_MISSING = ("ModelArts.0205", 401)
APP_NOT_AUTHORIZED = ("APIG.0304", 403)
NO_SUCH_SERVICE = ("ModelArts.4204", 404)
BODY_TOO_LARGE = ("APIG.0201", 413)
RATE_LIMITED = ("ModelArts.4206", 429)
NO_READY_INSTANCE = ("ModelArts.4302", 503)
BACKEND_TIMEOUT = ("ModelArts.4503", 504)


@dataclass
class GatewayError(Exception):
    """A refusal with its cloud error code, HTTP status and a message a user can act on."""

    kind: tuple[str, int]
    message: str

    def __post_init__(self) -> None:
        super().__init__(f"{self.kind[0]}: {self.message}")

    @property
    def code(self) -> str:
        return self.kind[0]

    @property
    def status(self) -> int:
        return self.kind[1]

    def body(self, request_id: str) -> bytes:
        return error_body(self.code, self.message, request_id)


def error_body(code: str, message: str, request_id: str) -> bytes:
    """The JSON body of every error the gateway itself answers."""
    return json.dumps({"error_code": code, "error_msg": message, "request_id": request_id}).encode()
