"""Who a caller is: the Kubernetes identity the cloud API server impersonates for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Caller:
    """The identity every API request for this caller is made as, and its default namespace (EAS calls
    carry none; ModelArts calls name theirs as project_id). `via`: the access key, or "token"."""

    user: str
    groups: tuple[str, ...] = ()
    namespace: str | None = None
    via: str = ""


def token_review(token: str) -> dict[str, Any]:
    """The TokenReview that asks the API server who a bearer token is."""
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}


def caller_of_review(review: Mapping[str, Any]) -> Caller | None:
    """The identity a TokenReview's answer names; None when the token is not authenticated."""
    status = review.get("status") or {}
    user = status.get("user") or {}
    if not status.get("authenticated") or not user.get("username"):
        return None
    return Caller(str(user["username"]), tuple(str(g) for g in user.get("groups") or ()), via="token")
