"""python -m inference_operator: run the operator (KUBECONFIG honoured, in-cluster config in a pod)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import kopf


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
    parser.add_argument("--standalone", action="store_true", default=True,
                        help="no peering: a single replica (the default)")
    return parser.parse_args(argv)


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

    asyncio.run(kopf.operator(
        clusterwide=not args.namespace, namespaces=args.namespace, standalone=args.standalone,
        liveness_endpoint=args.liveness or None,
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
