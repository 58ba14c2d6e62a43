"""kstatus (sigs.k8s.io/cli-utils, what Flux's health checks use) on the same status samples (status_samples.py),
via hack/kstatus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from argocd_lua import REPO
from status_samples import samples

SAMPLES = samples()

# sample -> kstatus verdict, as cli-utils v0.37 computes it from Ready/Stalled/observedGeneration
EXPECTED = {
    "created-no-status": "Current",  # kstatus' limit: no status, no conditions, nothing to wait for
    "deploying-0": "InProgress",
    "deploying-66": "InProgress",
    "running": "Current",
    "running-generation-behind": "InProgress",
    "running-scaling-up": "InProgress",  # Ready=False, reason ScalingUp: the new generation is not rolled out
    "failed-unschedulable": "Failed",
    "failed-crashloop-during-rollout": "Failed",
    "concerning-no-cause-yet": "InProgress",
    "concerning-crashloop": "InProgress",
    "stopped": "Current",  # Ready=True, reason Stopped: settled where the spec asks
    "finished": "Current",  # Ready=True, reason Finished: the batch run is done
}


def _versions() -> dict[str, str]:
    lines = (REPO / "hack" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


@pytest.fixture(scope="module")
def kstatus_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cached build (hack/build-binaries.sh), else a fresh `go build` of hack/kstatus."""
    cache = Path(os.environ.get("INFERENCE_OPERATOR_CACHE", Path.home() / ".cache" / "inference-operator"))
    cached = cache / "bin" / _versions()["KUBERNETES_VERSION"] / "kstatus"
    if cached.exists():
        return cached
    if not shutil.which("go"):  # never a silent skip: these checks are what Flux users rely on
        pytest.fail(f"kstatus is not in {cached.parent} and there is no Go toolchain to build it: run "
                    "`make binaries` (hack/build-binaries.sh) or install Go", pytrace=False)
    target = tmp_path_factory.mktemp("kstatus") / "kstatus"
    built = subprocess.run(["go", "build", "-o", str(target), "."], cwd=REPO / "hack" / "kstatus",
                           env={**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false", "CGO_ENABLED": "0"},
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail(f"go build of hack/kstatus failed:\n{built.stderr}", pytrace=False)
    return target


def kstatus(binary: Path, obj: dict) -> dict[str, str]:
    out = subprocess.run([str(binary)], input=json.dumps(obj), text=True, capture_output=True, check=True)
    return json.loads(out.stdout)


def test_every_sample_has_an_expectation():
    assert set(SAMPLES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_kstatus_on_operator_status_samples(kstatus_bin: Path, name: str):
    obj = SAMPLES[name]
    assert kstatus(kstatus_bin, obj)["status"] == EXPECTED[name]


def test_kstatus_reports_the_stalled_message(kstatus_bin: Path):
    obj = SAMPLES["failed-unschedulable"]
    assert kstatus(kstatus_bin, obj)["message"] == obj["status"]["errorMsg"]


def test_bad_input_fails_loudly(kstatus_bin: Path):
    result = subprocess.run([str(kstatus_bin)], input="not json", text=True, capture_output=True)
    assert result.returncode == 1 and "kstatus:" in result.stderr
