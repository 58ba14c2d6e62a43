"""The chart's values.schema.json and README values table, generated from the comments of values.yaml.

values.yaml is the one source: the comment block right above a key (same indentation, no blank line in
between) describes it, and its `# @schema <yaml>` lines (together one YAML mapping) add JSON-schema
constraints to what the default value already says (its type; a mapping with keys becomes a closed
object of those keys). `$ref: name`
points at a shape of the `# @definitions` block that ends the file. `# +docs:section=Name` starts a
section of the README table. The first paragraph of a comment is the schema's description; every
paragraph up to an example (a line shaped like YAML: `key:` alone, `- item`, or indented) is the README's.

    python hack/chart_values.py          # rewrite values.schema.json and the README table
    python hack/chart_values.py --check  # exit 1 when either is stale (tests/chart/test_values_generated.py)

A line the parser does not understand is an error, never skipped: the generated files cover every key.
Only the YAML subset values.yaml uses is read (block mappings, flow values); yaml.safe_load reads the values.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "charts" / "inference-operator"
BEGIN = "<!-- values:begin (generated from values.yaml by `make chart-values`; edit values.yaml, not this table) -->"
END = "<!-- values:end -->"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_./-]+):(?: (?P<rest>.*))?$")
EXAMPLE = re.compile(r"^([\w./-]+:$|- |\s)")  # where the prose of a comment ends and its example begins
SHAPED = {"$ref", "allOf", "anyOf", "oneOf", "additionalProperties", "properties", "type"}  # a leaf, not walked


class ValuesError(ValueError):
    """values.yaml does not follow the conventions above (the message names the line)."""


@dataclass
class Key:
    """What the comments say about one key of values.yaml."""

    path: tuple[str, ...]
    section: str
    prose: list[str] = field(default_factory=list)  # comment lines, "" between paragraphs
    schema: dict[str, Any] = field(default_factory=dict)

    def paragraphs(self) -> list[str]:
        """The prose paragraphs, up to the first example (a line shaped like YAML: `key:`, `- `, indented)."""
        out: list[str] = []
        current: list[str] = []
        for line in [*self.prose, ""]:
            if EXAMPLE.match(line):
                break
            if line:
                current.append(line)
            elif current:
                out.append(" ".join(current))
                current = []
        if current:
            out.append(" ".join(current))
        return out

    @property
    def description(self) -> str:
        paragraphs = self.paragraphs()
        return _no_example_intro(paragraphs[0]) if paragraphs else ""

    @property
    def long_description(self) -> str:
        return _no_example_intro(" ".join(self.paragraphs()))


def _no_example_intro(text: str) -> str:
    return re.sub(r"\s*(For example|e\.g\.):?$", "", text.strip()).rstrip()


def _refs(node: Any) -> Any:
    """`$ref: port` is short for `$ref: '#/definitions/port'`."""
    if isinstance(node, dict):
        return {k: (f"#/definitions/{v}" if k == "$ref" and "#" not in v else _refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_refs(v) for v in node]
    return node


def _annotation(lines: list[str], where: str) -> dict[str, Any]:
    if not lines:
        return {}
    try:
        parsed = yaml.safe_load("\n".join(lines))
    except yaml.YAMLError as exc:
        raise ValuesError(f"{where}: @schema is not YAML: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValuesError(f"{where}: @schema must be a mapping, got {parsed!r}")
    return _refs(parsed)


def parse(text: str) -> tuple[dict[tuple[str, ...], Key], dict[str, Any]]:
    """Every key's comments, by path, and the shapes of the `# @definitions` block."""
    keys: dict[tuple[str, ...], Key] = {}
    stack: list[tuple[int, tuple[str, ...]]] = []
    pending: list[str] = []
    pending_indent = -1
    section = ""
    leaf_indent: int | None = None  # inside a mapping whose schema is given whole: its keys are its value
    definitions: list[str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        where = f"values.yaml:{number}"
        stripped = line.strip()
        if definitions is not None:
            if stripped and not stripped.startswith("#"):
                raise ValuesError(f"{where}: only comments may follow `# @definitions`")
            definitions.append(re.sub(r"^# ?", "", stripped))
            continue
        if not stripped:
            pending, pending_indent = [], -1
            continue
        indent = len(line) - len(line.lstrip(" "))
        if stripped.startswith("#"):
            content = re.sub(r"^# ?", "", stripped)
            if content.startswith("+docs:section="):
                section, pending, pending_indent = content.partition("=")[2].strip(), [], -1
            elif content == "@definitions":
                definitions = []
            elif leaf_indent is None or indent <= leaf_indent:
                if indent != pending_indent:  # a comment at another depth belongs to something else
                    pending, pending_indent = [], indent
                pending.append(content)
            continue
        match = KEY.match(line)
        if not match:
            if leaf_indent is not None and indent > leaf_indent:
                continue
            raise ValuesError(f"{where}: not a `key: value` line the generator understands: {line!r}")
        if leaf_indent is not None:
            if indent > leaf_indent:
                continue
            leaf_indent = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (*(stack[-1][1] if stack else ()), match["key"])
        prose = [c for c in pending if not c.startswith("@schema")] if pending_indent == indent else []
        notes = [c.removeprefix("@schema").removeprefix(" ") for c in pending if c.startswith("@schema")]
        while prose and not prose[-1]:
            prose.pop()
        key = Key(path, section, prose, _annotation(notes if pending_indent == indent else [], where))
        keys[path] = key
        stack.append((indent, path))
        if SHAPED & key.schema.keys():
            leaf_indent = indent
        pending, pending_indent = [], -1
    shapes = _annotation(definitions or [], "values.yaml @definitions")
    return keys, shapes


def _type(value: Any, where: str) -> str:
    for python, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                         (list, "array"), (dict, "object")):
        if isinstance(value, python):
            return name
    raise ValuesError(f"{where}: no type can be inferred from {value!r}; give one with @schema")


def _schema(value: Any, path: tuple[str, ...], keys: dict[tuple[str, ...], Key]) -> dict[str, Any]:
    where = ".".join(path)
    if path not in keys:
        raise ValuesError(f"{where}: a key the line parser did not see (unsupported YAML?)")
    key = keys[path]
    node: dict[str, Any] = {}
    if "$ref" in key.schema:
        node["$ref"] = key.schema["$ref"]
    elif not SHAPED & key.schema.keys() or "properties" in key.schema or "additionalProperties" in key.schema:
        node["type"] = _type(value, where)
    if key.description:
        node["description"] = key.description
    node.update({k: v for k, v in key.schema.items() if k != "$ref"})
    if isinstance(value, dict) and not SHAPED & key.schema.keys():
        if not value:
            raise ValuesError(f"{where}: an empty mapping needs an @schema saying what it may hold")
        node["additionalProperties"] = False
        node["properties"] = {k: _schema(v, (*path, k), keys) for k, v in value.items()}
    if isinstance(value, list) and "items" not in node and "$ref" not in node:
        raise ValuesError(f"{where}: a list needs `@schema items: ...`")
    return node


def schema(text: str) -> dict[str, Any]:
    keys, shapes = parse(text)
    values = yaml.safe_load(text)
    properties: dict[str, Any] = {
        # helm hands every chart the parent's `global` values; a closed schema must let them through
        "global": {"type": "object", "description": "Helm global values (parent charts); unused here."},
    }
    properties.update({k: _schema(v, (k,), keys) for k, v in values.items()})
    return {"$schema": "http://json-schema.org/draft-07/schema#", "title": "inference-operator chart values",
            "type": "object", "additionalProperties": False, "properties": properties, "definitions": shapes}


def _cell(text: str) -> str:
    """Markdown table cell: pipes escaped, and `<placeholders>` outside code spans kept visible."""
    parts = text.replace("|", "\\|").replace("\n", " ").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))


def _default(value: Any) -> str:
    if isinstance(value, str):
        shown = value or '""'
    elif isinstance(value, bool):
        shown = str(value).lower()
    elif isinstance(value, list | dict):
        shown = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    else:
        shown = str(value)
    return f"`{_cell(shown)}`"


def table(text: str) -> str:
    """The README's values section body: one table per section, a row per documented key."""
    keys, _ = parse(text)
    values = yaml.safe_load(text)
    rows: dict[str, list[str]] = {}

    def walk(value: Any, path: tuple[str, ...]) -> None:
        key = keys[path]
        walked = isinstance(value, dict) and value and not SHAPED & key.schema.keys()
        if not walked or key.prose:
            if not key.long_description:
                raise ValuesError(f"{'.'.join(path)}: no comment describes it in values.yaml")
            default = "" if walked else _default(value)
            rows.setdefault(key.section, []).append(
                f"| `{'.'.join(path)}` | {default} | {_cell(key.long_description)} |")
        if walked:
            for k, v in value.items():
                walk(v, (*path, k))

    for k, v in values.items():
        walk(v, (k,))
    out = []
    for section, lines in rows.items():
        out += [f"### {section}" if section else "### Values", "", "| key | default | description |",
                "|---|---|---|", *lines, ""]
    return "\n".join(out).rstrip() + "\n"


def readme(current: str, values_text: str) -> str:
    before, sep, rest = current.partition(BEGIN)
    _, sep2, after = rest.partition(END)
    if not sep or not sep2:
        raise ValuesError(f"the chart README has no `{BEGIN}` ... `{END}` block")
    return f"{before}{BEGIN}\n\n{table(values_text)}\n{END}{after}"


def outputs(chart: Path = CHART) -> dict[Path, str]:
    """Each generated file and the text it should have."""
    text = (chart / "values.yaml").read_text(encoding="utf-8")
    return {chart / "values.schema.json": json.dumps(schema(text), indent=2) + "\n",
            chart / "README.md": readme((chart / "README.md").read_text(encoding="utf-8"), text)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale")
    parser.add_argument("--chart", type=Path, default=CHART)
    args = parser.parse_args(argv)
    try:
        wanted = outputs(args.chart)
    except ValuesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = [p for p, text in wanted.items() if p.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path} is stale: run `make chart-values`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
