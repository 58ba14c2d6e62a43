"""mapping.py: ModelArts-style mapping rules turn CSV rows into request JSON."""

from __future__ import annotations

from typing import Any

import pytest

from inference_operator.batch.mapping import MappingError, RuleError, map_row, uses_header, validate_rule

# The shape of the ModelArts create-service example for a csv batch service.
MODELARTS_RULE: dict[str, Any] = {"type": "object", "properties": {"data": {"type": "object", "properties": {
    "req_data": {"type": "array", "items": [{"type": "object", "properties": {
        "input_1": {"type": "number", "index": 0},
        "input_2": {"type": "number", "index": 1},
        "input_3": {"type": "string", "index": 2},
    }}]}}}}}


class TestMapRow:
    def test_modelarts_rule(self) -> None:
        validate_rule(MODELARTS_RULE)
        assert map_row(MODELARTS_RULE, ["5.1", "3", "setosa"]) == {
            "data": {"req_data": [{"input_1": 5.1, "input_2": 3, "input_3": "setosa"}]}}

    @pytest.mark.parametrize(("leaf_type", "cell", "value"), [
        ("string", " a b ", " a b "),
        ("number", "7", 7),
        ("number", "-2.5", -2.5),
        ("number", "1e3", 1000.0),
        ("number", "", None),
        ("integer", "42", 42),
        ("integer", "4.0", 4),
        ("boolean", "TRUE", True),
        ("boolean", "0", False),
        ("boolean", " ", None),
    ])
    def test_leaf_types(self, leaf_type: str, cell: str, value: Any) -> None:
        assert map_row({"type": leaf_type, "index": 0}, [cell]) == value

    def test_types_default_from_shape(self) -> None:
        rule = {"properties": {"x": {"index": 1}, "all": {"items": {"index": 0, "type": "integer"}}}}
        validate_rule(rule)
        assert map_row(rule, ["3", "b"]) == {"x": "b", "all": [3]}

    def test_items_list_gives_one_element_per_node(self) -> None:
        rule = {"type": "array", "items": [{"index": 1}, {"index": 0}]}
        assert map_row(rule, ["a", "b"]) == ["b", "a"]

    def test_header_names(self) -> None:
        rule = {"properties": {"age": {"type": "integer", "index": "age"}, "name": {"index": 0}}}
        assert uses_header(rule)
        assert map_row(rule, ["bo", "31"], {"name": 0, "age": 1}) == {"age": 31, "name": "bo"}

    def test_header_flag_with_positions(self) -> None:
        assert uses_header({"header": True, "properties": {"a": {"index": 0}}})
        assert not uses_header(MODELARTS_RULE)

    @pytest.mark.parametrize(("rule", "row", "header", "words"), [
        ({"index": 3}, ["a"], None, "column 3 is missing (the row has 1 columns)"),
        ({"index": "age"}, ["a"], {"name": 0}, "column 'age' is not in the CSV header"),
        ({"index": "age"}, ["a"], None, "not in the CSV header"),
        ({"index": 0, "type": "number"}, ["abc"], None, "column 0: 'abc' is not a number"),
        ({"index": 0, "type": "integer"}, ["x"], None, "is not an integer"),
        ({"index": 0, "type": "boolean"}, ["maybe"], None, "is not a boolean"),
    ])
    def test_row_errors(self, rule: dict[str, Any], row: list[str], header: dict[str, int] | None,
                        words: str) -> None:
        with pytest.raises(MappingError, match=words.replace("(", r"\(").replace(")", r"\)")):
            map_row(rule, row, header)


class TestValidateRule:
    @pytest.mark.parametrize(("rule", "where"), [
        ({}, "mappingRule: needs index"),
        ({"type": "object", "properties": {}}, "mappingRule.properties: must be a non-empty object"),
        ({"properties": {"a": {"index": -1}}}, "mappingRule.properties.a.index: must be a column number"),
        ({"properties": {"a": {"index": True}}}, "mappingRule.properties.a.index"),
        ({"properties": {"a": {"index": 0, "type": "float"}}}, "mappingRule.properties.a.type: 'float'"),
        ({"type": "array", "items": []}, "mappingRule.items: must not be empty"),
        ({"type": "array", "items": [{"index": 0}, 3]}, r"mappingRule.items\[1\]: expected an object"),
        ({"type": "array", "items": {"type": "object"}}, "mappingRule.items.properties: must be a non-empty"),
        ({"type": "array", "items": {"type": "thing"}}, "mappingRule.items: needs index"),
    ])
    def test_bad_rules_name_the_node(self, rule: dict[str, Any], where: str) -> None:
        with pytest.raises(RuleError, match=where):
            validate_rule(rule)
