"""kubeconfig.py: KUBECONFIG files merged as kubectl does, exec plugins, keys that never touch a disk;
kube.watch.json_lines: watch lines of any size."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import stat
import sys
import tempfile
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp.base_protocol import BaseProtocol
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from inference_operator.kube.kubeconfig import Connection
from inference_operator.kube.watch import EventTooLarge, WatchHealth, json_lines


def key_and_cert() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write(path: Path, config: dict) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_two_files_merge_and_the_client_key_stays_off_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    key, cert = key_and_cert()
    clusters = write(tmp_path / "clusters", {"apiVersion": "v1", "kind": "Config", "clusters": [
        {"name": "c", "cluster": {"server": "https://10.0.0.1:6443/", "certificate-authority-data": b64(cert)}}]})
    users = write(tmp_path / "users", {"apiVersion": "v1", "kind": "Config", "current-context": "ctx",
                                       "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                                       "users": [{"name": "u", "user": {"client-certificate-data": b64(cert),
                                                                        "client-key-data": b64(key)}}]})
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    connection = Connection.from_kubeconfig(os.pathsep.join([clusters, users]))
    assert connection.server == "https://10.0.0.1:6443"
    assert connection.key_path and connection.key_path.startswith("/proc/")
    assert Path(connection.key_path).read_bytes() == key  # readable by ssl (and kopf's login) from memory
    assert stat.S_ISREG(os.stat(connection.key_path).st_mode)
    assert list(scratch.iterdir()) == [], "nothing written to the temp directory"
    assert not any(key in p.read_bytes() for p in Path("/tmp").glob("*") if p.is_file() and p.stat().st_size < 1e6)


def exec_plugin(tmp_path: Path, version: str = "client.authentication.k8s.io/v1") -> tuple[str, Path]:
    """A plugin that counts its runs and prints a token numbered by the run, expiring in an hour."""
    counter = tmp_path / "runs"
    script = tmp_path / "plugin.py"
    expiry = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    script.write_text(
        "import json, pathlib, os, sys\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) + 1 if p.exists() else 1; p.write_text(str(n))\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        f"print(json.dumps({{'apiVersion': {version!r}, 'kind': 'ExecCredential',\n"
        f"  'status': {{'token': f'token-{{n}}-' + os.environ['EXTRA'], 'expirationTimestamp': {expiry!r}}}}}))\n")
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "ctx",
              "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443",
                                                     "insecure-skip-tls-verify": True}}],
              "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
              "users": [{"name": "u", "user": {"exec": {
                  "apiVersion": version, "command": sys.executable, "args": [str(script)],
                  "env": [{"name": "EXTRA", "value": "x"}], "interactiveMode": "Never"}}}]}
    return write(tmp_path / "config", config), counter


async def test_exec_plugin_token_is_cached_and_refreshed_on_demand(tmp_path: Path):
    path, counter = exec_plugin(tmp_path)
    connection = Connection.from_kubeconfig(path)
    assert await connection.bearer() == "token-1-x"
    assert await connection.bearer() == "token-1-x", "cached until it expires"
    assert counter.read_text() == "1"
    assert await connection.bearer(refresh=True) == "token-2-x", "a 401 asks the plugin again"
    login = await connection.kopf_login()
    assert login.token == "token-3-x" and login.expiration is not None and login.insecure


async def test_v1beta1_plugins_work_too(tmp_path: Path):
    path, _ = exec_plugin(tmp_path, "client.authentication.k8s.io/v1beta1")
    assert await Connection.from_kubeconfig(path).bearer() == "token-1-x"


class Feed:
    """An aiohttp StreamReader fed in small chunks, as a socket would (limit only sets when the reader
    would pause its transport; json_lines never calls readline, which is bound by it)."""

    def __init__(self, data: bytes, chunk: int = 65536) -> None:
        self.data, self.chunk = data, chunk

    async def reader(self) -> aiohttp.StreamReader:
        protocol = BaseProtocol(asyncio.get_running_loop())
        reader = aiohttp.StreamReader(protocol, limit=2 ** 24, loop=asyncio.get_running_loop())
        for start in range(0, len(self.data), self.chunk):
            reader.feed_data(self.data[start:start + self.chunk])
        reader.feed_eof()
        return reader


async def test_watch_lines_of_any_size_are_read_whole():
    big = json.dumps({"type": "ADDED", "object": {"data": {"k": "x" * 900_000}}}).encode()
    reader = await Feed(b'{"type":"BOOKMARK"}\n' + big + b"\n\n" + b'{"type":"DELETED"}').reader()
    lines = [line async for line in json_lines(reader)]
    assert [len(line) for line in lines] == [19, len(big), 18]
    assert json.loads(lines[1])["object"]["data"]["k"] == "x" * 900_000


async def test_a_line_over_the_bound_stops_the_stream():
    reader = await Feed(b"x" * 5000).reader()
    with pytest.raises(EventTooLarge):
        [line async for line in json_lines(reader, limit=4096)]


def test_watch_health_fails_only_after_the_allowed_downtime(monkeypatch: pytest.MonkeyPatch):
    clock = [100.0]
    monkeypatch.setattr("inference_operator.kube.watch.time.monotonic", lambda: clock[0])
    health = WatchHealth()
    health.down("ConfigMap a/b")
    clock[0] += 29
    assert health.failing(30) == []
    health.down("ConfigMap a/b")  # still down: counted from the first failure
    clock[0] += 2
    assert health.failing(30) == ["ConfigMap a/b (down 31s)"]
    health.up("ConfigMap a/b")
    assert health.failing(30) == []


def test_the_contexts_namespace_is_where_a_command_without_namespace_looks(tmp_path: Path):
    """kubectl (and so `kubectl infsvc`) looks in the context's namespace when no -n is given."""
    _, cert = key_and_cert()
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "team",
              "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443",
                                                      "certificate-authority-data": b64(cert)}}],
              "contexts": [{"name": "team", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}},
                           {"name": "plain", "context": {"cluster": "c", "user": "u"}}],
              "users": [{"name": "u", "user": {"token": "t"}}]}
    path = write(tmp_path / "config", config)
    assert Connection.from_kubeconfig(path).namespace == "team-a"
    assert Connection.from_kubeconfig(path, "plain").namespace is None
