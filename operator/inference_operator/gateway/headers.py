"""Which headers cross the gateway, each way, and the request head it writes to a model.

Hop-by-hop headers (and those the Connection header names), the gateway's own credentials and the
client's X-Forwarded-* are not forwarded; the gateway sets X-Forwarded-For / -Proto / -Host from what it
saw, and X-Request-Id. Nothing is added that the client did not send (no Accept-Encoding, User-Agent or
Content-Type), except the framing: Host (the endpoint), Content-Length or Transfer-Encoding.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from inference_operator.gateway.auth import APIKEY_HEADER, APPCODE_HEADER, is_signed
from inference_operator.gateway.entries import Endpoint

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)
SIGNATURE_HEADERS = frozenset({"authorization", "x-sdk-date", "x-sdk-content-sha256"})
# Set by the gateway from what it sees; a client's own values would be believed by the model.
FORWARDED_HEADERS = frozenset({"forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                               "x-forwarded-port", "x-forwarded-prefix", "x-real-ip"})
ALWAYS_DROPPED = HOP_BY_HOP | FORWARDED_HEADERS | {"host", "content-length", "expect", APPCODE_HEADER.lower()}
# Without a body, a request of any other method says Content-Length: 0 (as aiohttp's client did).
BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _connection_tokens(values: Iterable[str]) -> set[str]:
    return {t.strip().lower() for v in values for t in v.split(",") if t.strip()}


def upstream_headers(request: web.Request, app_auth: bool, request_id: str,
                     content_length: int | None = None, drop_authorization: bool = False) -> CIMultiDict[str]:
    """The client's headers minus hop-by-hop, gateway credentials and X-Forwarded-*, plus the gateway's own
    X-Forwarded-For / -Proto / -Host (what it saw) and X-Request-Id. `drop_authorization`: its token (EAS,
    Bearer) was the gateway's credential."""
    headers = request.headers
    drop = ALWAYS_DROPPED
    extra = set()
    if "Connection" in headers:
        extra |= _connection_tokens(headers.getall("Connection"))
    if is_signed({"authorization": headers.get("Authorization", "")}):
        extra |= SIGNATURE_HEADERS
    if app_auth:
        extra.add(APIKEY_HEADER.lower())
    if drop_authorization:
        extra.add("authorization")
    if extra:
        drop = drop | extra
    out = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)
    out["X-Forwarded-For"] = request.remote or ""
    out["X-Forwarded-Proto"] = request.scheme
    out["X-Forwarded-Host"] = request.host
    out["X-Request-Id"] = request_id
    length = content_length if content_length is not None else request.content_length
    if length is not None:
        out["Content-Length"] = str(length)
    return out


def downstream_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    drop = HOP_BY_HOP | _connection_tokens(headers.getall("Connection", []))
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


def response_headers(raw: list[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    """A model's response headers as the client gets them: decoded (bytes that are not UTF-8 replaced, so they
    can be written again), minus hop-by-hop and what its Connection header names."""
    drop: frozenset[bytes] | set[bytes] = HOP_BY_HOP_BYTES
    tokens = [v for k, v in raw if k.lower() == b"connection"]
    if tokens:
        drop = HOP_BY_HOP_BYTES | {t.encode() for t in _connection_tokens(_text(v) for v in tokens)}
    return CIMultiDict((_text(k), _text(v)) for k, v in raw if k.lower() not in drop)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def request_head(method: str, target: str, endpoint: Endpoint, headers: CIMultiDict[str], chunked: bool) -> bytes:
    """The request line and headers as the model gets them; ValueError for a CR or LF inside a value (aiohttp's
    parser lets none through: a second line must never be smuggled into the model's request)."""
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    if endpoint.port != 80:
        host = f"{host}:{endpoint.port}"
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif method not in BODILESS_METHODS and "Content-Length" not in headers:
        lines.append("Content-Length: 0")
    text = "\r\n".join(lines)
    if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
        raise ValueError("a header value holds a line break")
    return (text + "\r\n\r\n").encode("utf-8", "surrogateescape")
