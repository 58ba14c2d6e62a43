"""Access keys: Secrets labelled inference.io/cloud-credentials=true in the credentials namespace
(CLOUDAPI.md section 2), each naming the Kubernetes identity its key acts as.

Kept by a list+watch rather than read per request: a request names its key by the accessKey *value*,
which is in the Secret's data, not its name, so a per-request read would be a list of every key; the
watch answers from memory, and an added or revoked key takes effect within the watch's latency (about
a second), which a cache refreshed by time could not promise. One connection, the Secrets of one label.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inference_operator.cloudapi.identity import Caller

LABEL = "inference.io/cloud-credentials"
IDENTITY = "inference.io/identity"
GROUPS = "inference.io/groups"
NAMESPACE = "inference.io/namespace"
SA_PREFIX = "system:serviceaccount:"
AUTHENTICATED = "system:authenticated"  # added by the API server to every identity: never impersonated

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccessKey:
    """One key pair and the identity it acts as. `source`: namespace/name of its Secret, for messages."""

    access_key: str
    secret_key: str
    caller: Caller
    source: str


def _text(data: Mapping[str, Any], key: str) -> str:
    try:
        return base64.b64decode(str(data.get(key) or ""), validate=True).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def impersonated_groups(user: str, groups: tuple[str, ...]) -> tuple[str, ...]:
    """The groups to send: none for a service account (the API server adds its groups itself), and never
    system:authenticated (every identity has it; asking for it would need a grant of its own)."""
    if user.startswith(SA_PREFIX):
        return ()
    return tuple(g for g in groups if g and g != AUTHENTICATED)


def access_key_of(secret: Mapping[str, Any]) -> AccessKey | None:
    """The key a credential Secret holds; None (logged) when it lacks a key, a secret or an identity."""
    meta = secret.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    source = f"{meta.get('namespace')}/{meta.get('name')}"
    data = secret.get("data") or {}
    access, secret_key, user = _text(data, "accessKey"), _text(data, "secretKey"), str(annotations.get(IDENTITY, ""))
    if not access or not secret_key or not user.strip():
        log.warning("credential Secret %s is ignored: it needs data accessKey and secretKey and the annotation %s",
                    source, IDENTITY)
        return None
    groups = tuple(g.strip() for g in str(annotations.get(GROUPS, "")).split(",") if g.strip())
    namespace = str(annotations.get(NAMESPACE, "")).strip() or None
    caller = Caller(user.strip(), impersonated_groups(user.strip(), groups), namespace, via=access)
    return AccessKey(access, secret_key, caller, source)


class KeyRing:
    """The access keys known now, by accessKey (a second Secret with the same accessKey is refused, logged)."""

    def __init__(self) -> None:
        self.by_secret: dict[str, AccessKey] = {}
        self.by_key: dict[str, AccessKey] = {}
        self.synced = False

    def find(self, access_key: str) -> AccessKey | None:
        return self.by_key.get(access_key)

    def replace(self, secrets: list[Mapping[str, Any]]) -> None:
        self.by_secret = {}
        for secret in secrets:
            self._put(secret)
        self._index()
        self.synced = True

    def apply(self, event_type: str, secret: Mapping[str, Any]) -> None:
        if event_type == "DELETED":
            self.by_secret.pop(_uid(secret), None)
        else:
            self._put(secret)
        self._index()

    def _put(self, secret: Mapping[str, Any]) -> None:
        key = access_key_of(secret)
        if key is None:
            self.by_secret.pop(_uid(secret), None)
        else:
            self.by_secret[_uid(secret)] = key

    def _index(self) -> None:
        index: dict[str, AccessKey] = {}
        for key in sorted(self.by_secret.values(), key=lambda k: k.source):
            if key.access_key in index:
                log.warning("credential Secrets %s and %s hold the same accessKey: %s is ignored",
                            index[key.access_key].source, key.source, key.source)
                continue
            index[key.access_key] = key
        self.by_key = index


def _uid(secret: Mapping[str, Any]) -> str:
    meta = secret.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
