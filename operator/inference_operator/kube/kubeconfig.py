"""Where the API is and how to prove who we are: the pod's service account, else the kubeconfig(s).

Inside a pod the service account is read directly (a server address, a CA file and a rotating token
file: nothing to parse). Outside, kubeconfig files are merged and exec credential plugins (EKS, GKE,
AKS) run by the `kubernetes` package's loader (`KubeConfigMerger`, `ExecProvider`: the rules kubectl
follows), in a short-lived helper process (`python -m inference_operator.kube.kubeconfig`) that hands back
plain values over a pipe: the library's generated models would cost the operator 19 MB for as long as
it runs (README, "Kubernetes client"). Key material never touches a disk: client keys live in memfd
files (anonymous memory) that `ssl` reads through /proc/self/fd, and exec tokens stay in memory,
fetched again before they expire and when the API answers 401.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import kopf

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
EXPIRY_MARGIN = timedelta(seconds=30)  # fetch a new exec token this long before it expires
HELPER_SECONDS = 120  # an exec plugin may be slow (cloud CLIs), but not forever
_KEPT_OPEN: list[int] = []  # memfds whose /proc/<pid>/fd path kopf reads again at each login


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


def _helper(paths: str, context: str | None, *args: str) -> dict[str, Any]:
    """Run this module as the helper process (it loads the `kubernetes` package, we do not)."""
    command = [sys.executable, "-m", "inference_operator.kube.kubeconfig", "--kubeconfig", paths, *args]
    if context:
        command += ["--context", context]
    try:
        done = subprocess.run(command, capture_output=True, timeout=HELPER_SECONDS, check=False,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"kubeconfig {paths}: no answer within {HELPER_SECONDS}s") from exc
    if done.returncode != 0:
        raise ConfigError(done.stderr.decode(errors="replace").strip().splitlines()[-1] if done.stderr.strip()
                          else f"kubeconfig {paths}: helper exited {done.returncode}")
    return dict(json.loads(done.stdout))


def _expiry(stamp: Any) -> datetime | None:
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None


class ExecToken:
    """A token from the user's exec credential plugin (client.authentication.k8s.io v1/v1beta1), fetched
    again before its expirationTimestamp and whenever the API says the current one is no longer valid."""

    def __init__(self, paths: str, context: str | None) -> None:
        self.paths, self.context = paths, context
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
            if self._fresh() and self.token != stale:  # another caller fetched one meanwhile
                return str(self.token)
            status = await asyncio.to_thread(_helper, self.paths, self.context, "--exec")
            self.token, self.expiry = str(status["token"]), _expiry(status.get("expirationTimestamp"))
            return self.token


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
    namespace: str | None = None  # the kubeconfig context's namespace: where a command without -n looks

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
        found = _helper(paths, context)
        cert_path, key_path = found.get("client-certificate"), found.get("client-key")
        if cert_path is None and found.get("client-certificate-data"):
            cert_path = memory_file(base64.b64decode(found["client-certificate-data"]), "kube-client-cert")
        if key_path is None and found.get("client-key-data"):
            key_path = memory_file(base64.b64decode(found["client-key-data"]), "kube-client-key")
        ca_path, insecure = found.get("certificate-authority"), bool(found.get("insecure-skip-tls-verify"))
        ca_data = base64.b64decode(found["certificate-authority-data"]).decode() \
            if found.get("certificate-authority-data") else None
        context_ssl: ssl.SSLContext | bool = False
        if not insecure or (cert_path and key_path):
            context_ssl = ssl.create_default_context(cafile=None if insecure else ca_path,
                                                     cadata=None if insecure else ca_data)
            if insecure:
                context_ssl.check_hostname, context_ssl.verify_mode = False, ssl.CERT_NONE
            if cert_path and key_path:
                context_ssl.load_cert_chain(cert_path, key_path)
        token_file = Path(found["tokenFile"]) if found.get("tokenFile") else None
        exec_token = ExecToken(paths, context) if found.get("exec") else None
        return cls(found["server"], context_ssl, token_file=token_file, token=found.get("token"),
                   exec_token=exec_token, ca_path=ca_path, ca_data=ca_data, cert_path=cert_path,
                   key_path=key_path, insecure=insecure, source=found["source"], namespace=found.get("namespace"))

    async def kopf_login(self) -> kopf.ConnectionInfo:
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
_CONNECTION_LOCK = threading.Lock()


def shared_connection() -> Connection:
    """One Connection per process (kopf's login and our client share the exec token and memfds)."""
    global _CONNECTION
    with _CONNECTION_LOCK:
        if _CONNECTION is None:
            _CONNECTION = Connection.discover()
        return _CONNECTION


# --- the helper process: the only code that loads the `kubernetes` package -------------------------------------


def resolve(paths: str, context: str | None = None, run_exec: bool = False) -> dict[str, Any]:
    """The current context's server, TLS material and credentials as plain values (file paths made
    absolute against the file that named them); with `run_exec`, the exec plugin's ExecCredential status."""
    from kubernetes.config.config_exception import ConfigException

    try:
        name, cluster, user_name, user, namespace = _context(paths, context)
        if run_exec:
            return _exec_status(paths, cluster, user_name, user)
    except ConfigException as exc:
        raise ConfigError(f"kubeconfig {paths}: {exc}") from exc
    return _plain_values(paths, name, cluster, user) | {"namespace": namespace}


def _context(paths: str, context: str | None) -> tuple[str, Any, str | None, Any, str | None]:
    """The merged files' context (named, else the current one): its name, cluster node, user name, user node
    and namespace (kubectl's default for commands without -n)."""
    from kubernetes.config.kube_config import KubeConfigMerger

    merged = KubeConfigMerger(paths).config
    if merged is None:
        raise ConfigError(f"kubeconfig {paths}: no such file")
    name = context or merged["current-context"]
    current = merged["contexts"].get_with_name(name)["context"]
    cluster = merged["clusters"].get_with_name(current["cluster"])["cluster"]
    user_name = current.safe_get("user")
    user_node = merged["users"].get_with_name(user_name, safe=True) if user_name else None
    user = user_node["user"] if user_node is not None and user_node.safe_get("user") else None
    namespace = current.safe_get("namespace")
    return name, cluster, user_name, user, str(namespace) if namespace else None


def _exec_status(paths: str, cluster: Any, user_name: str | None, user: Any) -> dict[str, Any]:
    from kubernetes.config.exec_provider import ExecProvider

    if user is None or not user.safe_get("exec"):
        raise ConfigError(f"kubeconfig {paths}: user {user_name!r} has no exec plugin")
    base = os.path.dirname(os.path.abspath(cluster.path)) if cluster.path else ""
    status = dict(ExecProvider(user["exec"], base, cluster).run())
    if "token" not in status:
        raise ConfigError(f"kubeconfig {paths}: the exec plugin returned no token (client certificates "
                          "from exec plugins are not supported)")
    return status


def _absolute(node: Any, key: str) -> str | None:
    """A file path of the kubeconfig, made absolute against the file that named it."""
    value = node.safe_get(key) if node is not None else None
    base = os.path.dirname(os.path.abspath(node.path)) if node is not None and node.path else os.getcwd()
    return os.path.join(base, os.path.expanduser(str(value))) if value else None


def _plain_values(paths: str, name: str, cluster: Any, user: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"server": str(cluster["server"]).rstrip("/"), "source": f"kubeconfig {paths} ({name})",
                             "insecure-skip-tls-verify": bool(cluster.safe_get("insecure-skip-tls-verify")),
                             "certificate-authority": _absolute(cluster, "certificate-authority"),
                             "certificate-authority-data": cluster.safe_get("certificate-authority-data")}
    if user is not None:
        if user.safe_get("auth-provider"):
            raise ConfigError(f"kubeconfig {paths}: auth-provider users are not supported; use an exec plugin")
        found.update({"client-certificate": _absolute(user, "client-certificate"),
                      "client-key": _absolute(user, "client-key"),
                      "client-certificate-data": user.safe_get("client-certificate-data"),
                      "client-key-data": user.safe_get("client-key-data"),
                      "token": user.safe_get("token"), "tokenFile": _absolute(user, "tokenFile"),
                      "exec": bool(user.safe_get("exec"))})
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference_operator.kube.kubeconfig",
                                     description="Print the current context's connection (or, with --exec, the "
                                                 "exec plugin's credential) as JSON: the operator's helper.")
    parser.add_argument("--kubeconfig", required=True, help="one file, or several joined by os.pathsep")
    parser.add_argument("--context", default=None)
    parser.add_argument("--exec", action="store_true", dest="run_exec")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(resolve(args.kubeconfig, args.context, args.run_exec)))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
