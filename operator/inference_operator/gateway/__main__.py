"""python -m inference_operator.gateway: the inference gateway (docs/gateway.md).

Serves /v1/infers/<serviceId>/<path> on --port and /metrics, /-/counts, /healthz on --metrics-port
(the internal port, which the inference Service does not expose), learning services, endpoints and
app Secrets by watching the API (--kubeconfig, else $KUBECONFIG, else the pod's service account).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from inference_operator.gateway.body import BodyBudget
from inference_operator.gateway.core import Gateway
from inference_operator.gateway.hold import DEFAULT_LIMIT
from inference_operator.gateway.httpserver import ServerLimits
from inference_operator.gateway.limits import MB, Limits
from inference_operator.gateway.resolver import parse_overrides
from inference_operator.gateway.routes import RouteTable
from inference_operator.gateway.server import build_app, build_metrics_app, start_site
from inference_operator.gateway.watch import Watcher, load_api_client
from inference_operator.kube.watch import HEALTHY_DOWNTIME

log = logging.getLogger("inference_operator.gateway")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:  # long: one statement per command-line flag
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
    parser.add_argument("--max-body-limit-mb", type=float, default=None,
                        help="the most a service may raise its body limit to by annotation (default: --body-limit-mb)")
    parser.add_argument("--max-timeout-seconds", type=float, default=None,
                        help="the most a service may raise its timeout to by annotation (default: --timeout-seconds)")
    parser.add_argument("--client-timeout-seconds", type=float, default=10.0,
                        help="longest pause between two chunks of a request body (408 after it; default 10)")
    parser.add_argument("--header-timeout-seconds", type=float, default=10.0,
                        help="time from a request's first byte to the end of its headers (408; default 10)")
    parser.add_argument("--idle-timeout-seconds", type=float, default=60.0,
                        help="an idle connection is closed after this long (default 60)")
    parser.add_argument("--max-connections", type=int, default=384,
                        help="open client connections per process; more are answered 503 (default 384)")
    parser.add_argument("--buffer-limit-mb", type=float, default=128.0,
                        help="request bodies buffered at once for signature checks, all requests together "
                             "(503 above it; default 128)")
    parser.add_argument("--max-held-requests", type=int, default=DEFAULT_LIMIT,
                        help="requests held at once for models waking from zero (scaling.minReplicas 0); more are "
                             f"answered 503 (default {DEFAULT_LIMIT})")
    parser.add_argument("--final-read-seconds", type=float, default=0.0,
                        help="on SIGTERM, once requests are drained, wait up to this long for one more read of "
                             "/-/counts, so the operator counts every request this process served (default 0)")
    parser.add_argument("--counts-token-file", default=None,
                        help="file holding the bearer token GET /-/counts requires (default: no token)")
    parser.add_argument("--resolve", action="append", default=[], metavar="NAME=ADDRESS",
                        help="answer NAME with ADDRESS when connecting upstream (FQDN EndpointSlices), repeatable")
    parser.add_argument("--watch-grace-seconds", type=float, default=HEALTHY_DOWNTIME,
                        help="/healthz fails once a watch of services or endpoint slices has been down this long "
                             f"(default {HEALTHY_DOWNTIME:g})")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"],
                        help="event loop (default uvloop when installed, else asyncio)")
    args = parser.parse_args(argv)
    numbers = (args.body_limit_mb, args.timeout_seconds, args.client_timeout_seconds, args.header_timeout_seconds,
               args.idle_timeout_seconds, args.max_connections, args.buffer_limit_mb)
    if any(n <= 0 for n in numbers) or any(n is not None and n <= 0 for n in (args.max_body_limit_mb,
                                                                              args.max_timeout_seconds)):
        parser.error("limits, timeouts and --max-connections must be positive")
    return args


def read_token(path: str | None) -> str | None:
    if not path:
        return None
    with open(path, encoding="utf-8") as handle:
        token = handle.read().strip()
    if not token:
        raise SystemExit(f"--counts-token-file {path} is empty")
    return token


def _gateway(args: argparse.Namespace, table: RouteTable, watcher: Watcher) -> Gateway:
    """The gateway's state from the command line, ready once the watcher has synced."""
    limits = Limits(body_limit_bytes=int(args.body_limit_mb * MB), timeout_seconds=args.timeout_seconds,
                    max_body_limit_bytes=int(args.max_body_limit_mb * MB) if args.max_body_limit_mb else None,
                    max_timeout_seconds=args.max_timeout_seconds, client_seconds=args.client_timeout_seconds)
    return Gateway(table, limits=limits, ready=watcher.synced, healthy=watcher.healthy,
                   resolve=parse_overrides(args.resolve), budget=BodyBudget(int(args.buffer_limit_mb * MB)),
                   counts_token=read_token(args.counts_token_file), max_held_requests=args.max_held_requests)


async def run(args: argparse.Namespace, stop: asyncio.Event | None = None) -> None:
    """Watch, serve until `stop` is set (SIGTERM / SIGINT by default), then drain and close."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    api = await load_api_client(args.kubeconfig)
    table = RouteTable()
    watcher = Watcher(table, api, args.namespace or None, grace_seconds=args.watch_grace_seconds)
    gateway = _gateway(args, table, watcher)
    server_limits = ServerLimits(max_connections=args.max_connections, idle_seconds=args.idle_timeout_seconds,
                                 header_seconds=args.header_timeout_seconds)
    watcher.start()
    runners = []
    try:
        runner, port = await start_site(build_app(gateway, with_metrics=not args.metrics_port), args.host, args.port,
                                        server_limits)
        runners.append(runner)
        if args.metrics_port:
            runners.append((await start_site(build_metrics_app(gateway), args.host, args.metrics_port))[0])
        log.info("gateway listening on %s:%s (metrics on %s), namespaces: %s, body limit %g MB, timeout %gs",
                 args.host, port, args.metrics_port or port, ", ".join(args.namespace) or "all",
                 args.body_limit_mb, args.timeout_seconds)
        await stop.wait()
        log.info("stopping: draining requests in flight")
        await runners.pop(0).cleanup()  # no new connections; requests in flight finish (up to 30 s)
        if args.metrics_port and args.final_read_seconds > 0:
            gateway.counts_read.clear()
            log.info("drained; waiting up to %gs for the last read of the counts", args.final_read_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gateway.counts_read.wait(), args.final_read_seconds)
    finally:
        for runner in runners:
            await runner.cleanup()
        await watcher.stop()
        await api.close()


def run_loop(main: Coroutine[Any, Any, None], fast: bool = True) -> None:
    """Run on uvloop when it is installed (libuv's loop: about twice the requests per CPU-second of asyncio's
    own for this proxy), else on asyncio's."""
    if fast:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_loop(run(args), args.loop == "uvloop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
