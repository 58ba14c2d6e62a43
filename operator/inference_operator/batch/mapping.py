"""CSV rows -> request JSON, by a ModelArts-style `mapping_rule` (docs/batch.md).

ModelArts batch services with mapping_type csv describe the request body as a JSON-Schema-like tree
whose leaves carry the CSV column to read (ModelArts create-service API, config[].mapping_rule):

    {"type": "object", "properties": {"data": {"type": "object", "properties": {"req_data": {
        "type": "array", "items": [{"type": "object", "properties": {
            "input_1": {"type": "number", "index": 0},
            "input_2": {"type": "string", "index": 1}}}]}}}}}

gives, for the row ``5.1,setosa``: ``{"data": {"req_data": [{"input_1": 5.1, "input_2": "setosa"}]}}``.

- A node with ``index`` is a leaf: the cell at that 0-based column (an int), or at the column of that
  header name (a string). Its ``type`` converts the text: ``string`` (default) as is; ``number`` an
  int when the text is integral, else a float; ``integer``; ``boolean`` (true/false/1/0/yes/no). An
  empty cell of a non-string leaf is null.
- ``type: object`` builds its ``properties``; ``type: array`` builds ``items``: a list of nodes gives
  one element per node, a single node gives a one-element array. ``type`` may be left out when
  ``index``, ``properties`` or ``items`` makes it plain.
- The first line of each CSV file is a header, and skipped, when some leaf names its column or the
  root has ``"header": true``; otherwise every line is a row (ModelArts' convention).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

LEAF_TYPES = ("string", "number", "integer", "boolean")
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n"}


class RuleError(ValueError):
    """The mapping rule itself is malformed; names the node, e.g. mappingRule.properties.x.index."""


class MappingError(ValueError):
    """One row cannot be mapped (a missing column, a cell that is not a number)."""


def _kind(node: Mapping[str, Any], path: str) -> str:
    if not isinstance(node, Mapping):
        raise RuleError(f"{path}: expected an object, got {type(node).__name__}")
    if "index" in node:
        return "leaf"
    kind = node.get("type") or ("object" if "properties" in node else "array" if "items" in node else "")
    if kind not in ("object", "array"):
        raise RuleError(f"{path}: needs index (a leaf), properties (type object) or items (type array)")
    return str(kind)


def validate_rule(rule: Any, path: str = "mappingRule") -> None:
    """Raise RuleError naming the first bad node; accepts the ModelArts shape described above."""
    kind = _kind(rule, path)
    if kind == "leaf":
        index, leaf_type = rule["index"], rule.get("type", "string")
        if isinstance(index, bool) or not isinstance(index, int | str) or (isinstance(index, int) and index < 0):
            raise RuleError(f"{path}.index: must be a column number (0, 1, ...) or a header name")
        if leaf_type not in LEAF_TYPES:
            raise RuleError(f"{path}.type: {leaf_type!r} is not one of {', '.join(LEAF_TYPES)}")
    elif kind == "object":
        properties = rule.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            raise RuleError(f"{path}.properties: must be a non-empty object")
        for name, sub in properties.items():
            validate_rule(sub, f"{path}.properties.{name}")
    else:
        items = rule.get("items")
        if isinstance(items, Sequence) and not isinstance(items, str):
            if not items:
                raise RuleError(f"{path}.items: must not be empty")
            for i, sub in enumerate(items):
                validate_rule(sub, f"{path}.items[{i}]")
        else:
            validate_rule(items, f"{path}.items")


def _leaves(node: Any) -> list[Mapping[str, Any]]:
    if not isinstance(node, Mapping):
        return []
    if "index" in node:
        return [node]
    found: list[Mapping[str, Any]] = []
    for sub in (node.get("properties") or {}).values():
        found += _leaves(sub)
    items = node.get("items")
    for sub in items if isinstance(items, list) else [items]:
        found += _leaves(sub)
    return found


def uses_header(rule: Mapping[str, Any]) -> bool:
    """True when the CSV files' first line names the columns (and is not a row)."""
    return rule.get("header") is True or any(isinstance(leaf["index"], str) for leaf in _leaves(rule))


def _convert(text: str, leaf_type: str) -> Any:
    if leaf_type == "string":
        return text
    value = text.strip()
    if not value:
        return None
    try:
        if leaf_type == "integer":
            return int(value) if value.lstrip("+-").isdigit() else int(float(value))
        if leaf_type == "number":
            return int(value) if value.lstrip("+-").isdigit() else float(value)
    except ValueError:
        raise MappingError(f"{text!r} is not {'an integer' if leaf_type == 'integer' else 'a number'}") from None
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise MappingError(f"{text!r} is not a boolean")


def _cell(row: Sequence[str], index: int | str, header: Mapping[str, int] | None) -> str:
    if isinstance(index, str):
        if header is None or index not in header:
            raise MappingError(f"column {index!r} is not in the CSV header")
        index = header[index]
    if index >= len(row):
        raise MappingError(f"column {index} is missing (the row has {len(row)} columns)")
    return row[index]


def map_row(rule: Mapping[str, Any], row: Sequence[str], header: Mapping[str, int] | None = None) -> Any:
    """Build the request JSON for one CSV row; MappingError says which cell is wrong."""
    if "index" in rule:
        text = _cell(row, rule["index"], header)
        try:
            return _convert(text, rule.get("type", "string"))
        except MappingError as err:
            raise MappingError(f"column {rule['index']!r}: {err}") from None
    if rule.get("type") == "object" or "properties" in rule:
        return {name: map_row(sub, row, header) for name, sub in rule["properties"].items()}
    items = rule["items"]
    if isinstance(items, list):
        return [map_row(sub, row, header) for sub in items]
    return [map_row(items, row, header)]
