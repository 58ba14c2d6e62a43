"""InferenceService objects with the status the operator's own code computes for them, for the GitOps tests.

Each sample is a service as a user applies it, plus the status `summarize` (status/summary.py, with the
schedule fields reconcile adds) returns for children observed in a given state, step after step as a watch
would see them: so the samples follow the status code instead of freezing what it once wrote. The
children come from tests/unit/status/observed_objects.py, the shapes the API returns.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "status"))

from observed_objects import (  # noqa: E402 - the path above
    CREATED,
    GPU_MESSAGE,
    NOW,
    UID,
    crashloop_pod,
    deployment,
    observed,
    ready_pod,
    starting_pod,
    unschedulable_pod,
)

from inference_operator.api.v1alpha1 import InferenceService  # noqa: E402
from inference_operator.policies.schedule import schedule_fields  # noqa: E402
from inference_operator.status import Observed, ParentMeta, summarize  # noqa: E402

GATEWAY = "http://gateway.test.local"
TWO = [("a", 60, 2), ("b", 40, 1)]
ROLLOUT = [("good", 50, 1), ("flaky", 50, 2)]


def model(name: str, weight: int, count: int, **fields: Any) -> dict[str, Any]:
    return {"name": name, "modelName": f"{name}-model", "modelVersion": "1.0.0",
            "image": f"registry.example/{name}:1.0.0", "weight": weight, "specification": "modelarts.vm.cpu.2u",
            "instanceCount": count, **fields}


def body(models: list[dict[str, Any]], generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "inference.io/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": "service-demo", "namespace": "team-a", "uid": UID, "generation": generation,
                         "creationTimestamp": CREATED},
            "spec": {"models": models, **spec}}


def status_of(obj: dict[str, Any], seen: Observed, previous: dict[str, Any], now: datetime) -> dict[str, Any]:
    """What one reconcile pass writes: summarize, then the schedule's fields (reconcile._pass)."""
    svc = InferenceService.from_body(obj)
    meta = ParentMeta(uid=UID, generation=obj["metadata"]["generation"], created=CREATED)
    status = summarize(meta, svc, seen, previous, now, GATEWAY)
    status.update(schedule_fields(svc, status["status"], previous, now))
    return status


def with_status(obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(obj), "status": copy.deepcopy(status)}


def pods(name: str, make: Callable[..., dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return [make(name, chr(ord("a") + i)) for i in range(count)]


def samples() -> dict[str, dict[str, Any]]:
    """name -> object; each step's status is the `previous` of the next, as in the operator."""
    out: dict[str, dict[str, Any]] = {}
    at = [NOW + timedelta(seconds=i) for i in range(10)]

    # A two-model service: created, deploying, running, then a new generation that scales model a to 3.
    two = body([model(n, w, c) for n, w, c in TWO])
    out["created-no-status"] = copy.deepcopy(two)
    deploying0 = status_of(two, observed(deployment("a", 2), deployment("b", 1), *pods("a", starting_pod, 2),
                                         *pods("b", starting_pod, 1)), {}, at[0])
    out["deploying-0"] = with_status(two, deploying0)
    deploying66 = status_of(two, observed(deployment("a", 2, 2), deployment("b", 1), *pods("a", ready_pod, 2),
                                          *pods("b", starting_pod, 1)), deploying0, at[1])
    out["deploying-66"] = with_status(two, deploying66)
    running = status_of(two, observed(deployment("a", 2, 2), deployment("b", 1, 1), *pods("a", ready_pod, 2),
                                      *pods("b", ready_pod, 1)), deploying66, at[2])
    out["running"] = with_status(two, running)
    bigger = body([model("a", 60, 3), model("b", 40, 1)], generation=2)
    out["running-generation-behind"] = with_status(bigger, running)
    scaling = status_of(bigger, observed(deployment("a", 3, 2, generation=2), deployment("b", 1, 1),
                                         *pods("a", ready_pod, 2), starting_pod("a", "c"), *pods("b", ready_pod, 1)),
                        running, at[3])
    out["running-scaling-up"] = with_status(bigger, scaling)

    # A model no node can hold.
    greedy = body([model("big", 100, 1, specification="custom",
                         customSpec={"cpu": 4, "memory": 8192, "gpu": 9})])
    out["failed-unschedulable"] = with_status(greedy, status_of(
        greedy, observed(deployment("big", 1), unschedulable_pod("big", message=GPU_MESSAGE)), {}, at[0]))

    # A running two-model service whose second model gets an image that crashes, and a second instance.
    first = body([model("good", 50, 1), model("flaky", 50, 1)])
    was_running = status_of(first, observed(deployment("good", 1, 1), deployment("flaky", 1, 1),
                                            ready_pod("good"), ready_pod("flaky")), {}, at[0])
    rollout = body([model(n, w, c, **({"image": "example.invalid/crashloop:2"} if n == "flaky" else {}))
                    for n, w, c in ROLLOUT], generation=2)
    crashing = status_of(rollout, observed(deployment("good", 1, 1), deployment("flaky", 2, 1, generation=2),
                                           ready_pod("good"), ready_pod("flaky", "a"), crashloop_pod("flaky", "b")),
                         was_running, at[1])
    out["concerning-crashloop"] = with_status(rollout, crashing)
    # then its last ready instance goes too, replaced by one that has not failed (yet)
    waiting = status_of(rollout, observed(deployment("good", 1, 1), deployment("flaky", 2, 0, generation=2),
                                          ready_pod("good"), *pods("flaky", starting_pod, 2)), crashing, at[2])
    out["concerning-no-cause-yet"] = with_status(rollout, waiting)
    # and both instances crash: nothing of the model serves any more
    out["failed-crashloop-during-rollout"] = with_status(rollout, status_of(
        rollout, observed(deployment("good", 1, 1), deployment("flaky", 2, 0, generation=2), ready_pod("good"),
                          *pods("flaky", crashloop_pod, 2)), waiting, at[3]))

    # One model, stopped while its last pod is still going away.
    single = body([model("m", 100, 1)])
    up = status_of(single, observed(deployment("m", 1, 1), ready_pod("m")), {}, at[0])
    stopped = body([model("m", 100, 1)], generation=2, stopped=True)
    out["stopped"] = with_status(stopped, status_of(
        stopped, observed(deployment("m", 0, 1, generation=2), ready_pod("m")), up, at[1]))

    # A batch service whose Job completed.
    batch = body([model("m", 100, 1)], inferType="batch", batch={
        "srcPath": "pvc://data/in", "destPath": "pvc://data/out", "reqUri": "/predict", "mappingType": "file"})
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "service-demo-batch"},
           "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}
    serving = observed(deployment("m", 1, 1), ready_pod("m"))
    started = status_of(batch, serving, {}, at[0])
    out["finished"] = with_status(batch, status_of(
        batch, Observed(deployments=serving.deployments, pods=serving.pods, job=job), started, at[5]))
    return out
