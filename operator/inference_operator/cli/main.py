"""`kubectl-infsvc`: a kubectl plugin (`kubectl infsvc invoke|get|describe`) for InferenceServices.

It reads the API through kube/ (the project's one client) with the user's kubeconfig (`--kubeconfig`,
else $KUBECONFIG, else ~/.kube/config) and its own identity: it can read only what the user may read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inference_operator.api.v1alpha1 import API_VERSION, KIND
from inference_operator.cli import invoke, show
from inference_operator.gateway.entries import decode_secret
from inference_operator.kube.client import Kube
from inference_operator.kube.kubeconfig import ConfigError, Connection
from inference_operator.kube.paths import resource_path
from inference_operator.ports import ApiError

FIELD_MANAGER = "kubectl-infsvc"  # never writes; named for the API server's audit log


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kubectl infsvc", description="Call and inspect InferenceServices.")
    top.add_argument("--kubeconfig", default=None, help="kubeconfig file(s) (default: $KUBECONFIG, ~/.kube/config)")
    top.add_argument("--context", default=None, help="kubeconfig context (default: the current one)")
    commands = top.add_subparsers(dest="command", required=True)
    for name, text in (("get", "list services, or show one, as kubectl get does"),
                       ("describe", "a service's status, conditions, models and events")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("service", nargs="?" if name == "get" else None)
        _namespace_flags(sub)
    call = commands.add_parser("invoke", help="call a service through the gateway, signed with an app's key")
    call.add_argument("service")
    _namespace_flags(call, all_namespaces=False)
    call.add_argument("--app", help="the app's Secret (appKey, appSecret) to sign with (default: the service's "
                                    "first app)")
    call.add_argument("--data", "-d", default="", help="the body: text, or @file (@- for stdin)")
    call.add_argument("--path", default="", help="path after the service's address, e.g. /v1/chat/completions")
    call.add_argument("--stream", action="store_true", help='ask for server-sent events ("stream": true) and print '
                                                           "each event's data as it arrives")
    call.add_argument("--gateway", help="gateway base URL to use instead of status.accessAddress's")
    call.add_argument("-H", "--header", action="append", default=[], help="extra header, Name: value")
    call.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each chunk of the answer")
    return top


def _namespace_flags(sub: argparse.ArgumentParser, all_namespaces: bool = True) -> None:
    sub.add_argument("-n", "--namespace", default=None,
                     help="namespace (default: the kubeconfig context's, else default, as kubectl)")
    if all_namespaces:
        sub.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")


def read_body(data: str) -> bytes:
    if data == "@-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        return Path(data[1:]).read_bytes()
    return data.encode()


def headers_of(values: list[str]) -> dict[str, str]:
    found = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            raise invoke.InvokeError(f"--header expects 'Name: value', got {value!r}")
        found[name.strip()] = text.strip()
    return found


async def _service(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    body = await kube.read(API_VERSION, KIND, namespace, name)
    if body is None:
        raise invoke.InvokeError(f'inferenceservices.inference.io "{name}" not found in namespace {namespace}')
    return body


async def _credentials(kube: Kube, namespace: str, secret: str) -> tuple[str, str]:
    body = await kube.read("v1", "Secret", namespace, secret)
    if body is None:
        raise invoke.InvokeError(f'secret "{secret}" not found in namespace {namespace}')
    data = decode_secret(body.get("data"))
    key, app_secret = data.get("appKey", "").strip(), data.get("appSecret", "").strip()
    if not key or not app_secret:
        raise invoke.InvokeError(f"secret {namespace}/{secret} has no appKey and appSecret to sign with")
    return key, app_secret


async def run_invoke(kube: Kube, args: argparse.Namespace) -> int:
    service = await _service(kube, args.namespace, args.service)
    secret = invoke.app_secret_name(service, args.app)
    credentials = await _credentials(kube, args.namespace, secret) if secret else None
    call = invoke.build_call(invoke.address(service, args.gateway), read_body(args.data), credentials, args.path,
                             args.stream, headers_of(args.header))
    return await invoke.send(call, args.timeout)


async def run_get(kube: Kube, args: argparse.Namespace) -> int:
    if args.service:
        bodies = [await _service(kube, args.namespace, args.service)]
    else:
        listed = await kube.get_json(resource_path(API_VERSION, KIND, None if args.all_namespaces else args.namespace))
        bodies = listed.get("items") or []
    text = show.get_table(bodies, datetime.now(UTC), args.all_namespaces and not args.service)
    print(text or f"No resources found in {'any' if args.all_namespaces else args.namespace} namespace.")
    return 0


async def run_describe(kube: Kube, args: argparse.Namespace) -> int:
    service = await _service(kube, args.namespace, args.service)
    uid = (service.get("metadata") or {}).get("uid", "")
    events = await kube.get_json(resource_path("v1", "Event", args.namespace),
                                 [("fieldSelector", f"involvedObject.uid={uid}")])
    print(show.describe(service, events.get("items") or [], datetime.now(UTC)))
    return 0


COMMANDS = {"invoke": run_invoke, "get": run_get, "describe": run_describe}


async def _main(args: argparse.Namespace) -> int:
    paths = args.kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    connection = await asyncio.to_thread(Connection.from_kubeconfig, paths, args.context)
    kube = Kube(connection, FIELD_MANAGER, pool_limit=4)
    args.namespace = args.namespace or connection.namespace or "default"
    try:
        return await COMMANDS[args.command](kube, args)
    finally:
        await kube.close()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except (invoke.InvokeError, ConfigError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ApiError as err:
        print(f"error: the API server answered {err.status}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
