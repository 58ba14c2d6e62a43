"""docs/argocd-health.lua on status samples the operator's status code computes (status_samples.py).

The same script runs on live objects in tests/e2e/test_gitops.py; here every status the operator can report,
and the odd cases around them, are pinned down without a cluster.
"""

from __future__ import annotations

import copy
import re

import pytest
from argocd_lua import REPO, SCRIPT, argo_health
from status_samples import samples

SAMPLES = samples()

# sample -> (Argo CD health, a piece of its message)
EXPECTED = {
    "created-no-status": ("Progressing", "Waiting for the operator to report status"),
    "deploying-0": ("Progressing", "Deploying: 0% of the instances ready"),
    "deploying-66": ("Progressing", "Deploying: 66% of the instances ready"),
    "running": ("Healthy", "Running at http://gateway.test.local/v1/infers/"),
    "running-generation-behind": ("Progressing", "observe generation 2 (status is for 1)"),
    "running-scaling-up": ("Progressing", "Running, 75% of the instances ready: Scaling up: 3 of 4 instances ready."),
    "failed-unschedulable": ("Degraded", "Failed: model big: 0/8 nodes are available: 8 Insufficient nvidia.com/gpu"),
    "failed-crashloop-during-rollout": ("Degraded", 'Failed: model flaky: container "model" keeps crashing'),
    "concerning-no-cause-yet": ("Degraded", "Concerning (33% ready): Some instances are not ready."),
    "concerning-crashloop": ("Degraded", "Concerning (66% ready): model flaky:"),
    "stopped": ("Suspended", "Stopped"),
    "finished": ("Healthy", "The batch run has finished"),
}


def sample(name: str) -> dict:
    return copy.deepcopy(SAMPLES[name])


def test_every_sample_has_an_expectation():
    assert set(SAMPLES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_health_of_operator_status_samples(name: str):
    health, words = EXPECTED[name]
    result = argo_health(sample(name))
    assert result["status"] == health
    assert words in result["message"]


@pytest.mark.parametrize("state", ["running", "failed", "concerning", "stopped", "finished", "deploying"])
def test_a_status_for_an_older_generation_is_progressing_whatever_it_says(state: str):
    obj = sample("running")
    obj["metadata"]["generation"] = 5
    obj["status"].update(status=state, observedGeneration=4)
    assert argo_health(obj) == {"status": "Progressing",
                                "message": "Waiting for the operator to observe generation 5 (status is for 4)"}


def test_status_without_observed_generation_is_progressing():
    obj = sample("running")
    del obj["status"]["observedGeneration"]
    assert argo_health(obj)["status"] == "Progressing"
    assert "status is for none" in argo_health(obj)["message"]


def test_failed_without_error_message_falls_back_to_the_ready_condition_then_a_default():
    obj = sample("failed-unschedulable")
    del obj["status"]["errorMsg"]
    assert "Insufficient nvidia.com/gpu" in argo_health(obj)["message"]
    del obj["status"]["conditions"]
    assert argo_health(obj) == {"status": "Degraded", "message": "Failed: the service failed"}


def test_an_unknown_status_is_unknown():
    obj = sample("running")
    obj["status"]["status"] = "hibernating"
    assert argo_health(obj) == {"status": "Unknown", "message": "Unknown status hibernating"}


def test_running_without_an_address_batch_style():
    obj = sample("running")
    del obj["status"]["accessAddress"]
    assert argo_health(obj) == {"status": "Healthy", "message": "Running"}


def test_fractional_progress_is_shown_as_a_whole_percent():
    obj = sample("deploying-66")
    obj["status"]["progress"] = 66.7
    assert argo_health(obj)["message"] == "Deploying: 66% of the instances ready"


def test_the_script_does_not_touch_its_input():
    obj = sample("concerning-crashloop")
    before = copy.deepcopy(obj)
    argo_health(obj)
    assert obj == before


def test_docs_embed_the_same_script():
    """docs/gitops.md shows the argocd-cm entry; it must be docs/argocd-health.lua, indented, verbatim."""
    text = (REPO / "docs" / "gitops.md").read_text()
    block = re.search(r"resource\.customizations\.health\.inference\.io_InferenceService: \|\n(.*?)\n```",
                      text, re.S)
    assert block, "the argocd-cm snippet is missing from docs/gitops.md"
    lines = block.group(1).splitlines()
    indent = len(lines[0]) - len(lines[0].lstrip())
    embedded = "\n".join(line[indent:] for line in lines)
    assert embedded.strip() == SCRIPT.read_text().strip()
