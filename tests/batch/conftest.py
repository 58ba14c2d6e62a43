"""A real model process on 127.0.0.1 (model_server.py) for the batch runner's end-to-end tests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SERVER = Path(__file__).with_name("model_server.py")


@dataclass
class ModelServer:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/predict"

    def requests(self) -> list[dict[str, Any]]:
        """Requests the server received (POSTs only; the runner's GET probe is not logged)."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def model_server(tmp_path: Path) -> Iterator[ModelServer]:
    log = tmp_path / "requests.jsonl"
    proc = subprocess.Popen([sys.executable, str(SERVER), "--log", str(log)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), f"model server did not start: {line!r}"
        yield ModelServer(port=int(line.split()[1]), log=log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
