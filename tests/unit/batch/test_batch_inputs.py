"""inputs.py: listing, CSV rows, request bodies and output names, on real files in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference_operator.batch.inputs import (
    content_type,
    count_inputs,
    has_output,
    iter_inputs,
    list_files,
    output_path,
    request_body,
)
from inference_operator.batch.mapping import MappingError


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write(root, "b.txt", "bee")
    write(root, "a.json", '{"x": 1}')
    write(root, "sub/c.jpg", "jpeg")
    write(root, ".hidden", "no")
    write(root, ".cache/d.txt", "no")
    write(root, "data/one.csv", "1,2\n\n3,4\n")
    write(root, "data/two.CSV", "5,6\n")
    return root


class TestListing:
    def test_files_sorted_hidden_skipped(self, src: Path) -> None:
        assert [p.as_posix() for p in list_files(src)] == [
            "a.json", "b.txt", "data/one.csv", "data/two.CSV", "sub/c.jpg"]

    def test_csv_only(self, src: Path) -> None:
        assert [p.as_posix() for p in list_files(src, ".csv")] == ["data/one.csv", "data/two.CSV"]

    def test_file_inputs(self, src: Path) -> None:
        items = list(iter_inputs(src, "file"))
        assert [i.key for i in items] == ["a.json", "b.txt", "data/one.csv", "data/two.CSV", "sub/c.jpg"]
        assert items[0].output == "a.json" and items[0].row is None
        assert count_inputs(src, "file") == 5

    def test_csv_rows_skip_blank_lines(self, src: Path) -> None:
        rule = {"type": "array", "items": {"index": 0, "type": "number"}}
        items = list(iter_inputs(src, "csv", rule))
        assert [(i.key, i.output, i.row) for i in items] == [
            ("data/one.csv#1", "data/one.csv.row1", ("1", "2")),
            ("data/one.csv#2", "data/one.csv.row2", ("3", "4")),
            ("data/two.CSV#1", "data/two.CSV.row1", ("5", "6")),
        ]
        assert count_inputs(src, "csv", rule) == 3

    def test_csv_header(self, tmp_path: Path) -> None:
        write(tmp_path, "h.csv", "\ufeffname,age\nbo,31\n")
        rule = {"properties": {"age": {"index": "age", "type": "integer"}}}
        (item,) = iter_inputs(tmp_path, "csv", rule)
        assert item.key == "h.csv#1" and item.header == {"name": 0, "age": 1}
        assert request_body(item, rule) == (b'{"age": 31}', "application/json")


class TestBodiesAndOutputs:
    @pytest.mark.parametrize(("name", "ctype"), [
        ("a.json", "application/json"), ("b.TXT", "text/plain"), ("c.jpg", "image/jpeg"),
        ("d.png", "image/png"), ("e.csv", "text/csv"), ("f.unknownext", "application/octet-stream"),
    ])
    def test_content_type(self, name: str, ctype: str) -> None:
        assert content_type(Path(name)) == ctype

    def test_file_body(self, src: Path) -> None:
        item = next(iter_inputs(src, "file"))
        assert request_body(item, None) == (b'{"x": 1}', "application/json")

    def test_row_body_and_mapping_error(self, src: Path) -> None:
        rule = {"properties": {"a": {"index": 1, "type": "integer"}}}
        first = next(iter_inputs(src, "csv", rule))
        assert json.loads(request_body(first, rule)[0]) == {"a": 2}
        with pytest.raises(MappingError):
            request_body(first, {"properties": {"a": {"index": 5}}})

    def test_output_names(self, tmp_path: Path, src: Path) -> None:
        item = list(iter_inputs(src, "file"))[-1]
        assert output_path(tmp_path, item, "application/json; charset=utf-8") == tmp_path / "sub/c.jpg.json"
        assert output_path(tmp_path, item, "image/png") == tmp_path / "sub/c.jpg.out"
        assert not has_output(tmp_path, item)
        write(tmp_path, "sub/c.jpg.out", "x")
        assert has_output(tmp_path, item)
