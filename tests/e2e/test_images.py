"""The image of `make images` (one image, four entrypoints: Dockerfile) as a cluster would run it.

The operator image reconciles a service to running; the gateway image serves a request to a model
process on this machine (a kwok "hostlocal" pod's address) with app authentication; the batch runner
image sends a batch's inputs to a local model server; the chart renders with the built digest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from gateways import DIRECT, call, free_port, host_model_server
from kubernetes import client
from services import Cluster, manifest, model

from conftest import REPO, OperatorProcess, _localcluster
from containers import KUBECONFIG_IN, Container, built_image, kube_mount, podman


@pytest.fixture(scope="module")
def image() -> dict[str, Any]:
    return built_image()


@pytest.fixture
def host_model() -> Iterator[int]:
    with host_model_server("v1") as port:
        yield port


def up(url: str) -> bool:
    try:
        with DIRECT.open(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_the_image_is_lean_and_labelled(image):
    """Non-root, HOME writable, no compiler, no pip, no sources; the OCI labels name source, revision, version."""
    inspect = podman("image", "inspect", "--format",
                     "{{.Config.User}}|{{json .Config.Env}}|{{json .Labels}}", image["image"])
    user, env, labels = inspect.stdout.strip().split("|")
    assert user == "65532:65532"
    assert '"HOME=/tmp"' in env
    labels_of = yaml.safe_load(labels)
    assert labels_of["org.opencontainers.image.revision"] == image["revision"]
    assert labels_of["org.opencontainers.image.version"] == image["tag"]
    assert labels_of["org.opencontainers.image.source"].startswith("https://")
    probe = podman("run", "--rm", "--entrypoint", "sh", image["image"], "-c",
                   "for t in gcc cc pip pip3; do command -v $t; done; ls -d /src /root/.cache/pip 2>/dev/null;"
                   " find / -xdev -name '*.c' -path '*inference_operator*' 2>/dev/null; echo end")
    assert probe.stdout.strip() == "end", probe.stdout


def test_the_operator_image_brings_a_service_to_running(image, api, cluster, crds, namespace, wait_for, alone,
                                                        tmp_path):
    kube = Cluster(api, namespace, wait_for)
    metrics = free_port()
    operator = Container(image["image"], ("--namespace", namespace, "--metrics-port", str(metrics), "--liveness",
                                          f"http://0.0.0.0:{free_port()}/healthz"),
                         (*kube_mount(cluster, tmp_path), "-e", f"POD_NAMESPACE={namespace}")).start()
    try:
        wait_for(lambda: up(f"http://127.0.0.1:{metrics}/metrics") or not operator.running(), 90,
                 "the operator container's /metrics")
        assert operator.running(), operator.logs()
        kube.create(manifest("demo", model("m")))
        kube.wait_status("demo", "running", timeout=60)
        assert operator.exec("id", "-u") == "65532"
    finally:
        operator.stop()


def test_the_gateway_image_serves_a_local_model_with_app_auth(image, api, cluster, crds, namespace, wait_for,
                                                             host_model, alone, tmp_path):
    kube = Cluster(api, namespace, wait_for)
    client.CoreV1Api(api).create_namespaced_secret(namespace, {"metadata": {"name": "app"}, "stringData": {
        "appKey": "KEY", "appSecret": "SECRET", "appCode": "CODE"}})
    svc = kube.create(manifest("locked", model("m", image="example.invalid/hostlocal-model:1", port=host_model),
                               auth={"appAuth": True, "apps": [{"secretName": "app"}]}))
    operator = OperatorProcess(cluster, free_port(), namespace, ("--namespace", namespace),
                               log_name="operator-images-e2e.log")
    operator.start()
    port, metrics = free_port(), free_port()
    gateway = Container(image["image"], ("-m", "inference_operator.gateway", "--host", "0.0.0.0", "--port",
                                         str(port), "--metrics-port", str(metrics), "-n", namespace,
                                         "--kubeconfig", KUBECONFIG_IN),
                        ("--entrypoint", "python", *kube_mount(cluster, tmp_path))).start()
    try:
        kube.wait_status("locked", "running", timeout=60)
        base, uid = f"http://127.0.0.1:{port}", svc["metadata"]["uid"]
        wait_for(lambda: call(base, uid, headers={"X-Apig-AppCode": "CODE"}) == 200 or not gateway.running(), 60,
                 "the gateway container to route to the model process")
        assert gateway.running(), gateway.logs()
        assert call(base, uid) == 401
        assert call(base, uid, headers={"X-Apig-AppCode": "CODE"}) == 200
    finally:
        gateway.stop()
        operator.stop()


def test_the_batch_runner_image_sends_every_input_to_the_model(image, tmp_path: Path):
    server = REPO / "tests" / "batch" / "model_server.py"
    log = tmp_path / "requests.jsonl"
    proc = subprocess.Popen([sys.executable, str(server), "--log", str(log)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        src, dest = tmp_path / "in", tmp_path / "out"
        src.mkdir()
        dest.mkdir(mode=0o777)
        dest.chmod(0o777)  # the runner writes as UID 65532
        for i in range(3):
            (src / f"in-{i}.json").write_text(f'{{"x": {i}}}')
        run = podman("run", "--rm", "--network", "host", "--user", "65532:65532", "--read-only", "--cap-drop", "ALL",
                     "--security-opt", "no-new-privileges", "-v", f"{src}:/data/in:ro", "-v", f"{dest}:/data/out",
                     "--entrypoint", "python", image["image"], "-m", "inference_operator.batch", "--src", "/data/in",
                     "--dest", "/data/out", "--url", f"http://127.0.0.1:{port}/predict",
                     "--termination-log", "/data/out/summary.json")
        assert run.returncode == 0, run.stderr
        outputs = sorted(p.name for p in dest.iterdir() if p.name != "summary.json")
        assert len(outputs) == 3, outputs
        assert len(log.read_text().splitlines()) == 3
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_chart_installs_the_built_digest(image, tmp_path: Path):
    """The chart rendered with what `make images` produced pulls the built image by digest, operator and
    gateway alike; a copy of the archive (as to a registry) keeps that digest."""
    lc, archive = _localcluster(), f"oci-archive:{REPO / image['archive']}"
    rendered = subprocess.run([str(lc.bin_dir() / "helm"), "template", "io", str(REPO / "charts/inference-operator"),
                               "--kube-version", lc.versions()["KUBERNETES_VERSION"],
                               "--set", f"image.repository={image['repository']}", "--set", f"image.tag={image['tag']}",
                               "--set", f"image.digest={image['digest']}"], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    want = f"{image['repository']}:{image['tag']}@{image['digest']}"
    deployments = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Deployment"]
    images = {c["image"] for d in deployments for c in d["spec"]["template"]["spec"]["containers"]}
    assert len(deployments) == 2 and images == {want}
    inspected = subprocess.run(["skopeo", "inspect", "--format", "{{.Digest}}", archive],
                               capture_output=True, text=True, timeout=60)
    assert inspected.stdout.strip() == image["digest"], inspected.stderr
    copied = subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests", archive,
                             f"oci:{tmp_path / 'layout'}:{image['tag']}"], capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [image["digest"]]
