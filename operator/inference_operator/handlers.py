"""kopf glue: watches and thin handlers that delegate to reconcile.Reconciler.

Level-triggered (kopf docs/reconciliation.rst): every event of a service or of one of its children
runs the same reconcile with the children read from the operator's in-memory indices, never listed.
A handler submits the pass and returns: the pass is the operator's task (reconcile.Reconciler.submit).
The indices are filled where the watch streams are parsed (watchfeed.py), not by kopf's index handlers.
Only on.event handlers are used, so kopf writes nothing of its own onto the objects (no finalizer, no
last-handled-configuration or progress annotations).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

import kopf

from inference_operator import trace
from inference_operator.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION
from inference_operator.builders.labels import MANAGED_BY_LABEL, MANAGED_SELECTOR, MANAGER, SERVICE_LABEL
from inference_operator.kube.kubeconfig import shared_connection
from inference_operator.runtime import settings as operator_settings
from inference_operator.runtime import watchfeed
from inference_operator.runtime.indices import SERVICES, Key
from inference_operator.runtime.lookup import children_of, current
from inference_operator.runtime.slim import CHILD_KINDS, group_plural, slim, slim_parent
from inference_operator.runtime.state import OperatorState

MANAGED = {MANAGED_BY_LABEL: MANAGER}
POD_KIND = ("v1", "pods")


def watch_selectors() -> dict[tuple[str, ...], str]:
    """The handlers' label filters below, as the API server's selectors (settings.watch_only)."""
    return {**{kind: MANAGED_SELECTOR for kind in CHILD_KINDS}, POD_KIND: SERVICE_LABEL}


def _key(namespace: str | None, name: str) -> Key:
    """kopf types every namespace as optional (cluster-scoped kinds); ours are all namespaced."""
    return namespace or "", name


def _child_key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return _key(meta.get("namespace"), (meta.get("labels") or {}).get(SERVICE_LABEL, ""))


def _managed(obj: Mapping[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGER


def _of_a_service(obj: Mapping[str, Any]) -> bool:
    return SERVICE_LABEL in ((obj.get("metadata") or {}).get("labels") or {})


def feeds(state: OperatorState) -> dict[tuple[str, str], watchfeed.Feed]:
    """What each watched kind's stream feeds: the same filters as the handlers' (children with our labels,
    pods of a service), slimmed, into the state's indices."""
    indices, ours = state.indices, state.field_managers

    def service_seen(event_type: str | None, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        indices.observe(SERVICES, _key(meta.get("namespace"), meta["name"]), event_type, obj)

    def services_ended(namespace: str | None) -> None:
        """The namespace is gone (its stream ended before every DELETED came): so are its services."""
        for parent in indices.forget_namespace(SERVICES, namespace):
            state.forget_service(parent["metadata"]["uid"])

    def child_feed(name: str, wanted: Any, slimmer: Any) -> watchfeed.Feed:
        def ended(namespace: str | None) -> None:
            indices.forget_namespace(name, namespace)

        return watchfeed.Feed(slim=slimmer, wanted=wanted, forget=lambda obj: indices.forget(name, obj),
                              seen=lambda event_type, obj: indices.observe(name, _child_key(obj), event_type, obj),
                              relevant=lambda obj: _child_key(obj) in indices[SERVICES],
                              ended=ended)

    table = {(GROUP, PLURAL): watchfeed.Feed(slim=slim_parent, seen=service_seen, ended=services_ended),
             ("", "pods"): child_feed("children_pods", _of_a_service, slim)}
    for kind in CHILD_KINDS:
        table[group_plural(kind)] = child_feed(f"children_{kind[-1]}", _managed, lambda body: slim(body, ours))
    return table


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    operator_settings.configure(settings)
    operator_settings.watch_only(settings, watch_selectors())
    # Leader election (__main__.py) hands kopf a memo with may_write: no write once the Lease may have expired.
    memo.state = await OperatorState.start(os.environ, may_write=memo.get("may_write"))
    watchfeed.install(feeds(memo.state), memo.state.listings)  # before kopf starts its watchers
    memo.state.start_loops()


@kopf.on.login()
async def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from the same source as ours (kubeconfig.py): merged KUBECONFIG files, exec
    plugins (run anew when kopf logs in again after a 401 or at the token's expiry), keys in memory."""
    connection = await asyncio.to_thread(shared_connection)  # the first call reads the kubeconfig(s)
    return await connection.kopf_login()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.state.close()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def service_event(type: str, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo,
                        **_: Any) -> None:
    state = memo.state
    trace.mark(namespace, name, f"handler:{KIND}:{type}")
    if type == "DELETED":
        state.forget_service(body.metadata.uid)
        return
    state.saw(KIND, type)  # a relist after a watch could not resume may hide deletes
    key = state.names[body.metadata.uid] = _key(namespace, name)  # gateway counts arrive by serviceId
    if not state.listings.listed_for(namespace):  # a pass sees every child: it waits for the listings
        state.listings.defer(namespace, key, state.revisit)  # (the newest body then, from the index)
        return
    state.reconciler.submit(body, children_of(key, state.indices, state.ghosts, state.apis.hidden()))


async def child_event(type: str, body: kopf.Body, namespace: str | None, labels: Mapping[str, str],
                      memo: kopf.Memo, **_: Any) -> None:
    """A child changed: reconcile its service (a deleted child comes back, status follows pods)."""
    state = memo.state
    key = _key(namespace, labels.get(SERVICE_LABEL, ""))
    trace.mark(namespace, key[1], f"handler:{body.get('kind', '')}:{type}")
    state.saw(body.get("kind", ""), type)  # a relist after a watch could not resume may hide deletes
    ghosts = state.ghosts
    parents = list(current(ghosts.live(state.indices[SERVICES].get(key, []))))
    if type == "DELETED":
        for parent in parents:
            state.reconciler.forget_child(parent["metadata"]["uid"], body)
    if not state.listings.listed_for(namespace):
        state.listings.defer(namespace, key, state.revisit)
        return
    for parent in parents:
        state.reconciler.submit(parent, children_of(key, state.indices, ghosts, state.apis.hidden()))


for _group_version_plural in CHILD_KINDS:
    kopf.on.event(*_group_version_plural, labels=MANAGED, id=f"on_{_group_version_plural[-1]}")(child_event)
kopf.on.event(*POD_KIND, labels={SERVICE_LABEL: kopf.PRESENT}, id="on_pods")(child_event)
