"""Run docs/argocd-health.lua the way Argo CD does: the object as the global `obj`, the script's result a table.

Argo CD evaluates health scripts with gopher-lua, a Lua 5.1; lupa's Lua 5.1 runtime is the closest match.
JSON arrays become 1-based tables and null becomes nil, as in Argo CD's conversion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lupa

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docs" / "argocd-health.lua"
HEALTH_STATES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def _table(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        table = lua.table()
        for key, item in value.items():
            if item is not None:
                table[key] = _table(lua, item)
        return table
    if isinstance(value, list):
        table = lua.table()
        for index, item in enumerate(value, start=1):
            table[index] = _table(lua, item)
        return table
    return value


def argo_health(obj: dict, script: str | None = None) -> dict[str, str]:
    """{'status': 'Healthy'|..., 'message': ...} for one InferenceService as read from the API."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=False)
    lua.globals().obj = _table(lua, obj)
    result = lua.execute(script if script is not None else SCRIPT.read_text())
    health = dict(result.items())
    assert health.get("status") in HEALTH_STATES, f"not an Argo CD health status: {health!r}"
    return health
