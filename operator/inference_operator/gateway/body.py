"""A request's body as the gateway reads it: chunk by chunk within the body limit and the client's
deadlines, and, when it must be whole (a signature's hash, an OpenAI request's model field), buffered
against a gateway-wide BodyBudget so many large bodies at once cannot exhaust the gateway's memory.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from inference_operator.gateway.errors import BODY_TOO_LARGE, OVERLOADED, REQUEST_TIMEOUT, GatewayError
from inference_operator.gateway.limits import MB, Limits


class BodyTooLarge(Exception):
    pass


class ClientTooSlow(Exception):
    pass


class BodyBudget:
    """A cap on the request-body bytes that all buffered requests together may hold."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit, self.used = limit_bytes, 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used = max(0, self.used - n)


def too_large(limit: int) -> GatewayError:
    return GatewayError(BODY_TOO_LARGE, f"request body is larger than the limit of {limit / MB:g} MB")


def too_slow(limits: Limits) -> GatewayError:
    return GatewayError(REQUEST_TIMEOUT, f"the request body did not arrive in time (a pause of more than "
                                         f"{limits.client_seconds:g} s, or more than {limits.timeout_seconds:g} s "
                                         f"in all)")


async def read_chunks(request: web.Request, limits: Limits) -> AsyncIterator[bytes]:
    """The client's body as it arrives: BodyTooLarge past the limit, ClientTooSlow after a long pause."""
    seen = 0
    while True:
        try:
            async with asyncio.timeout(limits.client_seconds):
                chunk = await request.content.readany()
        except TimeoutError:
            raise ClientTooSlow from None
        if not chunk:
            return
        seen += len(chunk)
        if seen > limits.body_limit_bytes:
            raise BodyTooLarge
        yield chunk


@dataclass
class Buffered:
    """A body read whole: its chunks, length and hex SHA-256 (and MD5 when asked), and the budget bytes it
    holds until release()."""

    chunks: list[bytes]
    length: int
    sha256: str
    budget: BodyBudget
    reserved: int
    md5: str = ""

    def release(self) -> None:
        self.budget.give(self.reserved)
        self.reserved, self.chunks = 0, []

    def __bytes__(self) -> bytes:
        return b"".join(self.chunks)


async def read_hashed(request: web.Request, limits: Limits, budget: BodyBudget, with_md5: bool = False) -> Buffered:
    """The whole body (a signature needs its hash), hashed as it arrives, within the body limit (413), the
    client deadlines (408) and the gateway-wide budget (503: the gateway protects itself). `with_md5`: its
    MD5 too (an EAS signature covers Content-MD5)."""
    digest, chunks, seen = hashlib.sha256(), list[bytes](), 0
    md5 = hashlib.md5(usedforsecurity=False) if with_md5 else None
    declared = request.content_length or 0
    if declared and not budget.take(declared):
        raise budget_exhausted()
    buffered = Buffered(chunks, 0, "", budget, declared)
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            async for chunk in read_chunks(request, limits):
                seen += len(chunk)
                if seen > buffered.reserved:
                    if not budget.take(seen - buffered.reserved):
                        raise budget_exhausted()
                    buffered.reserved = seen
                digest.update(chunk)
                if md5 is not None:
                    md5.update(chunk)
                chunks.append(chunk)
    except BodyTooLarge:
        buffered.release()
        raise too_large(limits.body_limit_bytes) from None
    except (ClientTooSlow, TimeoutError):
        buffered.release()
        raise too_slow(limits) from None
    except BaseException:
        buffered.release()
        raise
    buffered.length, buffered.sha256 = seen, digest.hexdigest()
    buffered.md5 = md5.hexdigest() if md5 is not None else ""
    return buffered


def budget_exhausted() -> GatewayError:
    return GatewayError(OVERLOADED, "Due to self protection, the gateway is not accepting more request bodies "
                                    "right now (its buffer for request bodies is full); retry shortly")
