"""`invoke`: one request to a service through the gateway, signed with an app's AppKey/AppSecret, its answer
printed as it arrives (server-sent events one by one).

The address is the service's `status.accessAddress`, or `--gateway` (a port-forward, an ingress) plus
`/v1/infers/<serviceId>`. The signature is the library's (`inference_operator.gateway.client.Signer`),
the one the gateway verifies; its key and secret come from the app's Secret (the service's first app
unless `--app` names another), read with the user's own kubeconfig.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

from inference_operator.gateway.client import Signer


class InvokeError(Exception):
    """A reason `invoke` cannot send the request, for the user (exit code 2)."""


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def address(service: Mapping[str, Any], gateway: str | None) -> str:
    """The URL of the service: `--gateway` + /v1/infers/<serviceId>, else status.accessAddress."""
    status, meta = service.get("status") or {}, service.get("metadata") or {}
    if gateway:
        return f"{gateway.rstrip('/')}/v1/infers/{status.get('serviceId') or meta.get('uid')}"
    if not status.get("accessAddress"):
        raise InvokeError(f"service {meta.get('namespace')}/{meta.get('name')} has no status.accessAddress yet; "
                          "pass --gateway URL (e.g. a port-forward of the gateway)")
    return str(status["accessAddress"])


def app_secret_name(service: Mapping[str, Any], chosen: str | None) -> str | None:
    """The Secret to sign with: --app, else the first app of a service with app authentication, else None."""
    if chosen:
        return chosen
    auth = (service.get("spec") or {}).get("auth") or {}
    apps = auth.get("apps") or []
    return str(apps[0]["secretName"]) if auth.get("appAuth") and apps else None


def with_stream(body: bytes) -> bytes:
    """A JSON object body with "stream": true (OpenAI's and vLLM's switch); any other body as it is."""
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        return body
    if not isinstance(document, dict):
        return body
    return json.dumps({**document, "stream": True}).encode()


# Six parameters: what the user asked for, each from its own flag.
def build_call(url: str, body: bytes, credentials: tuple[str, str] | None, path: str, stream: bool,
               headers: Mapping[str, str]) -> Call:
    """The request to send: the path appended, a JSON content type by default, signed when credentials."""
    target = url.rstrip("/") + ("/" + path.lstrip("/") if path else "")
    sent = {"Content-Type": "application/json", **headers}
    if stream:
        body = with_stream(body)
        sent.setdefault("Accept", "text/event-stream")
    if credentials is not None:
        sent = Signer(*credentials).sign("POST", target, sent, body)
    return Call("POST", target, sent, body)


def sse_data(buffer: str) -> tuple[list[str], str]:
    """Complete events' `data:` payloads in `buffer`, and what is left of an event not complete yet."""
    payloads, rest = [], buffer.replace("\r\n", "\n")
    while "\n\n" in rest:
        event, rest = rest.split("\n\n", 1)
        data = [line[5:].removeprefix(" ") for line in event.split("\n") if line.startswith("data:")]
        if data:
            payloads.append("\n".join(data))
    return payloads, rest


async def print_events(chunks: AsyncIterator[bytes], out: TextIO) -> None:
    """Each event's data on a line of its own as soon as it arrives, until [DONE] or the end."""
    buffer = ""
    async for chunk in chunks:
        payloads, buffer = sse_data(buffer + chunk.decode("utf-8", "replace"))
        for payload in payloads:
            if payload == "[DONE]":
                return
            out.write(payload + "\n")
            out.flush()


async def send(call: Call, timeout: float, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Send the call and print the answer; 0 for a 2xx, 1 otherwise (the error body goes to stderr)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout)) as http, \
            http.request(call.method, call.url, headers=call.headers, data=call.body) as response:
        ok = 200 <= response.status < 300
        if ok and response.content_type == "text/event-stream":
            await print_events(response.content.iter_any(), out)
            return 0
        target = out if ok else err
        if not ok:
            err.write(f"HTTP {response.status} {response.reason}\n")
        async for chunk in response.content.iter_any():
            target.write(chunk.decode("utf-8", "replace"))
            target.flush()
        target.write("\n")
        return 0 if ok else 1
