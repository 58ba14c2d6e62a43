"""What the LoRA e2e tests share (tests/e2e/test_lora.py): simulated vLLM engines with LoRA on, the claim the
example mounts, examples/lora.yaml applied with one replica from its Deployment and one pod of the test's, and
calls to the gateway and the engines."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from gateways import DIRECT
from kubernetes import client
from services import Cluster

from conftest import REPO, _localcluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOSTLOCAL = "example.invalid/hostlocal-engine:1"
BASE = "llama-3.1-8b-instruct"
GOOD = {"sql-writer", "support-tone"}


class Engine:
    """A simulated vLLM with LoRA on (4 slots), on this machine's every interface."""

    def __init__(self, port: int = 0, max_loras: int = 4, register_seconds: float = 0.0) -> None:
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "enginesim" / "server.py"), "--model", BASE,
                                      "--host", "0.0.0.0", "--port", str(port), "--max-loras", str(max_loras),
                                      "--itl", "0.005", "--lora-register-seconds", str(register_seconds)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def adapters(self) -> dict[str, str]:
        """What the engine holds: adapter -> its parent, as vLLM's /v1/models lists them."""
        try:
            with DIRECT.open(f"http://127.0.0.1:{self.port}/v1/models", timeout=5) as resp:
                data = json.loads(resp.read())["data"]
        except OSError:
            return {}
        return {m["id"]: m["parent"] for m in data if m.get("parent")}

    def sim(self) -> dict[str, Any]:
        """The simulator's own view (registered, running, load_calls, metrics_reads: the gateway's readings)."""
        with DIRECT.open(f"http://127.0.0.1:{self.port}/sim/lora", timeout=5) as resp:
            return json.loads(resp.read())

    def load(self, name: str) -> None:
        """Load an adapter as the operator's loop would."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/load_lora_adapter", json.dumps(
            {"lora_name": name, "lora_path": f"/mnt/adapters/models/adapters/{name}"}).encode(),
            {"Content-Type": "application/json"})
        with DIRECT.open(request, timeout=10) as resp:
            assert resp.status == 200

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def apply_example(api: client.ApiClient, kube: Cluster, engines: list[Engine], extra: list[dict] = (),
                  annotations: dict[str, str] | None = None) -> dict:
    """examples/lora.yaml as given but for its image (hostlocal: the pod gets this machine's address) and port
    (engine 0's), one replica from its Deployment and engine 1 behind a pod of its own with the model's labels;
    the stored service once both engines are endpoints."""
    body = yaml.safe_load((EXAMPLES / "lora.yaml").read_text())
    llama = body["spec"]["models"][0]
    llama.update(image=HOSTLOCAL, port=engines[0].port, instanceCount=1)
    llama["adapters"] += list(extra)
    if annotations:
        body["metadata"]["annotations"] = annotations
    _localcluster().kubectl("apply", "-n", kube.ns, "-f", "-", input=yaml.safe_dump(body))
    service = kube.wait_for(lambda: _services(api, kube.ns), 60, "the model's Service")
    client.CoreV1Api(api).create_namespaced_pod(kube.ns, {
        "metadata": {"name": "engine-1", "labels": service.spec.selector},
        "spec": {"containers": [{"name": "engine", "image": HOSTLOCAL,
                                 "ports": [{"name": "http", "containerPort": engines[1].port}]}]}})
    kube.wait_for(lambda: kube.status("llm-lora").get("status") in ("running", "concerning"), 90,
                  "the service serving (concerning: an adapter its engines refuse)")
    return kube.get("llm-lora")


def _services(api: client.ApiClient, namespace: str) -> Any:
    found = client.CoreV1Api(api).list_namespaced_service(namespace).items
    return found[0] if found else None


def adapter_status(kube: Cluster) -> dict[str, dict[str, Any]]:
    models = kube.status("llm-lora").get("models") or [{}]
    return {a["name"]: a for a in models[0].get("adapters") or []}


def everywhere(engines: list[Engine], names: set[str]) -> bool:
    return all(set(e.adapters()) == names and set(e.adapters().values()) == {BASE} for e in engines)


def chat(url: str, uid: str, model: str) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"model": model, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(f"{url}/v1/infers/{uid}/v1/chat/completions", body,
                                     {"Content-Type": "application/json"})
    try:
        with DIRECT.open(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def get_json(url: str) -> Any:
    with DIRECT.open(url, timeout=10) as resp:
        return json.loads(resp.read())
