"""`python -m inference_operator.batch` end to end: real files in tmp_path, a real model process.

Each test runs the CLI as a subprocess (as the Job's container does) against model_server.py and
checks the outputs under dest, the progress file, the termination message and the exit code.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ModelServer = Any  # conftest.ModelServer: .url, .requests()
ROOT = Path(__file__).resolve().parents[2]
CSV_RULE = {"type": "object", "properties": {"data": {"type": "object", "properties": {"req_data": {
    "type": "array", "items": [{"type": "object", "properties": {
        "a": {"type": "number", "index": 0}, "b": {"type": "number", "index": 1},
        "tag": {"type": "string", "index": 2}}}]}}}}}


def write(root: Path, rel: str, data: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")


def run_cli(tmp_path: Path, url: str, *extra: str, mapping: str = "file",
            rule: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "inference_operator.batch", "--src", str(tmp_path / "src"),
            "--dest", str(tmp_path / "dst"), "--url", url, "--mapping-type", mapping,
            "--progress-file", str(tmp_path / "progress.json"),
            "--termination-log", str(tmp_path / "termination-log"), "--concurrency", "3", *extra]
    if rule is not None:
        args += ["--mapping-rule", json.dumps(rule)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)


def progress(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "progress.json").read_text())


def termination(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "termination-log").read_text())


class TestFileMapping:
    def test_every_file_sent_and_answered(self, tmp_path: Path, model_server: ModelServer) -> None:
        src = tmp_path / "src"
        write(src, "note.txt", "hello")
        write(src, "req/one.json", '{"x": 2, "y": [3, 4]}')
        write(src, "img/pic.png", b"\x89PNG-bytes")
        write(src, ".skip.txt", "FAIL")
        done = run_cli(tmp_path, model_server.url)
        assert done.returncode == 0, done.stderr
        dst = tmp_path / "dst"
        assert json.loads((dst / "note.txt.json").read_text()) == {"upper": "HELLO", "contentType": "text/plain"}
        assert json.loads((dst / "req/one.json.json").read_text())["sum"] == 9
        assert (dst / "img/pic.png.out").read_bytes() == b"setyb-GNP\x89"
        assert sorted(r["contentType"] for r in model_server.requests()) == [
            "application/json", "image/png", "text/plain"]
        assert {k: progress(tmp_path)[k] for k in ("status", "total", "done", "failed", "progress")} == {
            "status": "succeeded", "total": 3, "done": 3, "failed": 0, "progress": 100}
        assert termination(tmp_path)["status"] == "succeeded"

    def test_over_threshold_fails_with_first_errors(self, tmp_path: Path, model_server: ModelServer) -> None:
        for i in range(10):
            write(tmp_path / "src", f"in{i}.txt", "FAIL" if i in (3, 7) else f"text {i}")
        done = run_cli(tmp_path, model_server.url, "--max-failures-percent", "10")
        assert done.returncode == 1
        final = progress(tmp_path)
        assert (final["status"], final["done"], final["succeeded"], final["failed"]) == ("failed", 10, 8, 2)
        assert final["errors"] == [
            {"input": "in3.txt", "error": "HTTP 500: model failed on this input"},
            {"input": "in7.txt", "error": "HTTP 500: model failed on this input"}]
        message = termination(tmp_path)["message"]
        assert message.startswith("2 of 10 inputs failed (20% > 10% allowed); first errors: in3.txt: HTTP 500")
        assert len(list((tmp_path / "dst").iterdir())) == 8

    def test_within_threshold_succeeds_and_retries_503(self, tmp_path: Path, model_server: ModelServer) -> None:
        for i in range(10):
            write(tmp_path / "src", f"in{i}.txt", "FAIL" if i == 0 else "FLAKY" if i == 1 else f"t{i}")
        done = run_cli(tmp_path, model_server.url, "--max-failures-percent", "10")
        assert done.returncode == 0, done.stderr
        assert (progress(tmp_path)["failed"], progress(tmp_path)["succeeded"]) == (1, 9)
        assert (tmp_path / "dst" / "in1.txt.json").exists()  # 503 first, then answered
        assert "in0.txt: HTTP 500" in done.stderr

    def test_resume_skips_written_outputs(self, tmp_path: Path, model_server: ModelServer) -> None:
        write(tmp_path / "src", "a.txt", "a")
        write(tmp_path / "src", "b.txt", "b")
        write(tmp_path / "dst", "a.txt.json", "{}")
        assert run_cli(tmp_path, model_server.url, "--resume").returncode == 0
        assert len(model_server.requests()) == 1
        assert (progress(tmp_path)["skipped"], progress(tmp_path)["succeeded"]) == (1, 2)


    def test_unwritable_output_is_an_input_error(self, tmp_path: Path, model_server: ModelServer) -> None:
        write(tmp_path / "src", "ok.txt", "fine")
        write(tmp_path / "src", "sub/a.txt", "blocked")
        write(tmp_path / "dst", "sub", "a file where the runner needs a directory")
        done = run_cli(tmp_path, model_server.url, "--max-failures-percent", "50")
        assert done.returncode == 0, done.stderr
        (error,) = progress(tmp_path)["errors"]
        assert error["input"] == "sub/a.txt" and error["error"].startswith("cannot write the output:")
        assert (tmp_path / "dst" / "ok.txt.json").exists()


class TestCsvMapping:
    def test_rows_mapped_by_the_rule(self, tmp_path: Path, model_server: ModelServer) -> None:
        write(tmp_path / "src", "part1.csv", "1,2,x\n3,4.5,FAIL\n")
        write(tmp_path / "src", "more/part2.csv", "10,20,y\nnot-a-number,1,z\n")
        write(tmp_path / "src", "readme.txt", "ignored in csv mode")
        done = run_cli(tmp_path, model_server.url, "--max-failures-percent", "50", mapping="csv", rule=CSV_RULE)
        assert done.returncode == 0, done.stderr
        dst = tmp_path / "dst"
        first = json.loads((dst / "part1.csv.row1.json").read_text())
        assert first["received"] == {"data": {"req_data": [{"a": 1, "b": 2, "tag": "x"}]}}
        assert first["sum"] == 3
        assert json.loads((dst / "more/part2.csv.row1.json").read_text())["sum"] == 30
        final = progress(tmp_path)
        assert (final["total"], final["succeeded"], final["failed"]) == (4, 2, 2)
        assert sorted(e["input"] for e in final["errors"]) == ["more/part2.csv#2", "part1.csv#2"]
        errors = {e["input"]: e["error"] for e in final["errors"]}
        assert errors["more/part2.csv#2"] == "cannot build the request: column 0: 'not-a-number' is not a number"
        assert errors["part1.csv#2"].startswith("HTTP 500")
        assert len(model_server.requests()) == 3  # the unmappable row is never sent


class TestCannotRun:
    def test_bad_rule(self, tmp_path: Path, model_server: ModelServer) -> None:
        write(tmp_path / "src", "a.csv", "1\n")
        done = run_cli(tmp_path, model_server.url, mapping="csv", rule={"properties": {"a": {"index": -1}}})
        assert done.returncode == 2
        assert "mappingRule.properties.a.index" in termination(tmp_path)["message"]

    def test_no_inputs(self, tmp_path: Path, model_server: ModelServer) -> None:
        (tmp_path / "src").mkdir()
        done = run_cli(tmp_path, model_server.url)
        assert done.returncode == 2
        assert termination(tmp_path)["message"].startswith("no inputs: found no files under")

    def test_dest_cannot_be_created(self, tmp_path: Path, model_server: ModelServer) -> None:
        write(tmp_path / "src", "a.txt", "a")
        write(tmp_path, "dst", "a file, not a directory")
        done = run_cli(tmp_path, model_server.url)
        assert done.returncode == 2
        assert termination(tmp_path)["message"].startswith("cannot create the output directory")

    def test_model_unreachable(self, tmp_path: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        write(tmp_path / "src", "a.txt", "a")
        done = run_cli(tmp_path, f"http://127.0.0.1:{port}/predict", "--wait-timeout", "1")
        assert done.returncode == 2
        assert "did not answer within 1s" in termination(tmp_path)["message"]

    def test_csv_needs_a_rule(self, tmp_path: Path) -> None:
        (tmp_path / "src").mkdir()
        done = run_cli(tmp_path, "http://127.0.0.1:1/x", mapping="csv")
        assert done.returncode == 2 and "--mapping-rule" in done.stderr


@pytest.mark.parametrize("flag", ["--concurrency=0", "--mapping-rule=[1]", "--mapping-rule={bad"])
def test_bad_flags(tmp_path: Path, flag: str) -> None:
    (tmp_path / "src").mkdir()
    assert run_cli(tmp_path, "http://127.0.0.1:1/x", flag).returncode == 2
