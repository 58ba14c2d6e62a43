"""Keep the operator process lean: it never loads the client libraries kopf would import but it never calls.

kopf imports the `kubernetes` and `kubernetes_asyncio` clients whenever they are installed, only to
recognise their model objects if a handler passed one (kopf/_cogs/helpers/thirdparty.py); we hand it dicts.
Each pulls in thousands of generated classes. Without them the operator's modules take 53 MB resident
instead of 63 MB with the runtime dependencies only (as in the image: `kubernetes` is one, for the kubeconfig
helper, a process of its own), and 54 MB instead of 91 MB in the development venv, where `kubernetes_asyncio`
is installed too. Why this and not a kopf setting: docs/architecture.md, "Where the operator goes around kopf".
Marking them absent before kopf is imported makes kopf's `import` fail as if they were not installed.
Only the operator process does this (its entry points below), never a process that imports the
operator's modules beside those clients (the tests).
"""

from __future__ import annotations

import sys

OPTIONAL_CLIENTS = ("kubernetes", "kubernetes_asyncio", "pykube")


def skip_optional_clients() -> None:
    """Make the optional clients unimportable in this process (those already imported stay)."""
    for name in OPTIONAL_CLIENTS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "import halted", an ImportError


def main() -> int:
    """The `inference-operator` console script: lean, then the operator."""
    skip_optional_clients()
    from inference_operator.__main__ import main as operator_main  # noqa: PLC0415 - after the skip, on purpose

    return operator_main()
