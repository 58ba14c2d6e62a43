"""kube.Kube against a real HTTP server on loopback: what each call sends (method, path, query, headers, body),
how it reads the answers (errors, 404, a namespace being deleted), and the list+watch loop (resume from the
last version, list again on 410 Gone, back off and report the watch down on an error)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from inference_operator.kube import watch as watching
from inference_operator.kube.client import Kube
from inference_operator.kube.kubeconfig import Connection
from inference_operator.ports import ApiError, NamespaceTerminating

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "team-a"},
              "spec": {"replicas": 1}}
SERVICE = {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService",
           "metadata": {"name": "chat", "namespace": "team-a", "uid": "u-1"}}
CONFIGMAPS = "/api/v1/namespaces/team-a/configmaps"


@dataclass
class Received:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[str, str]] | None = None

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Records every request; answers them in order from `answers`, then 200 `{}`."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: list[Answer] = []
        self.release = asyncio.Event()  # ends every stream held open

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(Received(request.method, request.path, list(request.query.items()),
                                      dict(request.headers), await request.read(), list(request.headers.items())))
        answer = self.answers.pop(0) if self.answers else reply()
        return await answer(request)

    def stream(self, *events: dict[str, Any], hold: bool = False) -> Answer:
        """A watch answer: one JSON line per event, then the end (or, `hold`, an open stream)."""
        async def answer(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            for event in events:
                await response.write(json.dumps(event).encode() + b"\n")
            if hold:
                await self.release.wait()
            await response.write_eof()
            return response
        return answer


def reply(status: int = 200, body: Any = None, text: str | None = None) -> Answer:
    async def answer(_: web.Request) -> web.StreamResponse:
        if text is not None:
            return web.Response(status=status, text=text)
        return web.json_response({} if body is None else body, status=status)
    return answer


@pytest.fixture
async def api() -> AsyncIterator[tuple[Api, Kube]]:
    recorder = Api()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    kube = Kube(Connection(server=str(server.make_url("")).rstrip("/"), ssl_context=False, token="secret"),
                "inference-operator")
    yield recorder, kube
    recorder.release.set()
    await kube.close()
    await server.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float | None]]:
    """asyncio.sleep made instant; each wait over 0 recorded with WATCHES' down-since of the watch "cm"."""
    recorded: list[tuple[float, float | None]] = []
    real = asyncio.sleep

    async def instant(delay: float, *args: Any) -> Any:
        if delay > 0:
            recorded.append((delay, watching.WATCHES.down_since.get("cm")))
        return await real(0, *args)

    monkeypatch.setattr(asyncio, "sleep", instant)
    return recorded


async def test_apply_is_a_forced_server_side_apply_as_the_field_manager(api: tuple[Api, Kube]) -> None:
    server, kube = api
    await kube.apply(DEPLOYMENT)
    await kube.apply(DEPLOYMENT, field_manager="inference-operator-handover")
    first, second = server.received
    assert (first.method, first.path) == ("PATCH", "/apis/apps/v1/namespaces/team-a/deployments/d")
    assert first.query == [("fieldManager", "inference-operator"), ("force", "true")]
    assert first.headers["Content-Type"] == "application/apply-patch+yaml"
    assert first.headers["Authorization"] == "Bearer secret"
    assert first.headers["Accept"] == "application/json"
    assert first.json() == DEPLOYMENT
    assert second.query == [("fieldManager", "inference-operator-handover"), ("force", "true")]


async def test_apply_of_a_core_kind_and_a_subresource(api: tuple[Api, Kube]) -> None:
    server, kube = api
    await kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}})
    await kube.apply(DEPLOYMENT, subresource="scale")
    assert [r.path for r in server.received] == ["/api/v1/namespaces/n/configmaps/c",
                                                 "/apis/apps/v1/namespaces/team-a/deployments/d/scale"]


async def test_write_status_is_a_json_patch_that_first_tests_the_uid(api: tuple[Api, Kube]) -> None:
    server, kube = api
    await kube.write_status({**SERVICE, "status": {"phase": "Ready"}})
    [sent] = server.received
    assert sent.method == "PATCH"
    assert sent.path == "/apis/inference.io/v1alpha1/namespaces/team-a/inferenceservices/chat/status"
    assert sent.query == [("fieldManager", "inference-operator")]
    assert sent.headers["Content-Type"] == "application/json-patch+json"
    assert sent.json() == [{"op": "test", "path": "/metadata/uid", "value": "u-1"},
                           {"op": "add", "path": "/status", "value": {"phase": "Ready"}}]


async def test_delete_is_in_the_background_and_404_is_success(api: tuple[Api, Kube]) -> None:
    server, kube = api
    server.answers = [reply(), reply(404, {"kind": "Status", "message": "not found"}),
                      reply(500, {"kind": "Status", "message": "etcd down"})]
    await kube.delete("apps/v1", "Deployment", "team-a", "d")
    await kube.delete("apps/v1", "Deployment", "team-a", "d")
    with pytest.raises(ApiError) as failed:
        await kube.delete("apps/v1", "Deployment", "team-a", "d")
    assert (failed.value.status, failed.value.message) == (500, "etcd down")
    path = "/apis/apps/v1/namespaces/team-a/deployments/d"
    assert [(r.method, r.path) for r in server.received] == [("DELETE", path)] * 3
    assert server.received[0].json() == {"propagationPolicy": "Background"}
    assert server.received[0].headers["Content-Type"] == "application/json"


async def test_read_returns_the_object_or_none_on_404(api: tuple[Api, Kube]) -> None:
    server, kube = api
    server.answers = [reply(body=DEPLOYMENT), reply(404, {"kind": "Status", "message": "not found"}),
                      reply(403, {"kind": "Status", "message": "forbidden"})]
    assert await kube.read("apps/v1", "Deployment", "team-a", "d") == DEPLOYMENT
    assert await kube.read("apps/v1", "Deployment", "team-a", "d") is None
    with pytest.raises(ApiError) as failed:
        await kube.read("apps/v1", "Deployment", "team-a", "d")
    assert (failed.value.status, failed.value.message) == (403, "forbidden")
    assert [(r.method, r.path, r.body) for r in server.received] == [
        ("GET", "/apis/apps/v1/namespaces/team-a/deployments/d", b"")] * 3


async def test_an_error_carries_the_status_and_the_api_message(api: tuple[Api, Kube]) -> None:
    server, kube = api
    server.answers = [reply(422, {"kind": "Status", "message": "the uid differs"}), reply(502, text="bad gateway")]
    with pytest.raises(ApiError) as failed:
        await kube.write_status({**SERVICE, "status": {}})
    assert (failed.value.status, failed.value.message) == (422, "the uid differs")
    with pytest.raises(ApiError) as failed:
        await kube.send("GET", "/version")
    assert (failed.value.status, failed.value.message) == (502, "bad gateway")  # not a Status: its text


async def test_a_namespace_being_deleted_raises_namespace_terminating(api: tuple[Api, Kube]) -> None:
    """403 whose message says the namespace "is being terminated"; any other 403 is a plain ApiError."""
    server, kube = api
    terminating = ('configmaps "c" is forbidden: unable to create new content in namespace team-a '
                   "because it is being terminated")
    server.answers = [reply(403, {"kind": "Status", "message": terminating}),
                      reply(403, {"kind": "Status", "message": "forbidden: no RBAC"}),
                      reply(409, {"kind": "Status", "message": "because it is being terminated"})]
    with pytest.raises(NamespaceTerminating):
        await kube.apply(DEPLOYMENT)
    for status in (403, 409):
        with pytest.raises(ApiError) as failed:
            await kube.apply(DEPLOYMENT)
        assert not isinstance(failed.value, NamespaceTerminating) and failed.value.status == status


async def test_a_401_with_a_rotating_token_is_retried_once_with_the_new_token(api: tuple[Api, Kube],
                                                                              tmp_path: Path) -> None:
    server, kube = api
    token = tmp_path / "token"
    token.write_text("old\n")
    kube.connection = Connection(server=kube.connection.server, ssl_context=False, token_file=token)

    async def rotate_then_refuse(_: web.Request) -> web.StreamResponse:
        token.write_text("new\n")
        return web.json_response({"message": "Unauthorized"}, status=401)

    server.answers = [rotate_then_refuse, reply(body={"ok": 1}), rotate_then_refuse, rotate_then_refuse]
    assert await kube.get_json("/version") == {"ok": 1}
    with pytest.raises(ApiError) as failed:  # once only
        await kube.get_json("/version")
    assert failed.value.status == 401
    assert [r.headers["Authorization"] for r in server.received] == ["Bearer old", "Bearer new", "Bearer new",
                                                                     "Bearer new"]


async def test_get_json_sends_its_query(api: tuple[Api, Kube]) -> None:
    server, kube = api
    server.answers = [reply(body={"items": [], "metadata": {"continue": "next"}})]
    assert await kube.get_json(CONFIGMAPS, [("limit", "1"), ("labelSelector", "a=b")]) == {
        "items": [], "metadata": {"continue": "next"}}
    assert server.received[0].query == [("limit", "1"), ("labelSelector", "a=b")]


async def test_post_event_body(api: tuple[Api, Kube]) -> None:
    server, kube = api
    await kube.post_event(SERVICE, "Warning", "ImagePullFailed", "x" * 2000)
    [sent] = server.received
    assert (sent.method, sent.path) == ("POST", "/api/v1/namespaces/team-a/events")
    event = sent.json()
    assert event["firstTimestamp"] == event["lastTimestamp"] and event["firstTimestamp"].endswith("Z")
    del event["firstTimestamp"], event["lastTimestamp"]
    assert event == {
        "apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "chat.", "namespace": "team-a"},
        "involvedObject": {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService", "name": "chat",
                           "namespace": "team-a", "uid": "u-1"},
        "type": "Warning", "reason": "ImagePullFailed", "message": "x" * 1024, "count": 1,
        "source": {"component": "inference-operator"}, "reportingComponent": "inference-operator"}


async def test_post_event_is_best_effort_but_a_terminating_namespace_ends_the_pass(api: tuple[Api, Kube],
                                                                                   caplog: pytest.LogCaptureFixture,
                                                                                   ) -> None:
    server, kube = api
    server.answers = [reply(500, {"message": "etcd down"}),
                      reply(403, {"message": "events is forbidden: because it is being terminated"})]
    with caplog.at_level(logging.WARNING):
        await kube.post_event(SERVICE, "Normal", "Ready", "ready")
    assert "could not post event Ready on chat: etcd down" in caplog.text
    with pytest.raises(NamespaceTerminating):
        await kube.post_event(SERVICE, "Normal", "Ready", "ready")


def listed(version: str, *names: str) -> Answer:
    return reply(body={"kind": "ConfigMapList", "metadata": {"resourceVersion": version},
                       "items": [configmap(name, version) for name in names]})


def configmap(name: str, version: str, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}, **extra}


async def take(events: AsyncIterator[tuple[str, Any]], count: int) -> list[tuple[str, Any]]:
    async with asyncio.timeout(5):
        return [await anext(events) for _ in range(count)]


async def test_a_watch_resumes_from_its_last_version_and_lists_again_on_410(
        api: tuple[Api, Kube], sleeps: list[tuple[float, float | None]]) -> None:
    server, kube = api
    big = "x" * 300_000  # beyond aiohttp's line buffer: read whole all the same
    server.answers = [
        listed("10", "a"),
        server.stream({"type": "ADDED", "object": configmap("b", "11", data={"k": big})},
                      {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}}),  # then a clean end
        server.stream({"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}),
        listed("20", "a", "b"),
        server.stream({"type": "MODIFIED", "object": configmap("a", "21")},
                      {"type": "DELETED", "object": configmap("b", "22")}, hold=True),
    ]
    events = kube.watch("cm", CONFIGMAPS, [("labelSelector", "app=x")])
    try:
        assert await take(events, 5) == [
            ("LISTED", [configmap("a", "10")]), ("ADDED", configmap("b", "11", data={"k": big})),
            ("LISTED", [configmap("a", "20"), configmap("b", "20")]),
            ("MODIFIED", configmap("a", "21")), ("DELETED", configmap("b", "22"))]
        assert watching.WATCHES.down_since["cm"] is None
    finally:
        await events.aclose()
    assert "cm" not in watching.WATCHES.down_since  # a watch that ended is no longer reported
    watch = [("allowWatchBookmarks", "true"), ("timeoutSeconds", "240"), ("watch", "true")]
    assert [(r.method, r.path) for r in server.received] == [("GET", CONFIGMAPS)] * 5
    assert [r.query for r in server.received] == [
        [("labelSelector", "app=x")],
        [("labelSelector", "app=x"), ("resourceVersion", "10"), *watch],
        [("labelSelector", "app=x"), ("resourceVersion", "12"), *watch],  # the bookmark's version
        [("labelSelector", "app=x")],  # 410 Gone: list again
        [("labelSelector", "app=x"), ("resourceVersion", "20"), *watch]]
    assert sleeps == [(1, None)]  # the stream that ended at once is not reopened at once; the 410 is


async def test_a_watch_backs_off_on_errors_reports_itself_down_and_resumes(
        api: tuple[Api, Kube], sleeps: list[tuple[float, float | None]], caplog: pytest.LogCaptureFixture) -> None:
    server, kube = api
    server.answers = [listed("10"), reply(500, {"message": "etcd down"}), reply(500, {"message": "etcd down"}),
                      server.stream({"type": "ADDED", "object": configmap("a", "11")}, hold=True)]
    events = kube.watch("cm", CONFIGMAPS, [])
    try:
        with caplog.at_level(logging.DEBUG, logger="inference_operator.kube"):
            assert await take(events, 2) == [("LISTED", []), ("ADDED", configmap("a", "11"))]
        assert watching.WATCHES.down_since["cm"] is None  # streaming again
    finally:
        await events.aclose()
    assert "cm" not in watching.WATCHES.down_since
    assert [delay for delay, _ in sleeps] == list(watching.RETRY_SECONDS[:2])
    assert all(down is not None for _, down in sleeps)  # down while it waited
    assert [r.query for r in server.received[1:]] == [
        [("resourceVersion", "10"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", "240"), ("watch", "true")],
    ] * 3  # no list again: each attempt resumes from the list's version
    warnings = [r for r in caplog.records if "watch of cm interrupted (API error 500: etcd down)" in r.getMessage()]
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.DEBUG]  # the same cause again: quieter


async def test_acting_as_impersonates_on_every_request_and_leaves_the_original_alone(api: tuple[Api, Kube]) -> None:
    recorder, kube = api
    deployer = kube.acting_as("system:serviceaccount:team-a:deployer")
    person = kube.acting_as("alice", ("team-a", "reviewers"))
    await deployer.read("v1", "ConfigMap", "team-a", "models")
    await person.apply({**DEPLOYMENT})
    await kube.read("v1", "ConfigMap", "team-a", "models")
    first, second, third = recorder.received
    assert first.headers["Impersonate-User"] == "system:serviceaccount:team-a:deployer"
    assert "Impersonate-Group" not in first.headers and first.headers["Authorization"] == "Bearer secret"
    assert second.headers["Impersonate-User"] == "alice"
    raw = [v for k, v in second.raw_headers or [] if k.lower() == "impersonate-group"]
    assert raw == ["team-a", "reviewers"]  # one header per group, as the API server reads them
    assert "Impersonate-User" not in third.headers
    with pytest.raises(ValueError):
        kube.acting_as("")
