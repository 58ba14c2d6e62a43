"""What kopf's watch streams hand the operator: each event filtered, slimmed and indexed where it is parsed,
before kopf queues it: memory and CPU at bursts, listings and restarts follow the operator's objects.

kopf queues every raw event, whole, per object; thousands wait at once in a burst or an initial listing,
each a full body (managedFields, pod specs) parsed into dicts ten times the size of its JSON; it also runs
a per-object worker for every pod, Service and Deployment of a watched namespace, ours or not. kopf's own
indices cost more still: each object it lists holds a readiness toggle, and every toggle change wakes every
waiting worker (a restart with 1,000 services spends 84 s of CPU in that alone, py-spy). So here:

- the API server sends only objects with our labels (settings.watch_only); one that still comes without them
  (a label removed by hand) never reaches kopf, nor do changes of children whose service is gone (a namespace
  being deleted: thousands of events with nothing to do; their DELETED does, so kopf forgets the object);
  inference_operator_watch_events_total counts each;
- the rest are slimmed to what reconcile reads (`slim.slim`), and put into the operator's own indices
  (`indices.Indices`) in stream order, so an index is complete when its stream's listing ends;
- each stream's first listing is tracked (`Listings`): a pass waits until every stream of its namespace
  has listed, as kopf's index readiness would, without a toggle per object; the event's handler does not wait
  (`Listings.defer`), and a stream kopf ends (its namespace deleted) takes what it indexed with it.

kopf has no hook between its stream and its queues: this wraps its stream function
(`kopf._cogs.clients.watching.infinite_watch`, looked up by kopf's queueing at each call). The kopf versions
in pyproject.toml have it; `install` raises if it is gone, so a kopf that renamed it fails at start and in
the tests, never silently (docs/architecture.md, "Where the operator goes around kopf").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients import watching

from inference_operator import metrics, trace

log = logging.getLogger(__name__)
ORIGINAL = "_inference_operator_original"
KOPF_STREAM_ARGUMENTS = ("settings", "resource", "namespace")  # what kopf's queueing passes, by keyword
Stream = tuple[str, str | None]  # (plural, namespace or None for cluster-wide)
# A stream that never finishes its listing (a kind without RBAC, kopf retrying) holds passes this long at most.
LISTING_WAIT_SECONDS = 60.0
LISTING_NOTICE_SECONDS = 5.0  # and says which streams it waits for after this long
NOT_SERVED_RETRY_SECONDS = 1.0  # a watched kind whose CRD was deleted: its stream retries this often
# What became of each object a stream brought (inference_operator_watch_events_total): handed to kopf; not the
# operator's (the server-side selectors of settings.watch_only keep these away: a few on label changes);
# indexed, but its service is gone.
HANDLED, UNWANTED, IRRELEVANT = "handled", "unwanted", "irrelevant"
OUTCOMES = (HANDLED, UNWANTED, IRRELEVANT)


@dataclass
class Feed:
    """One watched kind: which objects the handlers want, how they are slimmed, who sees each event."""

    slim: Callable[[Mapping[str, Any]], dict[str, Any]]
    seen: Callable[[str | None, dict[str, Any]], None]  # (event type, slim object), in stream order
    wanted: Callable[[Mapping[str, Any]], bool] = lambda _: True
    forget: Callable[[Mapping[str, Any]], None] = lambda _: None  # an object no longer wanted (labels changed)
    # The kind's stream of a namespace (None: cluster-wide) ended and no other is open: kopf stopped watching
    # it (the namespace was deleted, or the operator stops). Its DELETED events will not come.
    ended: Callable[[str | None], None] = lambda _: None
    # Whether the handlers have anything to do with the (indexed) object now: a child whose service is gone
    # (a namespace being deleted, an orphan) is indexed, and kopf sees only its DELETED (to forget it).
    relevant: Callable[[Mapping[str, Any]], bool] = lambda _: True


@dataclass
class Listings:
    """Which streams have finished their first listing; passes wait for those of their namespace."""

    pending: dict[Stream, asyncio.Event] = field(default_factory=dict)
    # (namespace, after how long) already said while these listings last: at a restart a thousand passes of
    # one namespace wait together, and one warning says it, not a thousand.
    noticed: set[tuple[str | None, float]] = field(default_factory=set)
    # Services whose pass waits for their namespace's listings, and the one task per namespace that waits.
    deferred: dict[str | None, set[tuple[str, str]]] = field(default_factory=dict)
    waiters: dict[str | None, asyncio.Task[None]] = field(default_factory=dict)

    def started(self, stream: Stream) -> None:
        self.pending.setdefault(stream, asyncio.Event())

    def listed(self, stream: Stream) -> None:
        event = self.pending.pop(stream, None)
        if event is not None:
            event.set()
        if not self.pending:
            self.noticed.clear()

    def listed_for(self, namespace: str | None) -> bool:
        """Every stream covering `namespace` (its own, or cluster-wide) has listed."""
        return not any(where in (namespace, None) for _, where in self.pending)

    def defer(self, namespace: str | None, key: tuple[str, str],
              then: Callable[[str, str], Awaitable[None]]) -> None:
        """`then(*key)` once the namespace's streams have listed (or `ready` gave up waiting): the event's
        handler returns now. At a restart every object of a namespace arrives before its listings end; each
        event's handler waiting for them would hold kopf's per-object worker, its event and its call chain, for
        thousands of objects at once (a restart at 1,000 running services peaks 33 MB above the burst that
        made them that way). Here a namespace waits once, and a service many events named gets one pass."""
        self.deferred.setdefault(namespace, set()).add(key)
        if namespace not in self.waiters:
            self.waiters[namespace] = asyncio.ensure_future(self._release(namespace, then))

    async def _release(self, namespace: str | None, then: Callable[[str, str], Awaitable[None]]) -> None:
        try:
            await self.ready(namespace)
            if not self.listed_for(namespace):  # a stream of the namespace started meanwhile (or one never lists)
                await self.ready(namespace)
        finally:
            del self.waiters[namespace]
            keys = self.deferred.pop(namespace, set())
        ordered = sorted(keys)
        outcomes = await asyncio.gather(*(then(*key) for key in ordered), return_exceptions=True)
        for key, outcome in zip(ordered, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("%s/%s: the pass after the listings failed: %r", *key, outcome)

    async def ready(self, namespace: str | None, timeout: float = LISTING_WAIT_SECONDS) -> None:
        """Return once every stream covering `namespace` (its own, or cluster-wide) has listed."""
        waits = [event.wait() for (_, where), event in list(self.pending.items()) if where in (namespace, None)]
        if not waits:
            return
        everything = asyncio.ensure_future(asyncio.gather(*waits))
        for limit in (LISTING_NOTICE_SECONDS, timeout - LISTING_NOTICE_SECONDS):
            try:
                await asyncio.wait_for(asyncio.shield(everything), limit)
                return
            except TimeoutError:
                after = LISTING_NOTICE_SECONDS if limit == LISTING_NOTICE_SECONDS else timeout
                unlisted = [f"{plural}@{where}" for plural, where in self.pending if where in (namespace, None)]
                if unlisted and (namespace, after) not in self.noticed:  # none: listed, the loop was busy
                    self.noticed.add((namespace, after))
                    log.warning("watch listings for %s not finished after %.0fs: %s", namespace or "the cluster",
                                after, ", ".join(unlisted))
        everything.cancel()


def kopf_stream() -> Callable[..., AsyncIterator[Any]]:
    """kopf's own stream function (under the feed, once installed); raises where this kopf has none. That it
    takes KOPF_STREAM_ARGUMENTS by keyword is checked by the tests (test_watchfeed.py), against kopf itself."""
    stream_of = getattr(watching, "infinite_watch", None)
    if stream_of is None:
        raise RuntimeError("kopf._cogs.clients.watching.infinite_watch is gone: this kopf cannot be fed")
    original: Callable[..., AsyncIterator[Any]] = getattr(stream_of, ORIGINAL, stream_of)
    return original


def install(feeds: Mapping[tuple[str, str], Feed], listings: Listings) -> None:
    """Feed the events of each (group, plural) through its Feed; other kinds (kopf's namespaces, CRDs) pass
    whole. Idempotent: a second call replaces the feeds, never wraps twice."""
    original = kopf_stream()
    table = dict(feeds)
    open_streams: dict[Stream, int] = {}

    async def fed(*, resource: Any, namespace: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        feed = table.get((resource.group, resource.plural))
        if feed is None:
            async for event in original(resource=resource, namespace=namespace, **kwargs):
                yield event
            return
        stream = (resource.plural, namespace)
        tally = {outcome: metrics.WATCH_EVENTS.labels(resource.plural, outcome) for outcome in OUTCOMES}
        listings.started(stream)
        open_streams[stream] = open_streams.get(stream, 0) + 1
        try:
            async for event in _while_served(lambda: original(resource=resource, namespace=namespace, **kwargs),
                                             resource.plural):
                if event is watching.Bookmark.LISTED:
                    listings.listed(stream)
                elif isinstance(event, dict):
                    event = feed_event(event, feed, tally)
                    if event is None:
                        continue
                yield event
        finally:
            listings.listed(stream)  # a stopped stream holds nobody back
            open_streams[stream] -= 1
            if not open_streams[stream]:  # (a namespace created again may have opened its next one already)
                del open_streams[stream]
                feed.ended(namespace)

    setattr(fed, ORIGINAL, original)
    watching.infinite_watch = fed


async def _while_served(events_of: Callable[[], AsyncIterator[Any]], plural: str) -> AsyncIterator[Any]:
    """kopf's stream of a kind, started again while the kind is not served: its CRD deleted, kopf's watch of
    CRDs ends this stream soon, but its reconnect can get the 404 first, and kopf stops the whole operator
    on a watch error."""
    not_served = 0
    while True:
        try:
            async for event in events_of():
                yield event
            return
        except kopf_errors.APINotFoundError:
            if not_served == 0:
                log.info("%s not served: its watch waits to be stopped or served again", plural)
            not_served += 1
            await asyncio.sleep(NOT_SERVED_RETRY_SECONDS)


def uninstall() -> None:
    """kopf's own stream again (tests)."""
    original = getattr(watching.infinite_watch, ORIGINAL, None)
    if original is not None:
        watching.infinite_watch = original


def feed_event(event: dict[str, Any], feed: Feed, tally: Mapping[str, Any]) -> dict[str, Any] | None:
    """The event as kopf gets it: slimmed and indexed; None for an object the handlers do not want.
    Bookmarks and anything without metadata pass as they are. `tally`: a counter per outcome (OUTCOMES)."""
    obj = event.get("object")
    if event.get("type") == "BOOKMARK" or not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        return event
    if not feed.wanted(obj):
        feed.forget(obj)
        tally[UNWANTED].inc()
        return None
    slimmed = feed.slim(obj)
    if trace.ENABLED:
        trace.mark_child(slimmed, f"event:{slimmed.get('kind')}:{event.get('type')}:{trace_tag(slimmed)}")
    feed.seen(event.get("type"), slimmed)
    # A DELETED always reaches kopf, which forgets the object's memory only then (about 1 KB each): a service's
    # children are deleted after it, and without their DELETED every deleted service left its children's there.
    if event.get("type") != "DELETED" and not feed.relevant(slimmed):
        tally[IRRELEVANT].inc()
        return None
    tally[HANDLED].inc()
    return {"type": event.get("type"), "object": slimmed}


def trace_tag(obj: Mapping[str, Any]) -> str:
    """What a traced event shows of its object: a Deployment's ready replicas, a pod's phase, else nothing."""
    status = obj.get("status") or {}
    if obj.get("kind") == "Deployment":
        return f"ready={status.get('readyReplicas', 0)}"
    if obj.get("kind") == "Pod":
        return str(status.get("phase", ""))
    return ""
