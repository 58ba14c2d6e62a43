"""The real alibabacloud_eas20210701 client pointed at a loopback server that records what it receives:
the requests, signatures included, are the SDK's own, not a copy of its algorithm."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from alibabacloud_eas20210701.client import Client
from alibabacloud_tea_openapi import models as open_api_models

ACCESS_KEY, SECRET_KEY = "LTAI-test-key", "test-secret-value"


@dataclass
class Captured:
    method: str
    target: str
    headers: dict[str, list[str]]
    body: bytes


@dataclass
class Recorder:
    requests: list[Captured] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=lambda: {"RequestId": "r-1"})


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            headers: dict[str, list[str]] = {}
            for name, value in self.headers.items():
                headers.setdefault(name.lower(), []).append(value)
            recorder.requests.append(Captured(self.command, self.path, headers, self.rfile.read(length)))
            data = json.dumps(recorder.answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _record

        def log_message(self, *args: Any) -> None:
            pass
    return Handler


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.endpoint = f"127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def eas(recorder: Recorder) -> Client:
    config = open_api_models.Config(access_key_id=ACCESS_KEY, access_key_secret=SECRET_KEY,
                                    endpoint=recorder.endpoint, protocol="http", region_id="local")  # type: ignore[attr-defined]
    return Client(config)
