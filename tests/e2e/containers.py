"""The image `make images` built, run with podman as the chart runs it: host network, the local cluster's
kubeconfig mounted read-only, UID 65532, a read-only root filesystem with a /tmp of its own, no
capabilities, no privilege escalation. Nothing is skipped: without podman or the built image, the test
fails and says what to run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO

IMAGE_INFO = REPO / "build" / "images" / "inference-operator.json"
CONTAINERS_CONF = REPO / "hack" / "containers" / "containers.conf"
KUBECONFIG_IN = "/var/run/inference-operator/kubeconfig"
# The chart's container securityContext (templates/deployment.yaml) and its /tmp emptyDir, in podman's words.
SECURE = ("--network", "host", "--user", "65532:65532", "--read-only", "--read-only-tmpfs=false",
          "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--tmpfs", "/tmp:rw,size=64m,mode=1777")


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=env)


def built_image() -> dict[str, Any]:
    """build/images/inference-operator.json of the last `make images`, its image present in local storage."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: `apt-get install -y podman buildah mmdebstrap skopeo runc`, then "
                    "`make images`", pytrace=False)
    if not IMAGE_INFO.exists():
        pytest.fail(f"{IMAGE_INFO.relative_to(REPO)} is missing: run `make images` first", pytrace=False)
    info: dict[str, Any] = json.loads(IMAGE_INFO.read_text())
    if podman("image", "exists", info["image"]).returncode != 0:
        pytest.fail(f"{info['image']} is not in local container storage: run `make images`", pytrace=False)
    return info


@dataclass
class Container:
    """One detached container of the image; removed (with its logs kept in .cluster/logs) by stop()."""
    image: str
    args: tuple[str, ...]
    run_args: tuple[str, ...] = ()
    name: str = field(default_factory=lambda: f"io-e2e-{uuid.uuid4().hex[:8]}")

    def start(self) -> Container:
        result = podman("run", "-d", "--name", self.name, *SECURE, *self.run_args, self.image, *self.args)
        assert result.returncode == 0, f"podman run failed: {result.stderr.strip()}"
        return self

    def running(self) -> bool:
        return podman("inspect", "--format", "{{.State.Running}}", self.name).stdout.strip() == "true"

    def logs(self) -> str:
        result = podman("logs", self.name)
        return result.stdout + result.stderr

    def exec(self, *cmd: str) -> str:
        return podman("exec", self.name, *cmd).stdout.strip()

    def stop(self) -> None:
        (REPO / ".cluster" / "logs" / f"{self.name}.log").write_text(self.logs())
        podman("rm", "-f", "-t", "10", self.name)


def kube_mount(kubeconfig: str, tmp_path: Path) -> tuple[str, ...]:
    """The cluster's kubeconfig, readable by UID 65532 (the file of hack/localcluster.py is root's, 0600), read-only."""
    copy = tmp_path / "kubeconfig"
    shutil.copyfile(kubeconfig, copy)
    copy.chmod(0o644)
    return ("-v", f"{copy}:{KUBECONFIG_IN}:ro", "-e", f"KUBECONFIG={KUBECONFIG_IN}")
