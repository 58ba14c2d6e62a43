"""Drift: which fields the operator sets on a child no longer hold the value it set.

A child is applied when its desired manifest's fingerprint changes; a hand edit (`kubectl set image`,
`kubectl scale`, `kubectl edit`) leaves the fingerprint as it was, so the live object itself is
compared with the desired manifest: every value the operator sets must be in the live object
("desired is a subset of live"). What others add is left alone: keys the operator does not set
(API defaults, annotations of other tools), and extra elements of keyed lists (an env var another
tool added), which re-applying would not remove either, so they can never make the operator loop.
Quantities compare by value, as the API server rewrites them into canonical form ("2048Mi" -> "2Gi").
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIXES = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60, "n": Decimal("1e-9"), "u": Decimal("1e-6"),
    "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
}
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?")
_QUANTITY_PARENTS = frozenset({"limits", "requests"})  # container resources
_QUANTITY_KEYS = frozenset({"sizeLimit", "averageValue"})  # emptyDir, HPA metric targets
MAX_PATHS = 20  # an Event names a few fields, not a whole rewritten object
WRITERS = "writers"  # key of a slimmed child: the other writers of its metadata or spec (spec_writers)


def parse_quantity(text: Any) -> Decimal | None:
    """A Kubernetes quantity ("500m", "2Gi", "1e3", 4) as a number; None when it is not one."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return Decimal(str(text))
    if not isinstance(text, str) or len(text) > 64:
        return None
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E") and len(suffix) > 1:
            return Decimal(number) * Decimal(10) ** int(suffix[1:])
        return Decimal(number) * _SUFFIXES[suffix]
    except (InvalidOperation, ValueError, OverflowError):
        return None


def _is_quantity_field(key: str, parent: str) -> bool:
    return parent in _QUANTITY_PARENTS or key in _QUANTITY_KEYS or (key == "value" and parent == "target")


def _same_leaf(want: Any, have: Any, key: str, parent: str) -> bool:
    if want == have and isinstance(want, bool) == isinstance(have, bool):
        return True
    if _is_quantity_field(key, parent):
        wanted, held = parse_quantity(want), parse_quantity(have)
        return wanted is not None and wanted == held
    return False


def _empty(value: Any) -> bool:
    """The API server drops empty maps and lists it stores; wanting one is met by its absence."""
    return value is None or (isinstance(value, Mapping | list) and not value)


def _label(item: Any, index: int) -> str:
    """A list element in a path: its name when it has one (containers[model]), else its index."""
    name = item.get("name") if isinstance(item, Mapping) else None
    return name if isinstance(name, str) else str(index)


def differences(want: Any, have: Any, path: str = "", key: str = "", parent: str = "") -> list[str]:
    """Paths (e.g. spec.template.spec.containers[model].image) whose desired value live lacks."""
    out: list[str] = []
    _diff(want, have, path, key, parent, out)
    return out


def _diff(want: Any, have: Any, path: str, key: str, parent: str, out: list[str]) -> None:
    if len(out) >= MAX_PATHS:
        return
    if isinstance(want, Mapping):
        _diff_map(want, have, path, key, out)
    elif isinstance(want, list):
        _diff_list(want, have, path, key, out)
    elif not _same_leaf(want, have, key, parent):
        out.append(path)


def _diff_map(want: Mapping[str, Any], have: Any, path: str, key: str, out: list[str]) -> None:
    if not isinstance(have, Mapping):
        if not (_empty(want) and have is None):
            out.append(path)
        return
    for name, value in want.items():
        inner = f"{path}.{name}" if path else name
        if name in have:
            _diff(value, have[name], inner, name, key, out)
        elif not _empty(value) and len(out) < MAX_PATHS:
            out.append(inner)


def _diff_list(want: Sequence[Any], have: Any, path: str, key: str, out: list[str]) -> None:
    if not isinstance(have, list):
        if not (_empty(want) and have is None):
            out.append(path)
        return
    if len(have) == len(want):
        for index, (wanted, held) in enumerate(zip(want, have, strict=True)):
            _diff(wanted, held, f"{path}[{_label(wanted, index)}]", key, key, out)
        return
    if len(have) < len(want) or not all(isinstance(w, Mapping) for w in want):
        out.append(path)  # an element of ours is gone, or an atomic list (args) was rewritten
        return
    for index, wanted in enumerate(want):  # others added elements to a keyed list: ours must still be there
        inner = f"{path}[{_label(wanted, index)}]"
        name = wanted.get("name")
        named = [h for h in have if isinstance(h, Mapping) and name is not None and h.get("name") == name]
        if len(named) == 1:
            _diff(wanted, named[0], inner, key, key, out)
        elif not any(not differences(wanted, held, key=key, parent=key) for held in have):
            out.append(inner)


def drifted(desired: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """The fields of a child's metadata and spec that no longer hold what the operator set."""
    found: list[str] = []
    for part in ("metadata", "spec"):
        if part in desired:
            found.extend(differences(desired[part], live.get(part), part))
    return found[:MAX_PATHS]



def spec_writers(managed_fields: Sequence[Mapping[str, Any]] | None, ours: Container[str]) -> list[list[str]]:
    """[manager, fieldsV1 as compact JSON] of each other writer of a child's metadata or spec (status
    writers and the operator's own managers left out): usually nothing, a few hundred bytes after a
    hand edit, where keeping managedFields whole would cost kilobytes per child."""
    return [[str(entry["manager"]), json.dumps(entry.get("fieldsV1") or {}, separators=(",", ":"))]
            for entry in managed_fields or ()
            if entry.get("manager") and entry["manager"] not in ours and entry.get("subresource") != "status"]


def _owns(fields: Any, rest: str) -> bool:
    """Whether a fieldsV1 tree holds the path `rest` (as `differences` writes it) or a field under it."""
    if not rest:
        return True
    if not isinstance(fields, Mapping):
        return False
    for key, inner in fields.items():
        if key.startswith("f:"):
            name = key[2:]
            after = rest[len(name):]
            if rest.startswith(name) and after[:1] in ("", ".", "[") and _owns(inner, after.removeprefix(".")):
                return True
        elif key.startswith(("k:", "v:", "i:")) and rest.startswith("["):
            label, _, after = rest[1:].partition("]")
            try:
                item = json.loads(key[2:])
            except ValueError:
                continue
            named = not isinstance(item, Mapping) or label in {str(v) for v in item.values()} or label.isdigit()
            if named and _owns(inner, after.removeprefix(".")):
                return True
    return False


def restorers_of(writers: Sequence[Sequence[str]] | None, paths: Sequence[str]) -> list[str]:
    """The other writers that own one of the drifted paths: who made the change being undone."""
    found = set()
    for manager, fields in writers or ():
        try:
            tree = json.loads(fields)
        except ValueError:
            continue
        if any(_owns(tree, path) for path in paths):
            found.add(manager)
    return sorted(found)
