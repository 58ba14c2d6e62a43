"""Fixed name -> address answers in front of the system resolver (like curl's --resolve).

For FQDN EndpointSlices whose names the cluster DNS does not know, e.g. a model outside the pod
network, and for tests whose model listens on loopback (EndpointSlices refuse loopback IPs).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver


class StaticResolver(AbstractResolver):
    def __init__(self, overrides: Mapping[str, str]) -> None:
        self.overrides = dict(overrides)
        self.fallback = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        address = self.overrides.get(host)
        if address is None:
            return await self.fallback.resolve(host, port, family)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [{"hostname": host, "host": address, "port": port, "family": family, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        await self.fallback.close()


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """["name=ip", ...] -> {name: ip}; a malformed pair raises ValueError naming it."""
    out = {}
    for pair in pairs:
        name, sep, address = pair.partition("=")
        if not sep or not name or not address:
            raise ValueError(f"--resolve expects NAME=ADDRESS, got {pair!r}")
        out[name] = address
    return out
