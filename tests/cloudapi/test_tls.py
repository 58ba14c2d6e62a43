"""The cloud API over TLS (--tls-cert-file/--tls-key-file, the chart's tlsSecretName): the SDK's signed
request reaches the dialect over HTTPS, verified against the server's certificate."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from inference_operator.cloudapi.__main__ import parse_args, tls_context
from inference_operator.cloudapi.credentials import KeyRing
from inference_operator.cloudapi.dialect import AuthContext, Settings
from inference_operator.cloudapi.modelarts import ModelArts
from inference_operator.cloudapi.server import Backend, Limits, build_app
from inference_operator.gateway.httpserver import start_site
from inference_operator.kube.client import Kube
from inference_operator.kube.kubeconfig import Connection


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloud-api.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "tls.crt", tmp / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_the_dialect_answers_over_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    args = parse_args(["--tls-cert-file", str(cert), "--tls-key-file", str(key)])
    kube = Kube(Connection(server="http://127.0.0.1:1", ssl_context=False), "inference-cloud-api")

    async def review(_: str) -> None:
        return None
    keys = KeyRing()
    keys.replace([])
    backend = Backend(kube, AuthContext(keys, review, lambda: datetime.datetime.now(datetime.UTC)), Settings(),
                      Limits())
    runner, port = await start_site(build_app([ModelArts()], backend), "127.0.0.1", 0, ssl_context=tls_context(args))
    try:
        answer = await asyncio.to_thread(requests.get, f"https://127.0.0.1:{port}/v1/team-a/services",
                                         verify=str(cert), timeout=10)
        assert answer.status_code == 401 and answer.json()["error_code"] == "APIG.0301"  # TLS, then the dialect
    finally:
        await runner.cleanup()
        await kube.close()


def test_cert_and_key_go_together() -> None:
    try:
        parse_args(["--tls-cert-file", "x"])
    except SystemExit as exit_:
        assert exit_.code == 2
    else:
        raise AssertionError("accepted a certificate without its key")
    assert tls_context(argparse.Namespace(tls_cert_file=None)) is None
