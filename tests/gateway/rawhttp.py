"""Raw HTTP/1.1 over a socket, for requests no HTTP client library would send (bad bytes, slow heads, lies)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def read_reply(reader: asyncio.StreamReader, timeout: float = 10) -> Reply | None:
    """One response (Content-Length or until close); None if the connection closed without one."""
    async with asyncio.timeout(timeout):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as err:
            if not err.partial:
                return None
            raise
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        else:
            body = await reader.read()
        return Reply(status, headers, body)


def request_bytes(method: str, path: str, headers: list[tuple[str | bytes, str | bytes]], body: bytes = b"",
                  length: bool = True) -> bytes:
    """A request as bytes; header names/values given as bytes are sent exactly as given."""
    def raw(x: str | bytes) -> bytes:
        return x if isinstance(x, bytes) else x.encode()
    lines = [f"{method} {path} HTTP/1.1".encode()]
    if not any(raw(name).lower() == b"host" for name, _ in headers):
        lines.append(b"Host: gw.test")
    lines += [raw(name) + b": " + raw(value) for name, value in headers]
    if length and body and not any(raw(n).lower() in (b"content-length", b"transfer-encoding") for n, _ in headers):
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def exchange(port: int, data: bytes, timeout: float = 10) -> Reply | None:
    """Send bytes on a new connection, read one response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_reply(reader, timeout)
    finally:
        writer.close()


def is_contract_error(reply: Reply | None) -> bool:
    """The contract's error body: JSON with error_code, error_msg and request_id."""
    if reply is None or not reply.headers.get("content-type", "").startswith("application/json"):
        return False
    try:
        body = reply.json()
    except ValueError:
        return False
    return isinstance(body, dict) and {"error_code", "error_msg", "request_id"} <= set(body)
