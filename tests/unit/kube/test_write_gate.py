"""kube.Kube's write gate (leader election's fence): a write stops unsent whenever the gate says no before its
bytes reach the socket, also when the process froze after an earlier check (SIGSTOP, a long GC pause) and
wakes with its Lease gone. Against a real HTTP server on loopback that records every request it receives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from inference_operator.kube.client import Kube
from inference_operator.kube.gate import WriteRefused
from inference_operator.kube.kubeconfig import Connection

DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "team-a"}}


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """An HTTP/1.1 server answering every request 200 `{}`; `received` holds each request line it read."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                length = 0
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                received.append(line.strip())
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", received
    listener.close()


def freezes_after(checks: int) -> Callable[[], bool]:
    """A gate that holds for its first `checks` consultations, then never again: the process froze right
    after that check and woke past its renew deadline."""
    asked = 0

    def gate() -> bool:
        nonlocal asked
        asked += 1
        return asked <= checks

    return gate


@pytest.mark.parametrize("checks_passed", [1, 2], ids=["after-the-connection", "after-the-headers"])
async def test_a_write_frozen_after_an_earlier_check_is_not_sent(server: tuple[str, list[bytes]],
                                                                 checks_passed: int) -> None:
    url, received = server
    kube = Kube(Connection(server=url, ssl_context=False), "inference-operator")
    try:
        await kube.read("apps/v1", "Deployment", "team-a", "d")  # a pooled connection, as in a running operator
        kube.write_gate = freezes_after(checks_passed)
        with pytest.raises(WriteRefused):
            await kube.apply(DEPLOYMENT)
        assert [line.split()[0] for line in received] == [b"GET"], "the refused write reached the API server"

        kube.write_gate = lambda: True  # leading again (a fresh process): the pool still works
        await kube.apply(DEPLOYMENT)
        assert [line.split()[0] for line in received] == [b"GET", b"PATCH"]
    finally:
        await kube.close()

