"""List+watch: the events of one watch request, and the loop that lists, watches, resumes and reports.

A watch reads events of any size, resumes from its last resourceVersion, lists again on 410 Gone, logs why
it restarted, and reports to WATCHES, which the /healthz endpoints read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Protocol

import aiohttp

from inference_operator.kube.kubeconfig import Connection
from inference_operator.ports import ApiError

log = logging.getLogger(__name__)
# The API server refuses requests over 3 MiB and etcd objects over 1.5 MiB; a watch event carries one
# object (plus managedFields). A line longer than this is not an event we can use: the watch restarts.
MAX_EVENT_BYTES = 16 * 1024 * 1024
WATCH_SECONDS = 240  # the server ends each watch request after this; we resume from the last version
RETRY_SECONDS = (0.5, 1, 2, 5, 10)
HEALTHY_DOWNTIME = 30.0  # /healthz fails once a watch has been down this long
REPEAT_WARNING_SECONDS = 300.0  # a watch failing the same way again is logged at debug level in between


class EventTooLarge(ValueError):
    """A watch line over MAX_EVENT_BYTES."""


class WatchHealth:
    """Since when each watch of this process has been down (None: streaming). /healthz reads it."""

    def __init__(self) -> None:
        self.down_since: dict[str, float | None] = {}

    def up(self, name: str) -> None:
        self.down_since[name] = None

    def down(self, name: str) -> None:
        if self.down_since.get(name) is None:
            self.down_since[name] = time.monotonic()

    def forget(self, name: str) -> None:
        self.down_since.pop(name, None)

    def failing(self, longer_than: float = HEALTHY_DOWNTIME) -> list[str]:
        """Watches down for more than `longer_than` seconds, with how long."""
        now = time.monotonic()
        return [f"{name} (down {now - since:.0f}s)" for name, since in sorted(self.down_since.items())
                if since is not None and now - since > longer_than]


WATCHES = WatchHealth()


async def json_lines(content: aiohttp.StreamReader, limit: int = MAX_EVENT_BYTES) -> AsyncIterator[bytes]:
    """The lines of a watch response, whatever their size up to `limit` (aiohttp's own readline stops
    at its buffer's high-water mark, far below the size of a large object)."""
    buffer = bytearray()
    searched = 0
    async for chunk in content.iter_any():
        buffer += chunk
        while (end := buffer.find(b"\n", searched)) >= 0:
            line = bytes(buffer[:end])
            del buffer[:end + 1]
            searched = 0
            if line.strip():
                yield line
        searched = len(buffer)
        if len(buffer) > limit:
            raise EventTooLarge(f"a watch event over {limit} bytes")
    if buffer.strip():
        yield bytes(buffer)


async def watch_events(content: aiohttp.StreamReader) -> AsyncIterator[dict[str, Any]]:
    """The events ({"type", "object"}) of a watch response; an ERROR event (410 Gone: the version expired)
    raises ApiError."""
    async for line in json_lines(content):
        event = json.loads(line)
        if event.get("type") == "ERROR":
            status = event.get("object") or {}
            raise ApiError(int(status.get("code", 500)), str(status.get("message", "watch error")))
        yield event


class WatchSource(Protocol):
    """What a watch asks of the API client (kube.client.Kube)."""

    connection: Connection

    async def get_json(self, path: str, query: list[tuple[str, str]] | None = None) -> dict[str, Any]: ...

    def stream_events(self, path: str, query: list[tuple[str, str]], timeout: float,
                      on_open: Callable[[], None] | None = None) -> AsyncIterator[dict[str, Any]]: ...


class ListWatch:
    """One list+watch (Kube.watch says what it yields): the version it resumes from, its failures in a row,
    and the cause it last logged as a warning, with when."""

    def __init__(self, source: WatchSource, what: str, path: str, query: list[tuple[str, str]],
                 essential: bool) -> None:
        self.source, self.what, self.path, self.query, self.essential = source, what, path, query, essential
        self.version: str | None = None
        self.failures = 0
        self.warned: tuple[str, float] | None = None

    async def events(self) -> AsyncGenerator[tuple[str, Any], None]:
        try:
            while True:
                try:
                    async for event in self._list_and_watch():
                        yield event
                    continue  # the server's timeout: resume from `version`, nothing to log
                except ApiError as exc:
                    if exc.status == 410:
                        log.info("watch of %s: resourceVersion %s expired (410 Gone); listing again",
                                 self.what, self.version)
                        self.version = None
                        continue
                    reason = await self._api_error(exc)
                except Exception as exc:  # whatever it is (a dropped connection, a bad line): log, go on
                    reason = f"{type(exc).__name__}: {exc}"
                await self._back_off(reason)
        finally:
            if self.essential:
                WATCHES.forget(self.what)

    def _opened(self) -> None:
        self.failures, self.warned = 0, None
        if self.essential:
            WATCHES.up(self.what)

    async def _list_and_watch(self) -> AsyncIterator[tuple[str, Any]]:
        """A list when there is no version to resume from, then one watch request until it ends."""
        if self.version is None:
            listed = await self.source.get_json(self.path, self.query or None)
            self.version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
            self._opened()
            yield "LISTED", listed.get("items") or []
        query = [*self.query, ("resourceVersion", self.version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(WATCH_SECONDS))]
        started = time.monotonic()
        async for event in self.source.stream_events(self.path, query, timeout=WATCH_SECONDS + 30,
                                                     on_open=self._opened):
            kind, body = event.get("type"), event.get("object") or {}
            self.version = str((body.get("metadata") or {}).get("resourceVersion") or self.version)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                yield kind, body
        if time.monotonic() - started < 1:  # ended at once, cleanly: do not spin
            await asyncio.sleep(1)

    async def _api_error(self, exc: ApiError) -> str:
        """Why the watch stopped; on a 401 with a refreshable token, a new token for the next attempt."""
        reason = f"API error {exc.status}: {exc.message}"
        if exc.status == 401 and self.source.connection.refreshable:
            try:
                await self.source.connection.bearer(refresh=True)
            except Exception as refresh_error:
                reason += f"; no new token: {refresh_error}"
        return reason

    async def _back_off(self, reason: str) -> None:
        """Report the watch down, log the cause (at debug level when it repeats), wait before the next attempt."""
        if self.essential:
            WATCHES.down(self.what)
        delay = RETRY_SECONDS[min(self.failures, len(RETRY_SECONDS) - 1)]
        self.failures += 1
        now = time.monotonic()
        repeat = self.warned is not None and self.warned[0] == reason and now - self.warned[1] < REPEAT_WARNING_SECONDS
        if not repeat:
            self.warned = (reason, now)
        log.log(logging.DEBUG if repeat else logging.WARNING,
                "watch of %s interrupted (%s); resuming from resourceVersion %s in %ss", self.what, reason,
                self.version or "(list)", delay)
        await asyncio.sleep(delay)
