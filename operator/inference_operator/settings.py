"""kopf settings that keep the framework's own writes out of the way (research notes, part A3)."""

from __future__ import annotations

import logging

import kopf

PREFIX = "inference.io"


def configure(settings: kopf.OperatorSettings) -> None:
    """No log->Event posting (the operator posts its own transition events), kopf's bookkeeping under
    our prefix (unused with on.event handlers, so nothing is written), reconnects that notice stalls."""
    settings.posting.enabled = False
    settings.posting.level = logging.WARNING
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX)
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.watching.inactivity_timeout = 300
    settings.watching.client_timeout = 600
    settings.networking.request_timeout = 60
    settings.execution.max_workers = 8
    # A per-object worker holds its object's last event until it exits: let idle ones go soon, so
    # memory follows the objects that change, not every object in the cluster.
    settings.queueing.idle_timeout = 1.0
