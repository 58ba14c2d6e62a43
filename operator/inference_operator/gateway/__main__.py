"""python -m inference_operator.gateway: the inference gateway (docs/gateway.md).

Serves /v1/infers/<serviceId>/<path> on --port and /metrics, /-/counts, /healthz on --metrics-port,
learning services, endpoints and app Secrets by watching the API (--kubeconfig, else $KUBECONFIG,
else the pod's service account).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from inference_operator.gateway.limits import MB, Limits
from inference_operator.gateway.resolver import parse_overrides
from inference_operator.gateway.routes import RouteTable
from inference_operator.gateway.server import Gateway, build_app, build_metrics_app, start_site
from inference_operator.gateway.watch import Watcher, load_api_client

log = logging.getLogger("inference_operator.gateway")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="inference-gateway", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080, help="port of /v1/infers/... (default 8080)")
    parser.add_argument("--metrics-port", type=int, default=9090,
                        help="port of /metrics, /-/counts and /healthz (default 9090; 0: serve them on --port)")
    parser.add_argument("--kubeconfig", default=None,
                        help="kubeconfig file (default: $KUBECONFIG, else in-cluster, else ~/.kube/config)")
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="namespace to serve (repeatable; default: all namespaces)")
    parser.add_argument("--body-limit-mb", type=float, default=12.0, help="request body limit in MB (default 12)")
    parser.add_argument("--timeout-seconds", type=float, default=40.0,
                        help="seconds to the model's answer, and between streamed chunks (default 40)")
    parser.add_argument("--resolve", action="append", default=[], metavar="NAME=ADDRESS",
                        help="answer NAME with ADDRESS when connecting upstream (FQDN EndpointSlices), repeatable")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    if args.body_limit_mb <= 0 or args.timeout_seconds <= 0:
        parser.error("--body-limit-mb and --timeout-seconds must be positive")
    return args


async def run(args: argparse.Namespace, stop: asyncio.Event | None = None) -> None:
    """Watch, serve until `stop` is set (SIGTERM / SIGINT by default), then drain and close."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    api = await load_api_client(args.kubeconfig)
    table = RouteTable()
    watcher = Watcher(table, api, args.namespace or None)
    limits = Limits(body_limit_bytes=int(args.body_limit_mb * MB), timeout_seconds=args.timeout_seconds)
    gateway = Gateway(table, limits=limits, ready=watcher.synced, healthy=watcher.healthy,
                      resolve=parse_overrides(args.resolve))
    watcher.start()
    runners = []
    try:
        runner, port = await start_site(build_app(gateway, with_metrics=not args.metrics_port), args.host, args.port)
        runners.append(runner)
        if args.metrics_port:
            runners.append((await start_site(build_metrics_app(gateway), args.host, args.metrics_port))[0])
        log.info("gateway listening on %s:%s (metrics on %s), namespaces: %s, body limit %g MB, timeout %gs",
                 args.host, port, args.metrics_port or port, ", ".join(args.namespace) or "all",
                 args.body_limit_mb, args.timeout_seconds)
        await stop.wait()
        log.info("stopping: draining requests in flight")
    finally:
        for runner in runners:
            await runner.cleanup()
        await watcher.stop()
        await api.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
