"""kopf settings that keep the framework's own writes out of the way (research notes, part A3)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf

PREFIX = "inference.io"
LIST_CHUNK = 500  # objects per page of a watch's listing (kubectl's default page): one page parsed at a time


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: kopf deep-copies every event's body into one, to diff it for on.create/on.update
    handlers; the operator has none (level-triggered on.event only), so that copy is pure cost (3.5% of
    its CPU in a burst, py-spy). Nothing is stored on the objects either way."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def configure(settings: kopf.OperatorSettings) -> None:
    """No log->Event posting (the operator posts its own transition events), kopf's bookkeeping under
    our prefix (unused with on.event handlers, so nothing is written), reconnects that notice stalls."""
    settings.posting.enabled = False
    settings.posting.level = logging.WARNING
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.watching.chunk_size = LIST_CHUNK
    settings.watching.inactivity_timeout = 300
    settings.watching.client_timeout = 600
    settings.networking.request_timeout = 60
    settings.execution.max_workers = 8
    # A per-object worker holds its object's last event until it exits: let idle ones go soon, so
    # memory follows the objects that change, not every object in the cluster.
    settings.queueing.idle_timeout = 1.0


def watch_only(settings: kopf.OperatorSettings, selectors: Mapping[tuple[str, ...], str]) -> None:
    """Label selectors the API server applies to the listings and watches of these kinds (the handlers' own
    filters): only the operator's children and their pods are sent. Without them, every pod, Service and
    Deployment of the cluster comes down the streams, to be parsed and dropped here: memory and CPU that grow
    with the cluster, not with the operator's services. Keys as in the handlers' decorators."""
    for resource, selector in selectors.items():
        settings.watching.label_selectors[cast(Any, resource)] = selector  # kopf types 2- and 3-tuples apart
