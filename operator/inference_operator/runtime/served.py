"""Which optional APIs the cluster serves right now, followed live from their CustomResourceDefinitions.

Gateway API's HTTPRoute and the Inference Extension's InferencePool are CRDs an admin may install or
remove while the operator runs: the operator writes those children only while
their CRD serves the version it writes, and starts or stops within seconds of the change, without a
restart. One list+watch per CRD, by name (Kube.watch with a metadata.name field selector): the
operator never streams the other CRDs of the cluster, and RBAC needs only list and watch on them.
Where RBAC does not grant that (a hand-made Role), the operator asks API discovery every
POLL_SECONDS instead, which every authenticated client may read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from inference_operator.api.conventions import is_true
from inference_operator.ports import ApiError

log = logging.getLogger(__name__)
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
POLL_SECONDS = 10.0


@dataclass(frozen=True)
class OptionalApi:
    """A CRD-backed resource the operator writes only while its CRD serves `version`."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def crd(self) -> str:
        return f"{self.plural}.{self.group}"


HTTPROUTES = OptionalApi("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
INFERENCEPOOLS = OptionalApi("inference.networking.k8s.io", "v1", "inferencepools", "InferencePool")
Changed = Callable[[OptionalApi, bool], Awaitable[None]]
OPTIONAL_APIS = (HTTPROUTES, INFERENCEPOOLS)


class Watcher(Protocol):
    def watch(self, what: str, path: str, query: list[tuple[str, str]]) -> Any: ...
    async def get_json(self, path: str, query: list[tuple[str, str]] | None = None) -> dict[str, Any]: ...


def discovery_serves(resources: Mapping[str, Any], plural: str) -> bool:
    """Whether an APIResourceList (GET /apis/<group>/<version>) lists `plural`."""
    found = resources.get("resources") if isinstance(resources, Mapping) else None
    return any(isinstance(r, Mapping) and r.get("name") == plural for r in found or [])


def crd_serves(crd: Mapping[str, Any], version: str) -> bool:
    """Whether a CRD object serves `version` now: Established, not being deleted (its objects are going
    and new ones are refused), and that version marked served."""
    if not isinstance(crd, Mapping) or (crd.get("metadata") or {}).get("deletionTimestamp"):
        return False
    established = is_true(crd, "Established")
    versions = (crd.get("spec") or {}).get("versions") or []
    return established and any(isinstance(v, Mapping) and v.get("name") == version and v.get("served") is True
                               for v in versions)


@dataclass
class ServedApis:
    """The optional APIs served now; `changed(api, served)` runs after each flip (the operator forgets
    what it applied of that kind and revisits every service)."""

    apis: Sequence[OptionalApi] = OPTIONAL_APIS
    served: dict[str, bool] = field(default_factory=dict)  # plural -> served
    listed: set[str] = field(default_factory=set)  # plurals whose CRD was listed once
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # every CRD listed once
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __call__(self, api: OptionalApi) -> bool:
        return self.served.get(api.plural, False)

    def hidden(self) -> frozenset[str]:
        """Plurals of the optional kinds not served now: their children are left out of every pass (the
        API server deletes them with their CRD; the watch's DELETED events may still be on their way)."""
        return frozenset(api.plural for api in self.apis if not self(api))

    def start(self, kube: Watcher, changed: Changed) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._follow(kube, api, changed)) for api in self.apis]

    async def wait_listed(self, timeout: float) -> bool:
        """Until each CRD was listed once (the first passes must know what is served, or a restart would
        delete live HTTPRoutes); False after `timeout` (the watches go on, and a flip revisits)."""
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()

    async def _follow(self, kube: Watcher, api: OptionalApi, changed: Changed) -> None:
        query = [("fieldSelector", f"metadata.name={api.crd}")]
        forbidden = False
        try:
            await kube.get_json(CRD_PATH, [*query, ("limit", "1")])
        except ApiError as exc:  # anything but a refusal: the watch below retries until the API answers
            forbidden = exc.status == 403
        except Exception as exc:  # noqa: BLE001 - as above
            log.debug("listing CRD %s: %s", api.crd, exc)
        if forbidden:
            log.warning("CustomResourceDefinitions may not be listed: asking API discovery for %s/%s every %.0fs "
                        "instead", api.group, api.version, POLL_SECONDS)
            await self._poll(kube, api, changed)
            return
        async for event_type, body in kube.watch(f"CustomResourceDefinition {api.crd}", CRD_PATH, query):
            if event_type == "LISTED":
                now = any(crd_serves(item, api.version) for item in body)
            else:
                now = event_type != "DELETED" and crd_serves(body, api.version)
            await self._saw(api, now, changed)

    async def _poll(self, kube: Watcher, api: OptionalApi, changed: Changed) -> None:
        """Discovery every POLL_SECONDS: a group/version answered 404 is not served; an error keeps the
        last answer (the API may be away a moment)."""
        while True:
            try:
                now = discovery_serves(await kube.get_json(f"/apis/{api.group}/{api.version}"), api.plural)
            except ApiError as exc:
                now = False if exc.status == 404 else self(api)
            except (OSError, TimeoutError, ValueError) as exc:
                log.debug("discovery of %s/%s: %s", api.group, api.version, exc)
                now = self(api)
            await self._saw(api, now, changed)
            await asyncio.sleep(POLL_SECONDS)

    async def _saw(self, api: OptionalApi, now: bool, changed: Changed) -> None:
        """One reading of whether `api` is served: the first sets the state, a later one that differs
        flips it and runs `changed`."""
        first = api.plural not in self.listed
        self.listed.add(api.plural)
        if len(self.listed) == len(self.apis):
            self.ready.set()
        if not first and now == self(api):
            return
        self.served[api.plural] = now
        log.info("%s/%s %s", api.group, api.version, "served: writing them" if now else "not served")
        if not first:
            try:
                await changed(api, now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a pass that fails is retried by the reconciler
                log.warning("after %s became %s: %s", api.crd, "served" if now else "unserved", exc)
