"""Who this process is, as the API server's audit log and the Lease show it."""

from __future__ import annotations

import os
import socket

from inference_operator import __version__


def identity() -> str:
    """The pod's name (its hostname in a pod, or POD_NAME) and the pid: unique per replica, also when two
    replicas share a host."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{os.getpid()}"


def user_agent() -> str:
    """`inference-operator/<version> (<identity>)`: every request of a replica carries it, so the audit log
    attributes each write to one replica."""
    return f"inference-operator/{__version__} ({identity()})"
