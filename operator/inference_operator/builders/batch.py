"""The Job of a batch service: one runner Pod sending every input to the model's Service.

Issue 6: `inferType: batch` runs the model "as a Job-driven batch". The model itself is served by the
model's usual Deployment and Service; this Job runs the operator's own image
(cfg.batch_runner_image) with `python -m inference_operator.batch`, which waits for the model to
answer, sends each input under spec.batch.srcPath to reqUri and writes outputs under destPath.

Why the choices:
- srcPath / destPath (pvc://claim/path or nfs://server/path) are mounted at /mnt/batch/src (read
  only) and /mnt/batch/dst; object storage (s3/oss/obs) raises BatchPathError naming the field.
- The URL is the model Service's cluster DNS name: http://<service>.<namespace>.svc<reqUri> (port 80).
- backoffLimit 2 and restartPolicy Never: a crashed runner gets two more Pods, each with --resume,
  so inputs with an output are not sent again. terminationMessagePolicy FallbackToLogsOnError: the
  runner's summary JSON (or, after a crash, the log tail) is the Pod's termination message.
- Pods carry the service label and inference.io/component=batch-runner but not inference.io/model,
  so the model's Service never selects them and per-model status never counts them.
- fsGroup 65532 (the image's user, OnRootMismatch): a fresh root-owned PVC becomes writable for
  the runner; NFS exports must allow that uid themselves.
- The Job name ends in a hash of the Pod template: a Job's template is immutable, so a changed
  batch spec (or runner image) gives a new Job instead of a rejected update. `suspend` follows
  spec.stopped. No ttlSecondsAfterFinished: the finished Job is what says the batch is done.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from inference_operator.api.v1alpha1 import InferenceService, ModelSpec
from inference_operator.builders.labels import MODEL_LABEL, child_metadata, service_labels
from inference_operator.builders.names import fit_name, service_name
from inference_operator.config import OperatorConfig

COMPONENT_LABEL = "inference.io/component"
BATCH_RUNNER = "batch-runner"
SRC_DIR = "/mnt/batch/src"
DST_DIR = "/mnt/batch/dst"
PROGRESS_FILE = f"{DST_DIR}/.inference-batch-progress.json"
TERMINATION_LOG = "/dev/termination-log"
BACKOFF_LIMIT = 2
RUNNER_UID = 65532  # the operator image's user (Dockerfile)


class BatchPathError(ValueError):
    """spec.batch.srcPath/destPath cannot be mounted into the runner (only pvc:// and nfs:// can)."""


def _source(uri: str, field: str) -> tuple[tuple[str, str], dict[str, Any], str]:
    """(volume identity, volume source, subPath) of a pvc:// or nfs:// path."""
    parts = urlsplit(uri)
    if parts.scheme == "pvc":
        return ("pvc", parts.netloc), {"persistentVolumeClaim": {"claimName": parts.netloc}}, parts.path.strip("/")
    if parts.scheme == "nfs":
        return ("nfs", parts.netloc), {"nfs": {"server": parts.netloc, "path": "/"}}, parts.path.strip("/")
    raise BatchPathError(f"spec.batch.{field}: {parts.scheme}:// cannot be mounted by the batch runner; "
                         f"use pvc://<claim>/<path> or nfs://<server>/<path>")


def batch_volumes(svc: InferenceService) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): src read-only, dst writable; one "batch-data" volume when both share a claim."""
    batch = svc.spec.batch
    if batch is None:
        raise ValueError("build_batch_job needs spec.batch (inferType batch)")
    src = _source(batch.src_path, "srcPath")
    dst = _source(batch.dest_path, "destPath")
    shared = src[0] == dst[0]
    volumes = [{"name": "batch-data" if shared else "batch-src", **src[1]}]
    if not shared:
        volumes.append({"name": "batch-dst", **dst[1]})
    mounts: list[dict[str, Any]] = []
    for (_, _, sub_path), volume, path in ((src, volumes[0], SRC_DIR), (dst, volumes[-1], DST_DIR)):
        mount: dict[str, Any] = {"name": volume["name"], "mountPath": path}
        if sub_path:
            mount["subPath"] = sub_path
        if path == SRC_DIR:
            mount["readOnly"] = True
        mounts.append(mount)
    return volumes, mounts


def runner_args(svc: InferenceService, model: ModelSpec) -> list[str]:
    """`python -m inference_operator.batch` flags from spec.batch."""
    batch = svc.spec.batch
    assert batch is not None
    url = f"http://{service_name(svc, model)}.{svc.namespace}.svc{batch.req_uri}"
    args = ["--src", SRC_DIR, "--dest", DST_DIR, "--url", url, "--mapping-type", batch.mapping_type]
    if batch.mapping_rule is not None:
        args += ["--mapping-rule", json.dumps(batch.mapping_rule, sort_keys=True, separators=(",", ":"))]
    return args + ["--progress-file", PROGRESS_FILE, "--termination-log", TERMINATION_LOG, "--resume"]


def batch_job_name(svc: InferenceService, model: ModelSpec, template: dict[str, Any]) -> str:
    """`<service>-<model>-batch-<hash of the pod template>`, cut to 63 characters if need be."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:8]
    return fit_name(f"{svc.name}-{model.name}-batch-{digest}")


def build_batch_job(svc: InferenceService, model: ModelSpec, cfg: OperatorConfig) -> dict[str, Any]:
    """batch/v1 Job running the batch runner against `model`'s Service; owned by the service."""
    volumes, mounts = batch_volumes(svc)
    pod_labels = {**service_labels(svc), COMPONENT_LABEL: BATCH_RUNNER}
    container = {
        "name": BATCH_RUNNER,
        "image": cfg.batch_runner_image,
        "command": ["python", "-m", "inference_operator.batch"],
        "args": runner_args(svc, model),
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    template = {
        "metadata": {"labels": dict(sorted(pod_labels.items()))},
        "spec": {"restartPolicy": "Never", "enableServiceLinks": False,
                 "securityContext": {"fsGroup": RUNNER_UID, "fsGroupChangePolicy": "OnRootMismatch"},
                 "containers": [container], "volumes": volumes},
    }
    labels = {**pod_labels, MODEL_LABEL: model.name}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_metadata(svc, batch_job_name(svc, model, template), labels),
        "spec": {"backoffLimit": BACKOFF_LIMIT, "suspend": svc.spec.stopped, "template": template},
    }
