"""kubectl-infsvc's pure parts: what get and describe print, how invoke builds, signs and reads a call."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime

from inference_operator.cli import invoke, show
from inference_operator.gateway import signing
from inference_operator.gateway.auth import PendingSignature, RequestFacts, check_head, lower_headers
from inference_operator.gateway.entries import AppCredential, service_route

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BODY = {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService",
        "metadata": {"name": "demo", "namespace": "team-a", "uid": "u-1", "creationTimestamp": "2026-12-01T11:59:18Z"},
        "spec": {"models": [{"name": "v1", "weight": 100, "image": "r/x:1", "modelName": "m", "modelVersion": "1"},
                            {"name": "v2", "weight": 0, "image": "r/x:1", "modelName": "m", "modelVersion": "1"}],
                 "auth": {"appAuth": True, "apps": [{"secretName": "app-a"}, {"secretName": "app-b"}]}},
        "status": {"serviceId": "u-1", "status": "running", "progress": 50, "accessAddress": "http://gw/v1/infers/u-1",
                   "errorMsg": "v2: 0/1 ready", "conditions": [{"type": "Ready", "status": "False",
                                                                 "reason": "Concerning", "message": "v2 not ready"}],
                   "models": [{"name": "v1", "status": "ready", "replicas": 1, "readyReplicas": 1, "weight": 100}]}}


def test_get_prints_kubectls_columns():
    lines = show.get_table([BODY], NOW).splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "PROGRESS", "ADDRESS", "MODELS", "AGE"]
    assert lines[1].split() == ["demo", "running", "50", "http://gw/v1/infers/u-1", "v1,v2", "42s"]
    assert show.get_table([BODY], NOW, all_namespaces=True).splitlines()[1].split()[0] == "team-a"
    assert show.get_table([], NOW) == ""


def test_ages_read_as_kubectls():
    assert [show.age(t, NOW) for t in ("2026-12-01T11:55:30Z", "2026-12-01T06:30:00Z", "2026-11-20T12:00:00Z",
                                       None)] == ["4m30s", "5h30m", "11d", "<unknown>"]


def test_describe_shows_status_conditions_models_and_events():
    events = [{"type": "Warning", "reason": "Concerning", "message": "v2 not ready", "lastTimestamp":
               "2026-12-01T11:59:50Z", "source": {"component": "inference-operator"}}]
    text = show.describe(BODY, events, NOW)
    assert "Status:      running" in text and "Error:       v2: 0/1 ready" in text
    assert "App Auth:    on (apps: app-a, app-b)" in text
    assert "Ready   False    Concerning   v2 not ready" in text
    models = text.split("Models:\n")[1].split("Events:")[0].splitlines()
    assert [row.split()[:4] for row in models[1:]] == [["v1", "ready", "1/1", "100"], ["v2", "<none>", "<none>", "0"]]
    assert text.splitlines()[-1].split()[:4] == ["Warning", "Concerning", "10s", "inference-operator"]
    assert show.describe({"metadata": {"name": "x"}}, [], NOW).endswith("Events:  <none>")


def test_invoke_signs_so_that_the_gateway_verifies_it():
    call = invoke.build_call("http://gw.test/v1/infers/u-1", b'{"a": 1}', ("KEY", "SECRET"), "/predict?x=1", False,
                             {"X-Extra": "1"})
    assert call.url == "http://gw.test/v1/infers/u-1/predict?x=1"
    headers = lower_headers(call.headers.items())
    facts = RequestFacts("POST", "/v1/infers/u-1/predict", "x=1", headers)
    route = service_route(BODY)
    assert route is not None and route.app_auth and route.unavailable is None
    now = signing.parse_date(headers["x-sdk-date"])
    passed = check_head(route, [AppCredential("KEY", "SECRET", "CODE")], [], facts, now)
    assert isinstance(passed, PendingSignature)
    assert passed.verify(hashlib.sha256(call.body).hexdigest()).key == "KEY"


def test_invoke_picks_the_first_app_and_the_address():
    assert invoke.app_secret_name(BODY, None) == "app-a" and invoke.app_secret_name(BODY, "app-b") == "app-b"
    assert invoke.app_secret_name({"spec": {}}, None) is None
    assert invoke.address(BODY, None) == "http://gw/v1/infers/u-1"
    assert invoke.address(BODY, "http://127.0.0.1:8080/") == "http://127.0.0.1:8080/v1/infers/u-1"


def test_stream_asks_for_events_and_keeps_other_bodies():
    assert json.loads(invoke.with_stream(b'{"model": "m"}')) == {"model": "m", "stream": True}
    assert invoke.with_stream(b"not json") == b"not json" and invoke.with_stream(b"[1]") == b"[1]"
    assert invoke.build_call("http://g/x", b"{}", None, "", True, {}).headers["Accept"] == "text/event-stream"


async def test_events_print_one_data_payload_a_line_until_done():
    async def chunks():
        for part in (b'data: {"n": 0}\n', b'\ndata: {"n"', b': 1}\r\n\r\n: comment\n\n', b"data: [DONE]\n\n",
                     b"data: after\n\n"):
            yield part

    out = io.StringIO()
    await invoke.print_events(chunks(), out)
    assert out.getvalue() == '{"n": 0}\n{"n": 1}\n'
