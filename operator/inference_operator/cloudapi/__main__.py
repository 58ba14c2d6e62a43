"""python -m inference_operator.cloudapi: the clouds' management APIs on the cluster (docs/cloud-api.md).

Serves the ModelArts dialect (/v1/{project_id}/...) and the PAI-EAS dialect (/api/v2/...) on --port,
and /healthz and /metrics on --metrics-port. Where the API is: --kubeconfig, else $KUBECONFIG, else
the pod's service account (as the operator finds it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from inference_operator.cloudapi.credentials import LABEL, KeyRing
from inference_operator.cloudapi.dialect import AuthContext, Dialect, Settings
from inference_operator.cloudapi.eas import Eas
from inference_operator.cloudapi.identity import Caller, caller_of_review, token_review
from inference_operator.cloudapi.modelarts import ModelArts
from inference_operator.cloudapi.server import MB, Backend, Limits, build_app
from inference_operator.gateway.httpserver import ServerLimits, start_site
from inference_operator.kube.client import Kube
from inference_operator.kube.kubeconfig import Connection
from inference_operator.kube.paths import resource_path
from inference_operator.ports import ApiError

log = logging.getLogger("inference_operator.cloudapi")
FIELD_MANAGER = "inference-cloud-api"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m inference_operator.cloudapi", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8443, help="port of both dialects (default 8443; 0: any free)")
    parser.add_argument("--metrics-port", type=int, default=9093, help="port of /healthz and /metrics (default 9093)")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, else in-cluster, "
                                                           "else ~/.kube/config)")
    parser.add_argument("--credentials-namespace", default=None,
                        help="namespace of the access-key Secrets (default: the pod's own, $POD_NAMESPACE)")
    parser.add_argument("--region", default="local", help="the EAS region ({ClusterId}) answered for (default local)")
    parser.add_argument("--gateway-url", default="", help="base URL of the inference gateway, for access addresses")
    parser.add_argument("--body-limit-mb", type=float, default=4.0, help="request body limit (default 4 MB)")
    parser.add_argument("--timeout-seconds", type=float, default=30.0, help="time limit of a request (default 30)")
    parser.add_argument("--tls-cert-file", default=None,
                        help="serve HTTPS with this certificate (PEM; with --tls-key-file)")
    parser.add_argument("--tls-key-file", default=None, help="the certificate's private key (PEM)")
    parser.add_argument("--max-connections", type=int, default=256,
                        help="open client connections; more are answered 503 (default 256)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    if args.body_limit_mb <= 0 or args.timeout_seconds <= 0:
        parser.error("--body-limit-mb and --timeout-seconds must be positive")
    if bool(args.tls_cert_file) != bool(args.tls_key_file):
        parser.error("--tls-cert-file and --tls-key-file go together")
    args.credentials_namespace = args.credentials_namespace or os.environ.get("POD_NAMESPACE") or "default"
    return args


async def watch_keys(kube: Kube, namespace: str, keys: KeyRing) -> None:
    """Keep `keys` as the labelled Secrets of the credentials namespace are (list, then watch, forever)."""
    path = resource_path("v1", "Secret", namespace)
    async for event_type, body in kube.watch(f"credential Secrets in {namespace}", path,
                                             [("labelSelector", f"{LABEL}=true")]):
        if event_type == "LISTED":
            keys.replace(list(body))
            log.info("%d access keys in %s", len(keys.by_key), namespace)
        else:
            keys.apply(event_type, body)


def token_reviewer(kube: Kube) -> Callable[[str], Awaitable[Caller | None]]:
    async def review(token: str) -> Caller | None:
        try:
            answer = await kube.create(resource_path("authentication.k8s.io/v1", "TokenReview", None),
                                       token_review(token), "TokenReview")
        except ApiError as err:
            log.warning("TokenReview failed: %s", err.message)
            return None
        return caller_of_review(answer)
    return review


def dialects() -> Sequence[Dialect]:
    """The dialects served, each under its own prefix (a new one is one more line here)."""
    return [ModelArts(), Eas()]


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server's TLS context from --tls-cert-file/--tls-key-file (the chart mounts a kubernetes.io/tls Secret)."""
    if not args.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.tls_cert_file, args.tls_key_file)
    return context


def metrics_app(keys: KeyRing) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": keys.synced}, status=200 if keys.synced else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
    app = web.Application(client_max_size=1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def run(args: argparse.Namespace, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    connection = await asyncio.to_thread(Connection.from_kubeconfig, args.kubeconfig) if args.kubeconfig \
        else await asyncio.to_thread(Connection.discover)
    kube = Kube(connection, FIELD_MANAGER)
    keys = KeyRing()
    auth = AuthContext(keys, token_reviewer(kube), lambda: datetime.now(UTC))
    settings = Settings(args.region, args.gateway_url.rstrip("/"), args.credentials_namespace)
    backend = Backend(kube, auth, settings, Limits(int(args.body_limit_mb * MB), args.timeout_seconds))
    watcher = asyncio.create_task(watch_keys(kube, args.credentials_namespace, keys))
    runners: list[web.AppRunner] = []
    try:
        # the gateway's guarded sockets: connection cap, header deadline, aiohttp's own refusals as JSON
        runner, port = await start_site(build_app(dialects(), backend), args.host, args.port,
                                        ServerLimits(max_connections=args.max_connections), tls_context(args))
        runners.append(runner)
        runners.append((await start_site(metrics_app(keys), args.host, args.metrics_port))[0])
        log.info("cloud API listening on %s:%s (metrics on %s), credentials in %s, region %s",
                 args.host, port, args.metrics_port, args.credentials_namespace, args.region)
        await stop.wait()
    finally:
        for each in runners:
            await each.cleanup()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await kube.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
