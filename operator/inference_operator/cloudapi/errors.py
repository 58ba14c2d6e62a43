"""Refusals, dialect-neutral: a Problem (what went wrong, as HTTP sees it), an optional dialect code and a
message naming the field or the cause. Each dialect renders them in its own JSON (dialect.Dialect.error_body).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Problem(enum.Enum):
    """The kinds of refusal the server and its dialects share, with their HTTP status."""

    BAD_REQUEST = 400
    UNAUTHENTICATED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405
    TIMEOUT = 408
    CONFLICT = 409
    TOO_LARGE = 413
    INTERNAL = 500
    UNAVAILABLE = 503
    GATEWAY_TIMEOUT = 504

    @property
    def status(self) -> int:
        return int(self.value)


@dataclass
class CloudError(Exception):
    """A refusal: its Problem, a message a user can act on, and the dialect's own code when it has one
    (e.g. ModelArts.3502); without one the dialect picks its code for the Problem."""

    problem: Problem
    message: str
    code: str | None = None
    status_override: int | None = None  # a dialect whose code answers another status than the Problem's

    def __post_init__(self) -> None:
        super().__init__(f"{self.code or self.problem.name}: {self.message}")

    @property
    def status(self) -> int:
        return self.status_override or self.problem.status


def problem_of_api_status(status: int) -> Problem:
    """What an API server refusal means to a caller of the cloud API (403 stays 403: that is RBAC speaking)."""
    return {400: Problem.BAD_REQUEST, 401: Problem.UNAUTHENTICATED, 403: Problem.FORBIDDEN, 404: Problem.NOT_FOUND,
            409: Problem.CONFLICT, 410: Problem.CONFLICT, 422: Problem.BAD_REQUEST,
            429: Problem.UNAVAILABLE}.get(status, Problem.UNAVAILABLE)


def printable(text: str, limit: int = 64) -> str:
    """A client's value quoted for a message: ASCII, bounded."""
    return ascii(text[:limit])
