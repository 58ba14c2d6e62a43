"""The routing table's entries (a service's route, its models, their endpoints, app credentials) and how
each is read from its Kubernetes object: an InferenceService, an EndpointSlice, a Secret.

Pure and synchronous, like the table (routes.py) that holds them.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from inference_operator.api.conventions import parse_rfc3339
from inference_operator.api.states import DEFAULT_ROUTING, Routing
from inference_operator.api.v1alpha1 import InferenceService, InvalidSpecError
from inference_operator.builders.names import child_name
from inference_operator.gateway.errors import NOT_RUNNING, GatewayError
from inference_operator.gateway.limits import ServiceOptions, options_from_annotations

log = logging.getLogger(__name__)
PORT_NAME = "http"
Key = tuple[str, str]  # (namespace, name)


class Endpoint(NamedTuple):
    """A ready address of a model's Service. A tuple: hashed in C, as the picker does for every endpoint."""

    host: str
    port: int

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class ModelRoute:
    name: str
    weight: int
    backend: str  # the model's Service, in the InferenceService's namespace
    model_name: str = ""  # spec.models[].modelName: the served model name of an OpenAI-speaking runtime
    openai: bool = False  # its server speaks OpenAI's API (gateway/openai.py routes by the body's model)
    scales_to_zero: bool = False  # scaling.minReplicas 0: no endpoint may mean asleep, and a request wakes it
    routing: Routing = Routing.WEIGHTED_RANDOM  # how one of its endpoints is picked (picker.py)
    adapters: tuple[str, ...] = ()  # the names of its LoRA adapters (docs/lora.md), requested as `model`
    # names split between versions by weight: (name, ((the engines' name of a version, its weight), ...))
    versions: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    # what its engines load: (lora_name, lora_path), ModelSpec.adapter_loads (the gateway loads one on demand)
    adapter_paths: tuple[tuple[str, str], ...] = ()

    def loads_adapter(self, name: str) -> bool:
        """`name` is what its engines load one of its adapters under (a name, or a version of a split one)."""
        return name in self.adapters or any(name == v for _, found in self.versions for v, _ in found)

    def adapter_path(self, name: str) -> str | None:
        """The lora_path its engines load the adapter `name` (an engine name) from; None: not one of its own."""
        return next((path for loaded, path in self.adapter_paths if loaded == name), None)


@dataclass(frozen=True)
class AppCredential:
    """One app's credentials, from a Secret's appKey / appSecret / appCode (an empty value is unusable)."""

    key: str = ""
    secret: str = ""
    code: str = ""
    source: str = ""  # namespace/secret, for logs


@dataclass(frozen=True)
class ServiceRoute:
    service_id: str
    namespace: str
    name: str
    models: tuple[ModelRoute, ...] = ()
    unavailable: str | None = None  # why requests are refused (stopped, batch, invalid spec)
    app_auth: bool = False
    app_secrets: tuple[str, ...] = ()
    options: ServiceOptions = field(default_factory=ServiceOptions)
    created: int = 0  # metadata.creationTimestamp, Unix seconds (OpenAI's model objects carry it)
    scales_to_zero: bool = False  # some model scales to zero (only then does a request look past `choose`)


@dataclass(frozen=True, slots=True)
class Pick:
    """Where a request goes. `endpoint` None: no model it may use is ready, but `model` scales to zero: hold
    the request until it (or another) is ready. `woken`: the weighted pick landed on this sleeping model
    while the request is served by `model`: demand for it all the same."""

    model: ModelRoute
    endpoint: Endpoint | None
    woken: ModelRoute | None = None


def _created(meta: Mapping[str, Any]) -> int:
    moment = parse_rfc3339(meta.get("creationTimestamp"))
    return int(moment.timestamp()) if moment is not None else 0


def service_route(body: Mapping[str, Any]) -> ServiceRoute | None:
    """The route of an InferenceService body; None when it has no uid yet."""
    meta = body.get("metadata") or {}
    uid, ns, name = meta.get("uid"), meta.get("namespace", "default"), meta.get("name", "")
    if not uid:
        return None
    options = options_from_annotations(meta.get("annotations"))
    try:
        svc = InferenceService.from_body(body)
    except InvalidSpecError as err:
        return ServiceRoute(uid, ns, name, unavailable=f"its spec is invalid: {'; '.join(err.messages)}",
                            options=options)
    spec = svc.spec
    routing = Routing(spec.routing) if spec.routing else DEFAULT_ROUTING
    models = tuple(ModelRoute(m.name, m.weight, child_name(svc.name, m.name), m.model_name, m.speaks_openai,
                              m.scales_to_zero, routing if m.speaks_openai else Routing.WEIGHTED_RANDOM,
                              tuple(dict.fromkeys(a.name for a in m.adapters or ())),
                              tuple(m.adapter_versions().items()), tuple(m.adapter_loads().items()))
                   for m in spec.models)
    unavailable = None
    if spec.stopped:
        unavailable = "it is stopped (spec.stopped is true); start it to call it"
    elif spec.infer_type == "batch":
        unavailable = "it is a batch service, which takes no real-time requests"
    auth = spec.auth
    return ServiceRoute(uid, ns, name, models, unavailable, bool(auth and auth.app_auth),
                        tuple(app.secret_name for app in auth.apps) if auth else (), options, _created(meta),
                        any(m.scales_to_zero for m in models))


def slice_endpoints(body: Mapping[str, Any]) -> tuple[Endpoint, ...]:
    """Ready addresses of an EndpointSlice with its port named "http" (or its only port). FQDN slices
    (backends outside the pod network, addressed by DNS name) are routed to by name."""
    ports = body.get("ports") or []
    named = [p for p in ports if p.get("name") == PORT_NAME] or (ports if len(ports) == 1 else [])
    if not named or not named[0].get("port") or body.get("addressType") not in ("IPv4", "IPv6", "FQDN"):
        return ()
    port = int(named[0]["port"])
    found: list[Endpoint] = []
    for endpoint in body.get("endpoints") or []:
        if (endpoint.get("conditions") or {}).get("ready") is False:  # nil means ready (API docs)
            continue
        found.extend(Endpoint(address, port) for address in endpoint.get("addresses") or [])
    return tuple(sorted(set(found), key=lambda e: (e.host, e.port)))


def decode_secret(data: Mapping[str, str] | None) -> dict[str, str]:
    """A Secret's base64 `data` as text; undecodable values are dropped."""
    decoded = {}
    for name, value in (data or {}).items():
        try:
            decoded[name] = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, TypeError):
            log.warning("secret key %s is not base64 text; ignored", name)
    return decoded


def require_running(route: ServiceRoute) -> None:
    """400 ModelArts.4203 for a service that takes no requests now (stopped, batch, invalid spec)."""
    if route.unavailable:
        raise GatewayError(NOT_RUNNING, f"service {route.namespace}/{route.name} is not running: {route.unavailable}")
