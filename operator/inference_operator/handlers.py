"""kopf glue: watches, indices and thin handlers that delegate to reconcile.Reconciler.

Level-triggered (kopf docs/reconciliation.rst): every event of a service or of one of its children
runs the same reconcile with the children read from in-memory indices, never listed. Only
on.event and index handlers are used, so kopf writes nothing of its own onto the objects (no
finalizer, no last-handled-configuration or progress annotations).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

import kopf

from inference_operator import settings as operator_settings
from inference_operator.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION
from inference_operator.builders.labels import MANAGED_BY_LABEL, MANAGER, SERVICE_LABEL
from inference_operator.kubeconfig import shared_connection
from inference_operator.leader import Fenced
from inference_operator.state import CHILD_KINDS, OperatorState, children_of, current, slim, slim_parent

MANAGED = {MANAGED_BY_LABEL: MANAGER}
Key = tuple[str, str]  # (namespace, service name): the indices' key


def _key(namespace: str | None, name: str) -> Key:
    """kopf types every namespace as optional (cluster-scoped kinds); ours are all namespaced."""
    return namespace or "", name


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    operator_settings.configure(settings)
    memo.state = await OperatorState.start(os.environ)
    if memo.get("may_write") is not None:  # leader election: no write once the Lease may have expired,
        fenced = Fenced(memo.state.reconciler.kube, memo.may_write)  # checked on the call
        memo.state.reconciler.kube = memo.state.reconciler.children.kube = fenced
        memo.state.kube.write_gate = memo.may_write  # and again when the request is about to go out
    memo.state.start_counting()
    memo.state.start_flavor_watch()


@kopf.on.login()
async def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from the same source as ours (kubeconfig.py): merged KUBECONFIG files, exec
    plugins (run anew when kopf logs in again after a 401 or at the token's expiry), keys in memory."""
    connection = await asyncio.to_thread(shared_connection)  # the first call reads the kubeconfig(s)
    return await connection.kopf_login()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.state.close()


@kopf.index(GROUP, VERSION, PLURAL)
def inference_services(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
    return {_key(namespace, name): slim_parent(body)}


def _child_index(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, memo: kopf.Memo,
                 **_: Any) -> dict[Key, dict[str, Any]]:
    return {_key(namespace, labels.get(SERVICE_LABEL, "")): slim(body, memo.state.field_managers)}


for _group_version_plural in CHILD_KINDS:
    kopf.index(*_group_version_plural, labels=MANAGED, id=f"children_{_group_version_plural[-1]}")(_child_index)

kopf.index("v1", "pods", labels={SERVICE_LABEL: kopf.PRESENT}, id="children_pods")(_child_index)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def service_event(type: str, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo,
                        **kwargs: Any) -> None:
    if type == "DELETED":
        memo.state.reconciler.forget_service(body.metadata.uid)
        memo.state.names.pop(body.metadata.uid, None)
        return
    memo.state.saw(KIND, type)  # a relist after a watch could not resume may hide deletes
    memo.state.indices = kwargs  # kopf's live indices, for passes that no event starts (due times)
    key = memo.state.names[body.metadata.uid] = _key(namespace, name)  # gateway counts arrive by serviceId
    await memo.state.reconciler.reconcile(body, children_of(key, kwargs, memo.state.ghosts,
                                                            memo.state.apis.hidden()))


async def child_event(type: str, body: kopf.Body, namespace: str | None, labels: Mapping[str, str],
                      memo: kopf.Memo, **kwargs: Any) -> None:
    """A child changed: reconcile its service (a deleted child comes back, status follows pods)."""
    inference_services: kopf.Index[Key, dict[str, Any]] = kwargs["inference_services"]  # kopf passes each index
    key = _key(namespace, labels.get(SERVICE_LABEL, ""))
    memo.state.saw(body.get("kind", ""), type)  # a relist after a watch could not resume may hide deletes
    ghosts = memo.state.ghosts
    # A copy: the index's store is live and changes across the await (a name deleted and re-created).
    for parent in current(ghosts.live(list(inference_services.get(key, [])))):
        if type == "DELETED":
            memo.state.reconciler.forget_child(parent["metadata"]["uid"], body)
        await memo.state.reconciler.reconcile(parent, children_of(key, kwargs, ghosts, memo.state.apis.hidden()))


for _group_version_plural in CHILD_KINDS:
    kopf.on.event(*_group_version_plural, labels=MANAGED, id=f"on_{_group_version_plural[-1]}")(child_event)
kopf.on.event("v1", "pods", labels={SERVICE_LABEL: kopf.PRESENT}, id="on_pods")(child_event)
