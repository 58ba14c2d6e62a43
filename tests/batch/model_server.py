"""A tiny real model server for the batch runner's end-to-end tests: `python model_server.py`.

Prints `PORT <n>` once listening on 127.0.0.1 (an ephemeral port). POST /predict:
- a body containing FAIL -> 500 "model failed on this input"; containing FLAKY -> 503 the first
  time each distinct body is seen, then an answer (exercises the runner's retries);
- application/json -> JSON {"received": <the JSON>, "sum": <sum of its numbers>, "contentType": ...};
- text/* -> JSON {"upper": <text upper-cased>, "contentType": ...};
- anything else -> the bytes reversed, application/octet-stream.
GET anything -> 200 "ok" (the runner's "is it up" probe). Every request is appended to the file
named by --log (one JSON line: method, path, content type), so tests can check what was sent.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SEEN: set[bytes] = set()
LOCK = threading.Lock()


def numbers(value: Any) -> float:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return value
    if isinstance(value, dict):
        return sum(numbers(v) for v in value.values())
    if isinstance(value, list):
        return sum(numbers(v) for v in value)
    return 0


class Handler(BaseHTTPRequestHandler):
    log_file = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep stderr quiet
        pass

    def _record(self) -> None:
        with LOCK, open(self.log_file, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"method": self.command, "path": self.path,
                                     "contentType": self.headers.get("Content-Type")}) + "\n")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._send(200, b"ok", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._record()
        ctype = (self.headers.get("Content-Type") or "").split(";")[0]
        if self.path != "/predict":
            return self._send(404, b"no such path", "text/plain")
        if b"FAIL" in body:
            return self._send(500, b"model failed on this input", "text/plain")
        if b"FLAKY" in body:
            with LOCK:
                first = body not in SEEN
                SEEN.add(body)
            if first:
                return self._send(503, b"warming up", "text/plain")
        if ctype == "application/json":
            data = json.loads(body)
            answer = {"received": data, "sum": numbers(data), "contentType": ctype}
            return self._send(200, json.dumps(answer).encode(), "application/json")
        if ctype.startswith("text/"):
            answer = {"upper": body.decode().upper(), "contentType": ctype}
            return self._send(200, json.dumps(answer).encode(), "application/json")
        return self._send(200, body[::-1], "application/octet-stream")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    Handler.log_file = parser.parse_args().log
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
