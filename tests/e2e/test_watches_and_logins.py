"""Watches that never die quietly, and any kubeconfig a user has (issue 10, points 5 and 6).

- A ~900 KB flavor ConfigMap reaches the operator through its watch and a service uses its flavor.
- The API connection dropped under a running operator: the watch restart is logged with its cause and
  resumes from its resourceVersion; a longer outage fails /healthz of the operator and of the gateway
  until the API is back. The outage is real: the processes reach the API server through a TCP relay
  (TLS end to end) that the test cuts and closes.
- The operator and the gateway log in with an exec credential plugin that mints a ServiceAccount token
  through the TokenRequest API (`kubectl create token`), the ServiceAccount holding the chart's own
  RBAC, rendered by helm; the operator reads KUBECONFIG as two files, cluster in one, user and context
  in the other.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from services import Cluster, manifest, model

from conftest import REPO, OperatorProcess, _localcluster, free_port

FLAVORS = "inference-flavors"
HALF_NODE = "cpu: 48\nmemoryMiB: 524288\ngpu: 4\nnodeSelector: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}\n"


@pytest.fixture
def kube(api, namespace, wait_for) -> Cluster:
    return Cluster(api, namespace, wait_for)


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def test_a_900kb_flavor_configmap_is_read_and_its_flavor_used(kube: Cluster, operator: OperatorProcess):
    """Over aiohttp's 512 KiB line limit: the watch event must still be read whole."""
    big = "x" * 900_000
    data = {"team.gpu.half-node": HALF_NODE, "team.documented": f"cpu: 1\nmemoryMiB: 1024\ndescription: {big}\n"}
    kube.core.create_namespaced_config_map(operator.namespace, {"metadata": {"name": FLAVORS}, "data": data})
    try:
        kube.create(manifest("tailored", model("m", 100, "team.gpu.half-node")))
        kube.wait_status("tailored", "running", timeout=60)
        limits = kube.deployment("tailored-m").spec.template.spec.containers[0].resources.limits
        assert limits["nvidia.com/gpu"] == "4"
    finally:
        kube.core.delete_namespaced_config_map(FLAVORS, operator.namespace)


class Relay:
    """A TCP relay to the API server in its own thread: `cut()` drops every open connection (the API
    server closing the streams), `close()` refuses new ones until `open()` (the API unreachable)."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.port = target_port, free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    async def _open(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self._cut()

    def start(self) -> None:
        self.thread.start()
        self.open()

    def open(self) -> None:
        self._run(self._open())

    def cut(self) -> None:
        self._run(self._cut())

    def close(self) -> None:
        self._run(self._close())

    def stop(self) -> None:
        if self.server is not None:
            self.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def kubeconfig_via(cluster_kubeconfig: str, port: int, path: Path) -> str:
    config = yaml.safe_load(Path(cluster_kubeconfig).read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def log_has(path: Path, start: int, *words: str) -> bool:
    text = path.read_bytes()[start:].decode(errors="replace")
    return any(all(word in line for word in words) for line in text.splitlines())


@pytest.fixture
def relay(cluster: str) -> Iterator[Relay]:
    port = int(yaml.safe_load(Path(cluster).read_text())["clusters"][0]["cluster"]["server"].rsplit(":", 1)[1])
    relay = Relay(port)
    relay.start()
    yield relay
    relay.stop()


def start_gateway(kubeconfig: str, namespace: str, log_name: str) -> tuple[subprocess.Popen, int]:
    metrics_port = free_port()
    log = open(REPO / ".cluster" / "logs" / log_name, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "inference_operator.gateway", "--host", "127.0.0.1",
                             "--port", str(free_port()), "--metrics-port", str(metrics_port), "-n", namespace],
                            env={**os.environ, "KUBECONFIG": kubeconfig}, stdout=log, stderr=subprocess.STDOUT)
    return proc, metrics_port


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_dropped_watches_are_logged_resume_and_healthz_fails_only_while_down(
        cluster, crds, api, namespace, wait_for, relay: Relay, tmp_path: Path, alone):
    kubeconfig = kubeconfig_via(cluster, relay.port, tmp_path / "kubeconfig")
    health_port = free_port()
    operator = OperatorProcess(kubeconfig, free_port(), namespace,
                               ("--namespace", namespace, "--liveness", f"http://127.0.0.1:{health_port}/healthz"),
                               log_name="operator-watch-e2e.log")
    start = operator.log_path.stat().st_size if operator.log_path.exists() else 0
    operator.start()
    gateway, gateway_port = start_gateway(kubeconfig, namespace, "gateway-watch-e2e.log")
    operator_health = f"http://127.0.0.1:{health_port}/healthz"
    gateway_health = f"http://127.0.0.1:{gateway_port}/healthz"
    core = client.CoreV1Api(api)
    try:
        wait_for(lambda: status_of(operator_health) == 200 and status_of(gateway_health) == 200, 30,
                 "operator and gateway healthy")
        wait_for(lambda: log_has(operator.log_path, start, f"flavor ConfigMap {namespace}/{FLAVORS}",
                                 "absent: built-in"), 30, "the flavor watch's first list")

        relay.cut()  # the API server closes every stream
        wait_for(lambda: log_has(operator.log_path, start, f"watch of ConfigMap {namespace}/{FLAVORS} interrupted (",
                                 "resuming from resourceVersion"), 30, "the restart logged with its cause")
        core.create_namespaced_config_map(namespace, {"metadata": {"name": FLAVORS},
                                                      "data": {"team.gpu.half-node": HALF_NODE}})
        wait_for(lambda: log_has(operator.log_path, start, f"flavor ConfigMap {namespace}/{FLAVORS}",
                                 "read: 1 entries"), 30, "the flavor change seen by the resumed watch")
        assert status_of(operator_health) == 200 and status_of(gateway_health) == 200

        relay.close()  # the API unreachable: healthy for 30 s, failing after
        down_at = time.monotonic()
        wait_for(lambda: status_of(operator_health) not in (0, 200) and status_of(gateway_health) == 503, 60,
                 "both /healthz to fail while the watches are down")
        assert time.monotonic() - down_at > 29, "a short outage must not fail /healthz"
        relay.open()
        wait_for(lambda: status_of(operator_health) == 200 and status_of(gateway_health) == 200, 40,
                 "both /healthz to pass again once the watches are back")
    finally:
        stop(gateway)
        operator.stop()


# --- exec credential plugins and several kubeconfig files -------------------------------------------------------

PLUGIN = """\
import json, subprocess, sys, uuid
from datetime import datetime, timedelta, timezone
runs, kubectl, admin, account, namespace = sys.argv[1:6]
with open(runs, "a") as out:
    out.write("run\\n")
kubectl = [kubectl, "--kubeconfig", admin, "-n", namespace]
secret = f"exec-token-{uuid.uuid4().hex[:8]}"  # the token lives as long as this Secret: deleting it revokes it
subprocess.run([*kubectl, "create", "secret", "generic", secret], check=True, capture_output=True)
token = subprocess.run([*kubectl, "create", "token", account, "--duration", "10m", "--bound-object-kind", "Secret",
                        "--bound-object-name", secret], check=True, capture_output=True, text=True).stdout.strip()
expiry = (datetime.now(timezone.utc) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token, "expirationTimestamp": expiry}}))
"""


class ExecLogin:
    """A ServiceAccount with the chart's RBAC (helm template, the operator watching the test's namespace as
    it runs here), and kubeconfigs whose user is an exec plugin minting its token; `runs` counts its runs."""

    def __init__(self, cluster: str, namespace: str, tmp: Path) -> None:
        self.cluster, self.namespace, self.tmp = cluster, namespace, tmp
        self.release = f"exec-{uuid.uuid4().hex[:5]}"
        self.runs = tmp / "runs"
        self.objects: list[dict[str, Any]] = []

    def install_rbac(self) -> None:
        lc = _localcluster()
        helm = lc.bin_dir() / "helm"
        rendered = subprocess.run(
            [str(helm), "template", self.release, str(REPO / "charts" / "inference-operator"), "-n", self.namespace,
             "--kube-version", lc.versions()["KUBERNETES_VERSION"], "--set", f"watchNamespaces[0]={self.namespace}"],
            check=True, capture_output=True, text=True)
        kinds = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
        self.objects = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] in kinds]
        for doc in self.objects:
            doc["metadata"].setdefault("namespace", self.namespace)
        lc.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(self.objects))

    def account(self, component: str) -> str:
        """The chart's ServiceAccount of the operator ("") or the gateway ("gateway")."""
        names = [d["metadata"]["name"] for d in self.objects if d["kind"] == "ServiceAccount"]
        return next(n for n in names if ("gateway" in n) == (component == "gateway"))

    def remove(self) -> None:
        cluster_wide = [d for d in self.objects if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
        if cluster_wide:
            _localcluster().kubectl("delete", "--ignore-not-found", "-f", "-", input=yaml.safe_dump_all(cluster_wide),
                                    check=False)

    def kubeconfigs(self, account: str, split: bool, server: str | None = None) -> str:
        """KUBECONFIG for `account`: one file, or two (cluster in one, context and user in the other)."""
        admin = yaml.safe_load(Path(self.cluster).read_text())
        if server:
            admin["clusters"][0]["cluster"]["server"] = server
        plugin = self.tmp / "plugin.py"
        plugin.write_text(PLUGIN)
        kubectl = str(_localcluster().bin_dir() / "kubectl")
        user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                         "args": [str(plugin), str(self.runs), kubectl, self.cluster, account, self.namespace],
                         "interactiveMode": "Never"}}
        cluster_part = {"apiVersion": "v1", "kind": "Config", "clusters": [
            {"name": "local", "cluster": admin["clusters"][0]["cluster"]}]}
        user_part = {"apiVersion": "v1", "kind": "Config", "current-context": "as-sa",
                     "contexts": [{"name": "as-sa", "context": {"cluster": "local", "user": "sa"}}],
                     "users": [{"name": "sa", "user": user}]}
        if not split:
            path = self.tmp / f"kubeconfig-{account}"
            path.write_text(yaml.safe_dump({**cluster_part, **user_part}))
            return str(path)
        (self.tmp / "clusters").write_text(yaml.safe_dump(cluster_part))
        (self.tmp / "user").write_text(yaml.safe_dump(user_part))
        return os.pathsep.join([str(self.tmp / "clusters"), str(self.tmp / "user")])

    def plugin_runs(self) -> int:
        return len(self.runs.read_text().splitlines()) if self.runs.exists() else 0

    def revoke_tokens(self, core: client.CoreV1Api) -> int:
        """Delete the Secrets the plugin bound its tokens to: every token it gave out stops working."""
        names = [s.metadata.name for s in core.list_namespaced_secret(self.namespace).items
                 if s.metadata.name.startswith("exec-token-")]
        for name in names:
            core.delete_namespaced_secret(name, self.namespace)
        return len(names)


@pytest.fixture
def exec_login(cluster, crds, namespace, tmp_path: Path) -> Iterator[ExecLogin]:
    login = ExecLogin(cluster, namespace, tmp_path)
    login.install_rbac()
    yield login
    login.remove()


def test_operator_logs_in_with_an_exec_plugin_from_two_kubeconfig_files(
        api, namespace, wait_for, exec_login: ExecLogin, alone):
    kubeconfig = exec_login.kubeconfigs(exec_login.account("operator"), split=True)
    operator = OperatorProcess(kubeconfig, free_port(), namespace, ("--namespace", namespace),
                               log_name="operator-exec-e2e.log")
    operator.start()
    try:
        kube = Cluster(api, namespace, wait_for)
        kube.create(manifest("by-exec", model("m", 100)))
        kube.wait_status("by-exec", "running", timeout=60)
        ok = 'inference_operator_reconciles_total{result="ok"}'
        wait_for(lambda: operator.metrics().get(ok, 0) > 0, 60, "reconciles by the exec-plugin operator")
        assert operator.proc is not None and operator.proc.poll() is None
        assert exec_login.plugin_runs() >= 1
    finally:
        operator.stop()


def test_gateway_logs_in_with_an_exec_plugin(namespace, wait_for, exec_login: ExecLogin):
    kubeconfig = exec_login.kubeconfigs(exec_login.account("gateway"), split=False)
    gateway, port = start_gateway(kubeconfig, namespace, "gateway-exec-e2e.log")
    try:
        wait_for(lambda: status_of(f"http://127.0.0.1:{port}/healthz") == 200, 30,
                 "the gateway's watches listed with the plugin's token")
        assert exec_login.plugin_runs() >= 1
    finally:
        stop(gateway)


def test_revoked_exec_tokens_are_replaced_for_kopf_and_for_us(api, namespace, wait_for, exec_login: ExecLogin,
                                                             relay: Relay, alone):
    """kopf logs in again after a 401 (our login handler runs the plugin anew), and so does our client."""
    kubeconfig = exec_login.kubeconfigs(exec_login.account("operator"), split=False,
                                        server=f"https://127.0.0.1:{relay.port}")
    operator = OperatorProcess(kubeconfig, free_port(), namespace, ("--namespace", namespace),
                               log_name="operator-exec-refresh-e2e.log")
    start = operator.log_path.stat().st_size if operator.log_path.exists() else 0
    operator.start()
    ok = 'inference_operator_reconciles_total{result="ok"}'
    core = client.CoreV1Api(api)
    try:
        kube = Cluster(api, namespace, wait_for)
        kube.create(manifest("rotating", model("m", 100)))
        kube.wait_status("rotating", "running", timeout=60)
        wait_for(lambda: operator.metrics().get(ok, 0) > 0, 60, "reconciles by the exec-plugin operator")
        runs = exec_login.plugin_runs()
        assert runs >= 1
        assert exec_login.revoke_tokens(core) >= 1


        def reconnected_with_new_token() -> bool:
            # Every stream reconnects with the token it has; the API server refuses it once its token
            # cache (seconds) forgets it: cut until then.
            relay.cut()
            return exec_login.plugin_runs() > runs

        wait_for(reconnected_with_new_token, 90, "the plugin to be asked for a new token", 3)
        wait_for(lambda: log_has(operator.log_path, start, "Re-authentication has been initiated"), 30,
                 "kopf to log in again")
        reconciled = operator.metrics().get(ok, 0)
        kube.patch_spec("rotating", {"models": [model("m", 100, instanceCount=2)]})
        wait_for(lambda: operator.metrics().get(ok, 0) > reconciled, 30, "kopf's watch to deliver the change")
        wait_for(lambda: (kube.deployment("rotating-m").spec.replicas or 0) == 2, 30, "the change applied")
        assert operator.proc is not None and operator.proc.poll() is None
    finally:
        operator.stop()


def test_a_secret_the_gateway_was_not_granted_neither_fails_healthz_nor_floods_the_log(
        api, namespace, wait_for, exec_login: ExecLogin):
    """A tenant names an app Secret nobody granted to the gateway (the chart grants none by default): its
    watch is refused (403) again and again. That is the tenant's problem (its app stays unknown: 401), so
    it must not fail /healthz, which would have the gateway restarted and cut off every other tenant; and
    the same refusal is logged once as a warning, not every few seconds."""
    kube = Cluster(api, namespace, wait_for)
    client.CoreV1Api(api).create_namespaced_secret(namespace, {"metadata": {"name": "app-ungranted"}, "stringData": {
        "appKey": "K", "appSecret": "S", "appCode": "C"}})
    kube.create(manifest("tenant", model("m", 100), auth={"appAuth": True, "apps": [{"secretName": "app-ungranted"}]}))
    kubeconfig = exec_login.kubeconfigs(exec_login.account("gateway"), split=False)
    log_path = REPO / ".cluster" / "logs" / "gateway-ungranted-e2e.log"
    start = log_path.stat().st_size if log_path.exists() else 0
    metrics_port = free_port()
    gateway = subprocess.Popen(
        [sys.executable, "-m", "inference_operator.gateway", "--host", "127.0.0.1", "--port", str(free_port()),
         "--metrics-port", str(metrics_port), "-n", namespace, "--watch-grace-seconds", "1", "--log-level", "debug"],
        env={**os.environ, "KUBECONFIG": kubeconfig}, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
    refused = f"watch of Secret {namespace}/app-ungranted interrupted (API error 403"

    def refusals() -> list[str]:
        text = log_path.read_bytes()[start:].decode(errors="replace")
        return [line for line in text.splitlines() if refused in line]

    try:
        wait_for(lambda: status_of(f"http://127.0.0.1:{metrics_port}/healthz") == 200, 30, "the gateway synced")
        # Three refusals span 0.5 s + 1 s of retry delays: longer than the 1 s grace.
        wait_for(lambda: len(refusals()) >= 3, 60, "three refused watches of the ungranted Secret")
        assert status_of(f"http://127.0.0.1:{metrics_port}/healthz") == 200, "an ungranted Secret failed /healthz"
        warnings = [line for line in refusals() if " WARNING " in line]
        assert len(warnings) == 1, warnings
    finally:
        stop(gateway)
