"""Gateway errors as the cloud's clients expect them: JSON {"error_code", "error_msg", "request_id"}.

The codes and statuses are GATEWAY.md's table, itself taken from the ModelArts / API Gateway error
code pages (seed 000: `{"error_code": "ModelArts.4503", "error_msg": "Failed to find backend ..."}`).
Handlers raise GatewayError; one place (server.error_middleware) turns it into a response.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

NO_SERVICE_ID = ("ModelArts.4201", 400)
AMBIGUOUS_NAME = ("ModelArts.4201", 400)  # /api/predict/<name>: several namespaces have a service of that name
BAD_REQUEST = ("APIG.0201", 400)  # the API Gateway's "API request error": malformed requests of every kind
REQUEST_TIMEOUT = ("APIG.0201", 408)  # the client did not send its headers / body in time
URI_TOO_LONG = ("APIG.0201", 414)
HEADERS_TOO_LARGE = ("APIG.0201", 431)
NO_SUCH_API = ("APIG.0101", 404)  # not a /v1/infers/... path
METHOD_NOT_ALLOWED = ("APIG.0101", 405)
INTERNAL_ERROR = ("APIG.0601", 500)  # a bug of the gateway's own: logged with the request id
OVERLOADED = ("ModelArts.4302", 503)  # the gateway's own protection (connections, buffered bytes)
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
    """The JSON body of every error the gateway itself answers (ASCII: any byte of the input is escaped)."""
    return json.dumps({"error_code": code, "error_msg": message, "request_id": request_id}).encode()


def kind_of_status(status: int) -> tuple[str, int]:
    """The contract's code for an HTTP error raised outside the gateway's own code (aiohttp, the router)."""
    if status == 404:
        return NO_SUCH_API
    if status == 405:
        return METHOD_NOT_ALLOWED
    if status == 413:
        return BODY_TOO_LARGE
    if 400 <= status < 500:
        return ("APIG.0201", status)
    return INTERNAL_ERROR


def raw_response(kind: tuple[str, int], message: str, request_id: str) -> bytes:
    """A complete HTTP/1.1 error response as bytes, for answers written before aiohttp has a request
    (connection cap, header deadline): the same JSON body, then the connection closes."""
    body = error_body(kind[0], message, request_id)
    reason = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large",
              503: "Service Unavailable"}.get(kind[1], "Error")
    head = (f"HTTP/1.1 {kind[1]} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"X-Request-Id: {request_id}\r\nConnection: close\r\n\r\n")
    return head.encode() + body
