"""`make run`'s script (hack/run.sh) as a newcomer runs it: the commands it prints work as printed.

It runs in the default namespace with the examples, on ports of its own, with no other operator beside it.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Iterator

import pytest
from gateways import free_port

from conftest import REPO, _localcluster


@pytest.fixture
def run_script(cluster, crds, alone) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "MODEL_PORT": str(free_port()), "GATEWAY_PORT": str(free_port()),
           "METRICS_PORT": str(free_port()), "GATEWAY_METRICS_PORT": str(free_port())}
    proc = subprocess.Popen(["bash", str(REPO / "hack" / "run.sh")], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)
    _localcluster().kubectl("delete", "-f", str(REPO / "examples" / "single-gpu.yaml"), "--ignore-not-found")


def printed_commands(proc: subprocess.Popen[str]) -> list[str]:
    """The lines after "In another shell:" (the three commands), or the script's output when it ends first."""
    assert proc.stdout is not None
    seen, commands = [], []
    for line in proc.stdout:
        seen.append(line)
        if commands or "In another shell:" in line:
            commands.append(line.strip())
            if len(commands) == 4:
                return commands[1:]
    raise AssertionError("hack/run.sh ended before printing its commands:\n" + "".join(seen))


@pytest.mark.timeout(240)
def test_the_printed_curl_and_signer_calls_answer(run_script):
    curl, signer, watch = printed_commands(run_script)
    assert curl.startswith("curl ") and "get infsvc -w" in watch
    answer = subprocess.run(["bash", "-c", curl + " -w '\\n%{http_code}'"], capture_output=True, text=True,
                            timeout=30, cwd=REPO)
    assert answer.stdout.splitlines()[-1] == "200", answer.stdout + answer.stderr
    assert '"jar-model"' in answer.stdout  # the model process answered (model_server.py tags with --name)
    signed = subprocess.run(shlex.split(signer), capture_output=True, text=True, timeout=30, cwd=REPO)
    assert signed.returncode == 0 and '"jar-model"' in signed.stdout, signed.stderr
