"""The states a status reports: one enum per field, so a state is a name the type checker knows.

`status.status` and `status.models[].status` are strings on the wire; these are `StrEnum`s, so a member
equals, hashes and serialises as its string and a status read back from the API compares equal to it.
The CRD's enums come from the `Literal`s in `api/status.py` (kept there so the generated schema stays
plain strings); tests/unit/api/test_states.py checks that both list the same values.
"""

from __future__ import annotations

from enum import StrEnum


class ServiceState(StrEnum):
    """`status.status`: where the whole service stands (docs/api.md)."""

    DEPLOYING = "deploying"
    RUNNING = "running"
    CONCERNING = "concerning"
    FAILED = "failed"
    STOPPED = "stopped"
    FINISHED = "finished"


class ModelState(StrEnum):
    """`status.models[].status`: where one model stands."""

    READY = "ready"
    CONCERNING = "concerning"
    NOT_READY = "notReady"
    IDLE = "idle"
    WAKING = "waking"


class Routing(StrEnum):
    """`spec.routing`: how the gateway picks an endpoint within an OpenAI-speaking model (docs/gateway.md)."""

    WEIGHTED_RANDOM = "weighted-random"
    LEAST_LOAD = "least-load"
    PREFIX = "prefix"


DEFAULT_ROUTING = Routing.PREFIX  # the best of the three on bench-llm's workloads (bench/README.md)


SERVING = frozenset({ServiceState.RUNNING, ServiceState.CONCERNING})  # has ready instances taking traffic
WARNING = frozenset({ServiceState.FAILED, ServiceState.CONCERNING})  # its transition Event is a Warning
