"""docs/architecture.md's layer table is the import-linter layers contract that `make lint` checks."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (\d+) \| (.+?) \| .+\|$", re.MULTILINE)


def contract_layers() -> list[set[str]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    [layers] = [c["layers"] for c in config["tool"]["importlinter"]["contracts"]
                if c["type"] == "layers" and "containers" not in c]
    return [{name.strip().removeprefix("inference_operator.") for name in re.split(r"[|:]", layer)}
            for layer in layers]


def documented_layers() -> list[set[str]]:
    text = (REPO / "docs" / "architecture.md").read_text()
    return [set(re.findall(r"`([\w.]+)`", modules)) for _, modules in ROW.findall(text)]


def test_the_documented_layers_are_the_checked_ones():
    assert documented_layers() == contract_layers()


PKG = REPO / "operator" / "inference_operator"
FIELD_ROW = re.compile(r"^\| `([\w.\[\]]+)` \| (.+) \|$", re.MULTILINE)


def spec_fields() -> dict[str, tuple[str, str]]:
    """Every spec field path (`models[].scaling.minReplicas`) -> (python name, alias), from the models."""
    import typing

    from pydantic import BaseModel

    from inference_operator.api import v1alpha1

    def submodel(annotation: object) -> tuple[type[BaseModel] | None, bool]:
        args = typing.get_args(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation, False
        if typing.get_origin(annotation) is list and args and isinstance(args[0], type) \
                and issubclass(args[0], BaseModel):
            return args[0], True
        for arg in args:  # X | None
            model, listed = submodel(arg)
            if model is not None:
                return model, listed
        return None, False

    fields: dict[str, tuple[str, str]] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            path = prefix + (info.alias or name)
            fields[path] = (name, info.alias or name)
            inner, listed = submodel(info.annotation)
            if inner is not None:
                walk(inner, path + ("[]." if listed else "."))

    walk(v1alpha1.InferenceServiceSpec, "")
    return fields


def field_table() -> dict[str, list[list[str]]]:
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text[text.index("## From a spec field to its code"):]
    rows = {}
    for path, cells in FIELD_ROW.findall(section):
        rows[path] = [re.findall(r"`([\w/]+\.py)`", cell) for cell in cells.split(" | ")]
    return rows


def test_every_spec_field_has_a_row_in_the_field_table():
    rows, fields = field_table(), spec_fields()
    assert len(fields) > 40, "the models' walk found the spec's fields"
    assert set(rows) == set(fields)


def test_every_module_the_field_table_names_exists_and_names_the_field():
    rows, fields = field_table(), spec_fields()
    named = 0
    for path, columns in rows.items():
        assert len(columns) == 4, path
        python_name, alias = fields[path]
        for module in (m for column in columns for m in column):
            source = (PKG / module).read_text()
            assert python_name in source or alias in source, f"{path}: {module} does not name {alias}"
            named += 1
    assert named > 60
