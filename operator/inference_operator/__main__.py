"""python -m inference_operator: run the operator (KUBECONFIG honoured, in-cluster config in a pod)."""

from __future__ import annotations

if __name__ == "__main__":  # the operator process: before kopf is imported (lean.py, memprofile.py)
    from inference_operator.lean import skip_optional_clients
    from inference_operator.runtime.memprofile import start_if_asked

    start_if_asked()
    skip_optional_clients()

import argparse
import asyncio
import logging
import os
import sys
from urllib.parse import urlsplit

import kopf
from aiohttp import web


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="inference-operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[],
                       help="namespace to watch (repeatable; globs allowed); default: all namespaces")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    parser.add_argument("--log-format", choices=["plain", "full", "json"], default="plain")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz",
                        help="health endpoint URL served by kopf (empty to disable)")
    parser.add_argument("--metrics-port", type=int, default=9090, help="Prometheus /metrics port (0: off)")
    parser.add_argument("--leader-elect", action="store_true",
                        help="run only while holding a Lease (for more than one replica)")
    parser.add_argument("--lease-name", default="inference-operator")
    parser.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE", "inference-system"))
    parser.add_argument("--lease-duration", type=float, default=15.0,
                        help="seconds a Lease lasts without renewal (default 15); the renew deadline is 2/3 "
                             "of it and the retry period 2/15, as client-go's 15/10/2")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    """The operator, behind leader election when asked: only the Lease holder reconciles, and it exits
    (status 1) as soon as it cannot renew within the renew deadline, like client-go's controllers."""
    if not args.leader_elect:
        await kopf.operator(clusterwide=not args.namespace, namespaces=args.namespace, standalone=True,
                            liveness_endpoint=args.liveness or None)
        return 0
    from inference_operator.kube.client import Kube
    from inference_operator.kube.identity import identity
    from inference_operator.runtime.leader import LeaderElector, RenewalThread, Timing

    kube = await Kube.connect("inference-operator")
    elector = LeaderElector(kube, args.lease_namespace, args.lease_name, identity(),
                            Timing.for_lease(args.lease_duration))

    async def renewal_client() -> Kube:  # on the renewal thread's loop: the same credentials, a session of its own
        return Kube(kube.connection, "inference-operator", pool_limit=2)

    renewal = RenewalThread(elector, renewal_client)
    stop = asyncio.Event()
    try:
        standby = await standby_health(args.liveness)
        try:
            await elector.acquire()
        finally:
            if standby is not None:
                await standby.cleanup()  # kopf serves the endpoint from here on
        # The handlers fence every write with elector.leading (leader.Fenced): nothing is written once
        # the renew deadline has passed, even before this process has noticed and exited; the renewal
        # thread exits the process (status 1) as soon as it has noticed.
        keeper = renewal.start()
        operator_task = asyncio.ensure_future(kopf.operator(
            clusterwide=not args.namespace, namespaces=args.namespace, standalone=True,
            liveness_endpoint=args.liveness or None, stop_flag=stop, memo=kopf.Memo(may_write=elector.leading)))
        await asyncio.wait({operator_task, keeper}, return_when=asyncio.FIRST_COMPLETED)
        return 0
    finally:
        renewal.stop()
        await elector.release()
        await kube.close()


async def standby_health(url: str) -> web.AppRunner | None:
    """/healthz answered while waiting for the Lease: a standby is healthy, it just does not lead."""
    if not url:
        return None
    parts = urlsplit(url)
    app = web.Application()

    async def standby(_: web.Request) -> web.Response:
        return web.json_response({"standby": True})

    app.router.add_get(parts.path or "/", standby)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, parts.hostname or "0.0.0.0", parts.port or 80).start()
    return runner


def watches_probe(**_: object) -> str:
    """/healthz (kopf's liveness endpoint) fails while one of our watches (the flavor ConfigMap...) has
    been down for more than 30 s. kopf's own watches frame lines of any size and relist on 410 by
    themselves, and retry forever."""
    from inference_operator.kube.watch import WATCHES

    failing = WATCHES.failing()
    if failing:
        raise kopf.PermanentError(f"watches down: {', '.join(failing)}")
    return "ok"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log_format = {"plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL, "json": kopf.LogFormat.JSON}
    kopf.configure(verbose=args.verbose, log_format=log_format[args.log_format])
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if not args.verbose:  # one line per handled event is noise; transitions are logged by reconcile
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port)
    from inference_operator import handlers  # noqa: F401 - registers the handlers

    kopf.on.probe(id="watches")(watches_probe)

    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
