"""The routing table: what the gateway knows about services, models, endpoints and app credentials.

Pure and synchronous: the watch layer (gateway/watch.py) fills it from Kubernetes objects, tests
fill it directly with the same object bodies. A request resolves its serviceId (metadata.uid, which
is status.serviceId) to a ServiceRoute, then `choose` picks one model by weight among the models
with weight > 0 that have a ready endpoint (so a canary that is not ready yet sends its share to the
others instead of failing it), then one ready endpoint of that model's Service.

A model that scales to zero (scaling.minReplicas 0) may have no endpoint because it sleeps: `pick`
then also says which sleeping model the request wants (a weighted pick among all the models, ready
or not), so the gateway can count demand for it (the operator wakes it) and, when no model is ready
at all, hold the request until one is (place.py, hold.py). `endpoint_listeners` are told which
Service's endpoints changed and `route_listeners` which service, so held requests wait for an event
instead of polling.
"""


from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from inference_operator.gateway.entries import (
    AppCredential,
    Endpoint,
    Key,
    ModelRoute,
    Pick,
    ServiceRoute,
    decode_secret,
    require_running,
    service_route,
    slice_endpoints,
)
from inference_operator.gateway.errors import AMBIGUOUS_NAME, NO_READY_INSTANCE, NO_SUCH_SERVICE, GatewayError

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def weighted_model(models: tuple[ModelRoute, ...], rng: random.Random) -> ModelRoute:
    """One model, by weight when some have one (those only), else evenly: the model a request asks for."""
    weighted = [m for m in models if m.weight > 0]
    if not weighted:
        return rng.choice(models)
    point = rng.random() * sum(m.weight for m in weighted)
    for model in weighted:
        point -= model.weight
        if point < 0:
            return model
    return weighted[-1]


def weighted_choice(items: list[tuple[ModelRoute, tuple[Endpoint, ...]]], rng: random.Random
                    ) -> tuple[ModelRoute, tuple[Endpoint, ...]]:
    """One item, with probability weight / total weight."""
    point = rng.random() * sum(model.weight for model, _ in items)
    for item in items:
        point -= item[0].weight
        if point < 0:
            return item
    return items[-1]


def _meta_key(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return meta.get("namespace", "default"), meta.get("name", "")


class RouteTable:
    """Services by id, ready endpoints by (namespace, Service), credentials by (namespace, Secret)."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceRoute] = {}
        self._ids: dict[Key, str] = {}
        self._names: dict[str, set[str]] = {}  # a service's name -> the namespaces that have one of that name
        self._slices: dict[Key, Key] = {}  # EndpointSlice -> its Service
        self._by_service: dict[Key, dict[Key, tuple[Endpoint, ...]]] = {}  # Service -> slice -> endpoints
        self._endpoints: dict[Key, tuple[Endpoint, ...]] = {}
        self.credentials: dict[Key, AppCredential] = {}
        self.listeners: list[Callable[[], None]] = []  # told when services (and so wanted Secrets) change
        self.endpoint_listeners: list[Callable[[Key], None]] = []  # told which Service's endpoints changed
        self.route_listeners: list[Callable[[str | None], None]] = []  # told which service id changed (None: any)

    # -- services
    def upsert_service(self, body: Mapping[str, Any]) -> None:
        route = service_route(body)
        key = _meta_key(body)
        old = self._pop_id(key)
        if old:
            self.services.pop(old, None)
        if route:
            self.services[route.service_id] = route
            self._add_id(key, route.service_id)
        self._changed({sid for sid in (old, route.service_id if route else None) if sid})

    def remove_service(self, body: Mapping[str, Any]) -> None:
        old = self._pop_id(_meta_key(body))
        if old:
            self.services.pop(old, None)
        self._changed((old,) if old else ())

    def replace_services(self, bodies: Iterable[Mapping[str, Any]], namespace: str | None = None) -> None:
        """The full list of services (of one namespace, or of all when None), after a (re)list."""
        for key in [k for k in self._ids if namespace is None or k[0] == namespace]:
            self.services.pop(self._pop_id(key) or "", None)
        for body in bodies:
            if route := service_route(body):
                self.services[route.service_id] = route
                self._add_id(_meta_key(body), route.service_id)
        self._changed(None)

    def _add_id(self, key: Key, service_id: str) -> None:
        self._ids[key] = service_id
        self._names.setdefault(key[1], set()).add(key[0])

    def _pop_id(self, key: Key) -> str | None:
        old = self._ids.pop(key, None)
        if old is not None and (spaces := self._names.get(key[1])) is not None:
            spaces.discard(key[0])
            if not spaces:
                del self._names[key[1]]
        return old

    def _changed(self, service_ids: Iterable[str] | None) -> None:
        """Tell the listeners; the route listeners which services changed (None: any, after a re-list)."""
        for listener in self.listeners:
            listener()
        for service_id in (None,) if service_ids is None else service_ids:
            for route_listener in self.route_listeners:
                route_listener(service_id)

    # -- endpoints
    def upsert_slice(self, body: Mapping[str, Any]) -> None:
        key = _meta_key(body)
        self._drop_slice(key)
        service = ((body.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
        if service:
            owner = (key[0], service)
            self._slices[key] = owner
            self._by_service.setdefault(owner, {})[key] = slice_endpoints(body)
            self._reindex(owner)

    def remove_slice(self, body: Mapping[str, Any]) -> None:
        self._drop_slice(_meta_key(body))

    def replace_slices(self, bodies: Iterable[Mapping[str, Any]], namespace: str | None = None) -> None:
        """The full list of EndpointSlices (of one namespace, or of all when None), after a (re)list."""
        for key in [k for k in self._slices if namespace is None or k[0] == namespace]:
            self._drop_slice(key)
        for body in bodies:
            self.upsert_slice(body)

    def _drop_slice(self, key: Key) -> None:
        owner = self._slices.pop(key, None)
        if owner:
            self._by_service.get(owner, {}).pop(key, None)
            self._reindex(owner)

    def _reindex(self, owner: Key) -> None:
        found = {e for endpoints in self._by_service.get(owner, {}).values() for e in endpoints}
        if found:
            self._endpoints[owner] = tuple(sorted(found, key=lambda e: (e.host, e.port)))
        else:
            self._endpoints.pop(owner, None)
            if not self._by_service.get(owner):
                self._by_service.pop(owner, None)
        for listener in self.endpoint_listeners:
            listener(owner)

    def endpoints(self, namespace: str, service: str) -> tuple[Endpoint, ...]:
        return self._endpoints.get((namespace, service), ())

    # -- credentials
    def wanted_secrets(self) -> set[Key]:
        """Secrets named by services with app authentication on: the ones the watch layer follows."""
        return {(r.namespace, s) for r in self.services.values() if r.app_auth for s in r.app_secrets}

    def set_secret(self, namespace: str, name: str, data: Mapping[str, str] | None) -> None:
        """Credentials from a Secret's base64 data; None (deleted) forgets them."""
        if data is None:
            self.credentials.pop((namespace, name), None)
            return
        text = decode_secret(data)
        self.credentials[(namespace, name)] = AppCredential(
            text.get("appKey", "").strip(), text.get("appSecret", "").strip(), text.get("appCode", "").strip(),
            f"{namespace}/{name}")

    def apps(self, route: ServiceRoute) -> list[AppCredential]:
        """Credentials of the apps a service allows (Secrets not loaded yet are left out)."""
        return [c for s in route.app_secrets if (c := self.credentials.get((route.namespace, s)))]

    # -- requests
    def lookup(self, service_id: str) -> ServiceRoute:
        route = self.services.get(service_id)
        if route is None:
            raise GatewayError(NO_SUCH_SERVICE, f"no real-time service with id {service_id}")
        return route

    def find(self, ref: str) -> ServiceRoute:
        """A service by `<namespace>.<name>`, or by `<name>` when one namespace alone has a service of that
        name (the EAS URL, /api/predict/<ref>): 404 when none, 400 naming the namespaces when several do.
        Names and namespaces are DNS labels, so the first dot is the only way to read `ref`."""
        namespace, dot, name = ref.partition(".")
        if not dot:
            name, spaces = ref, sorted(self._names.get(ref, ()))
            if len(spaces) > 1:
                shown = ", ".join(spaces[:5]) + (", ..." if len(spaces) > 5 else "")
                raise GatewayError(AMBIGUOUS_NAME, f"service name {ascii(ref[:64])} is ambiguous: namespaces "
                                                   f"{shown} each have one; call /api/predict/<namespace>.{ref}")
            namespace = spaces[0] if spaces else ""
        route = self.services.get(self._ids.get((namespace, name), ""))
        if route is None:
            raise GatewayError(NO_SUCH_SERVICE, f"no real-time service named {ascii(ref[:140])}")
        return route

    def considered(self, route: ServiceRoute, among: tuple[ModelRoute, ...] | None = None) -> tuple[ModelRoute, ...]:
        """The models a request may go to: the ones it names (`among`), else those with weight > 0."""
        return among if among is not None else tuple(m for m in route.models if m.weight > 0)

    def choose(self, route: ServiceRoute, rng: random.Random,
               among: tuple[ModelRoute, ...] | None = None) -> tuple[ModelRoute, Endpoint]:
        """A model by weight among weighted models with ready endpoints, then one of its endpoints.

        `among`: the models a request named (OpenAI's `model` field): those, whatever their weight, by
        weight when some have one, else evenly."""
        require_running(route)
        models = among if among is not None else tuple(m for m in route.models if m.weight > 0)
        candidates = [(m, eps) for m in models if (eps := self._endpoints.get((route.namespace, m.backend)))]
        return self._serve(route, rng, models, candidates, among is not None)

    def pick(self, route: ServiceRoute, rng: random.Random, among: tuple[ModelRoute, ...] | None = None) -> Pick:
        """`choose`, aware of models that scale to zero. While none of the considered models sleeps (no
        endpoint and scales to zero) it is `choose`, drawing the same random numbers. Else one weighted pick
        among all of them first says which model the request wants (counted as demand when it sleeps);
        the request is then served as `choose` would among the ready ones, or, none being ready, held for
        the model it wants if that one sleeps, else for the first sleeping one."""
        require_running(route)
        models = self.considered(route, among)
        candidates = [(m, eps) for m in models if (eps := self.endpoints(route.namespace, m.backend))]
        sleeping = [m for m in models if m.scales_to_zero and not self.endpoints(route.namespace, m.backend)]
        if not sleeping:
            return Pick(*self._serve(route, rng, models, candidates, among is not None))
        wanted = weighted_model(models, rng)
        woken = wanted if wanted in sleeping else None
        if not candidates:
            return Pick(woken or sleeping[0], None)
        return Pick(*self._serve(route, rng, models, candidates, among is not None), woken)

    def ready(self, route: ServiceRoute, among: tuple[ModelRoute, ...] | None = None) -> bool:
        """Some model a request may go to has a ready endpoint."""
        return any(self.endpoints(route.namespace, m.backend) for m in self.considered(route, among))

    @staticmethod
    def _serve(route: ServiceRoute, rng: random.Random, models: tuple[ModelRoute, ...],
               candidates: list[tuple[ModelRoute, tuple[Endpoint, ...]]], named: bool) -> tuple[ModelRoute, Endpoint]:
        if not candidates:
            names = ", ".join(m.name for m in models)
            what = "the models the request names" if named else "models with traffic"
            raise GatewayError(NO_READY_INSTANCE, f"service {route.namespace}/{route.name} has no ready "
                                                  f"instance ({what}: {names})")
        if any(m.weight > 0 for m, _ in candidates):
            model, endpoints = weighted_choice([c for c in candidates if c[0].weight > 0], rng)
        else:
            model, endpoints = rng.choice(candidates)
        return model, rng.choice(endpoints)
