"""The gateway's idle keep-alive connections to model endpoints (upstream.py's Connections), per endpoint.

Reuse: a connection goes back to its endpoint's pool only when its response was read to the end, the
model did not say `Connection: close`, and the request was sent whole. Before reuse a connection is
checked: closed by the model, or idle for more than `idle_seconds`, it is dropped and another taken.
A request is never retried: once its bytes were written the model may have acted on it (a POST may have
run a prediction), and a model that closes a connection the moment the gateway reuses it is told apart
from one that crashed on the request only by guessing. The window is kept small instead: idle connections
are closed after 4 s by default, before uvicorn's (vLLM's, most Python model servers') 5 s keep-alive
ends them from the other side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from inference_operator.gateway.entries import Endpoint
from inference_operator.gateway.upstream import Connection


class Pool:
    """Connections per endpoint: idle ones reused newest first, at most `max_idle` kept per endpoint, each
    closed after `idle_seconds` unused. `resolve`: fixed addresses for names (--resolve)."""

    def __init__(self, resolve: Mapping[str, str] | None = None, max_idle: int = 128,
                 idle_seconds: float = 4.0) -> None:
        self.resolve = dict(resolve or {})
        self.max_idle, self.idle_seconds = max_idle, idle_seconds
        self.idle: dict[Endpoint, list[Connection]] = {}
        self.open: set[Connection] = set()
        self._sweeping: asyncio.Task[None] | None = None

    async def connect(self, endpoint: Endpoint, head_only: bool, deadline: float) -> Connection:
        """An idle connection to `endpoint` that is still open and fresh, else a new one (OSError if refused,
        TimeoutError when not connected by `deadline`, the loop's clock)."""
        stack = self.idle.get(endpoint)
        if stack:
            now = asyncio.get_running_loop().time()
            while stack:
                conn = stack.pop()
                if not conn.closed and now - conn.idle_since < self.idle_seconds \
                        and conn.transport is not None and not conn.transport.is_closing():
                    conn.begin(head_only)
                    return conn
                conn.close()
        loop = asyncio.get_running_loop()
        if self._sweeping is None:
            self._sweeping = loop.create_task(self._sweep())
        host = self.resolve.get(endpoint.host, endpoint.host)
        async with asyncio.timeout_at(deadline):
            _, conn = await loop.create_connection(lambda: Connection(self, endpoint), host, endpoint.port)
        self.open.add(conn)
        conn.begin(head_only)
        return conn

    def release(self, conn: Connection) -> None:
        """Back to the pool if its exchange ended cleanly, else closed."""
        conn.busy = False
        stack = self.idle.setdefault(conn.endpoint, [])
        if not conn.reusable() or len(stack) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = conn.loop.time()
        stack.append(conn)

    def forget(self, conn: Connection) -> None:
        self.open.discard(conn)

    async def _sweep(self) -> None:
        """Close connections idle for longer than idle_seconds, so a model is not held open for nothing."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.idle_seconds / 2)
            now = loop.time()
            for endpoint, stack in list(self.idle.items()):
                keep = [c for c in stack if not c.closed and now - c.idle_since < self.idle_seconds]
                for conn in stack:
                    if conn not in keep:
                        conn.close()
                if keep:
                    self.idle[endpoint] = keep
                else:
                    del self.idle[endpoint]

    async def close(self) -> None:
        """Close every connection, idle or not (the gateway is shutting down)."""
        if self._sweeping is not None:
            self._sweeping.cancel()
            await asyncio.gather(self._sweeping, return_exceptions=True)
            self._sweeping = None
        for conn in list(self.open):
            conn.close()
        self.idle.clear()
