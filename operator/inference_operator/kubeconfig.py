"""Where the API is and how to prove who we are: the pod's service account, else the kubeconfig(s).

Inside a pod the service account is read directly (no library needed: a server address, a CA file and
a rotating token file). Outside, kubeconfig files are merged and exec credential plugins run (EKS, GKE,
AKS) by the `kubernetes` package's loader, `KubeConfigMerger` and `ExecProvider`, the rules kubectl
follows; it is imported only on this path, so an operator in a pod loads no client library (README:
the measured cost of each candidate). Key material never touches a disk: client keys from `*-data`
entries live in memfd files (anonymous memory) that `ssl` reads through /proc/self/fd, and exec tokens
stay in memory, refreshed before they expire and when the API answers 401.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
EXPIRY_MARGIN = timedelta(seconds=30)  # refresh an exec token this long before it expires
_KEPT_OPEN: list[int] = []  # memfds whose /proc/self/fd path kopf re-reads at each login


class ConfigError(Exception):
    """The kubeconfig cannot be used; the message says which file, context or field."""


def memory_file(data: bytes, name: str) -> str:
    """A path `ssl` can read `data` from without it being written to any filesystem.

    Linux: a memfd, kept open for the process's life (kopf loads it again at each re-login). Elsewhere
    (a developer's macOS), a private temp file removed when the process exits."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create(name, getattr(os, "MFD_CLOEXEC", 0))
        os.write(fd, data)
        _KEPT_OPEN.append(fd)
        return f"/proc/{os.getpid()}/fd/{fd}"
    handle, path = tempfile.mkstemp(prefix="inference-operator-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    atexit.register(os.unlink, path)
    return path


class ExecToken:
    """A token from an exec credential plugin (client.authentication.k8s.io v1/v1beta1), run again
    before its expirationTimestamp and whenever the API says the current one is no longer valid."""

    def __init__(self, exec_config: Any, base_path: str, cluster: Any) -> None:
        self.exec_config, self.base_path, self.cluster = exec_config, base_path, cluster
        self.token: str | None = None
        self.expiry: datetime | None = None
        self.lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self.token is not None and (self.expiry is None or datetime.now(UTC) < self.expiry - EXPIRY_MARGIN)

    async def get(self, refresh: bool = False) -> str:
        if self._fresh() and not refresh:
            return str(self.token)
        stale = self.token
        async with self.lock:
            if self._fresh() and self.token != stale:  # another caller refreshed it meanwhile
                return str(self.token)
            status = await asyncio.to_thread(self._run)
            if "token" not in status:
                raise ConfigError("exec credential plugin returned no token (client certificates from a plugin "
                                  "are not supported)")
            self.token = str(status["token"])
            stamp = status.get("expirationTimestamp")
            self.expiry = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
            return self.token

    def _run(self) -> dict[str, Any]:
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.exec_provider import ExecProvider

        try:
            return dict(ExecProvider(self.exec_config, self.base_path, self.cluster).run())
        except ConfigException as exc:
            raise ConfigError(f"exec credential plugin {self.exec_config['command']!r}: {exc}") from exc


@dataclass(frozen=True)
class Connection:
    """The API server, TLS settings and credentials; `bearer()` gives the current token, if any."""

    server: str
    ssl_context: ssl.SSLContext | bool
    token_file: Path | None = None
    token: str | None = None
    exec_token: ExecToken | None = None
    ca_path: str | None = None  # PEM file of the cluster's CA (kopf's login reads it)
    ca_data: str | None = None  # PEM text of the cluster's CA
    cert_path: str | None = None  # client certificate and key, as paths ssl can read (memfd on Linux)
    key_path: str | None = None
    insecure: bool = False
    source: str = field(default="", compare=False)

    async def bearer(self, refresh: bool = False) -> str | None:
        if self.token_file is not None:  # projected tokens rotate: read the current one
            return self.token_file.read_text().strip()
        if self.exec_token is not None:
            return await self.exec_token.get(refresh)
        return self.token

    @property
    def refreshable(self) -> bool:
        """Whether a 401 may be cured by asking for a new token."""
        return self.exec_token is not None or self.token_file is not None

    @classmethod
    def discover(cls) -> Connection:
        """The pod's service account when running in one, else KUBECONFIG (or ~/.kube/config)."""
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        if host and port and (SERVICE_ACCOUNT / "token").exists():
            ca = str(SERVICE_ACCOUNT / "ca.crt")
            return cls(f"https://{host}:{port}", ssl.create_default_context(cafile=ca),
                       token_file=SERVICE_ACCOUNT / "token", ca_path=ca, source="service account")
        return cls.from_kubeconfig(os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config"))

    @classmethod
    def from_kubeconfig(cls, paths: str, context: str | None = None) -> Connection:
        """`paths`: one file or several joined by os.pathsep (as in KUBECONFIG), merged as kubectl does."""
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.kube_config import KubeConfigMerger

        try:
            merged = KubeConfigMerger(paths).config
            if merged is None:
                raise ConfigError(f"no kubeconfig file found in {paths!r}")
            name = context or merged["current-context"]
            current = merged["contexts"].get_with_name(name)["context"]
            cluster = merged["clusters"].get_with_name(current["cluster"])["cluster"]
            user_name = current.safe_get("user")
            user_node = merged["users"].get_with_name(user_name, safe=True) if user_name else None
            user = user_node["user"] if user_node is not None and user_node.safe_get("user") else None
            return cls._from_entries(cluster, user, f"kubeconfig {paths} (context {name})")
        except ConfigException as exc:
            raise ConfigError(f"kubeconfig {paths}: {exc}") from exc

    @classmethod
    def _from_entries(cls, cluster: Any, user: Any, source: str) -> Connection:
        def path_of(node: Any, key: str) -> str | None:
            value = node.safe_get(key) if node is not None else None
            if not value:
                return None
            base = os.path.dirname(os.path.abspath(node.path)) if node.path else os.getcwd()
            return os.path.join(base, os.path.expanduser(str(value)))

        def data_of(node: Any, key: str) -> bytes | None:
            value = node.safe_get(f"{key}-data") if node is not None else None
            return base64.b64decode(value) if value else None

        insecure = bool(cluster.safe_get("insecure-skip-tls-verify"))
        ca_path, ca_bytes = path_of(cluster, "certificate-authority"), data_of(cluster, "certificate-authority")
        ca_data = ca_bytes.decode() if ca_bytes else None
        cert_path = path_of(user, "client-certificate")
        key_path = path_of(user, "client-key")
        if cert_path is None and (cert := data_of(user, "client-certificate")):
            cert_path = memory_file(cert, "kube-client-cert")
        if key_path is None and (key := data_of(user, "client-key")):
            key_path = memory_file(key, "kube-client-key")
        context: ssl.SSLContext | bool = False
        if not insecure or (cert_path and key_path):
            context = ssl.create_default_context(cafile=None if insecure else ca_path,
                                                 cadata=None if insecure else ca_data)
            if insecure:
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            if cert_path and key_path:
                context.load_cert_chain(cert_path, key_path)
        token, token_file, exec_token = None, None, None
        if user is not None:
            if user.safe_get("token"):
                token = str(user["token"])
            elif user.safe_get("tokenFile"):
                token_file = Path(str(path_of(user, "tokenFile")))
            elif user.safe_get("exec"):
                base = os.path.dirname(os.path.abspath(cluster.path)) if cluster.path else ""
                exec_token = ExecToken(user["exec"], base, cluster)
            elif user.safe_get("auth-provider"):
                raise ConfigError(f"{source}: auth-provider users are not supported; use an exec plugin")
        return cls(str(cluster["server"]).rstrip("/"), context, token_file=token_file, token=token,
                   exec_token=exec_token, ca_path=ca_path, ca_data=ca_data, cert_path=cert_path,
                   key_path=key_path, insecure=insecure, source=source)

    async def kopf_login(self) -> Any:
        """The same credentials for kopf's own API client (kopf.on.login). kopf asks again only when the
        API refused the token it had (401) or its `expiration` passed: an exec plugin then runs anew."""
        import kopf

        token = await self.bearer(refresh=True) if self.refreshable else self.token
        return kopf.ConnectionInfo(
            server=self.server, ca_path=self.ca_path, ca_data=self.ca_data, insecure=self.insecure or None,
            token=token, scheme="Bearer" if token else None,
            certificate_path=self.cert_path, private_key_path=self.key_path,
            expiration=self.exec_token.expiry if self.exec_token is not None else None)


_CONNECTION: Connection | None = None


def shared_connection() -> Connection:
    """One Connection per process (kopf's login and our client share the exec token and memfds)."""
    global _CONNECTION
    if _CONNECTION is None:
        _CONNECTION = Connection.discover()
    return _CONNECTION

