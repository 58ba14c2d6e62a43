"""What a batch run sends: the inputs under --src, their request bodies and their output names.

mappingType file: every regular file under src (recursively, sorted, hidden names skipped) is one
input, POSTed as the body with a Content-Type from its extension. mappingType csv: every row of every
``*.csv`` file is one input, turned into request JSON by the mapping rule (mapping.py).

Outputs mirror the inputs under dest: ``<relative path>.json`` when the model answered JSON, else
``<relative path>.out``; a CSV row n (1-based, header not counted) writes ``<relative path>.row<n>``
plus the same suffix. Listing and counting are pure functions of the directory, so a Job retried
after a crash sees the same inputs in the same order (and --resume skips the ones with an output).
"""

from __future__ import annotations

import csv
import json
import mimetypes
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_operator.batch.mapping import map_row, uses_header

OUTPUT_SUFFIXES = (".json", ".out")
_EXTRA_TYPES = {".json": "application/json", ".csv": "text/csv", ".txt": "text/plain",
                ".jsonl": "application/jsonl", ".npy": "application/octet-stream"}


@dataclass(frozen=True)
class Input:
    """One request to send: a whole file, or one CSV row (`row` set, `line` its 1-based number)."""

    key: str  # how progress and errors name it: "img/a.jpg" or "data/x.csv#3"
    path: Path
    output: str  # output path relative to dest, without the .json/.out suffix
    row: tuple[str, ...] | None = None
    header: Mapping[str, int] | None = None


def content_type(path: Path) -> str:
    """Content-Type for a file body, by extension; unknown types are application/octet-stream."""
    suffix = path.suffix.lower()
    if suffix in _EXTRA_TYPES:
        return _EXTRA_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def list_files(src: Path, suffix: str | None = None) -> list[Path]:
    """Regular files under src, relative, sorted; names starting with "." (and their trees) skipped."""
    found: list[Path] = []
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(root, name)
            if name.startswith(".") or not path.is_file():
                continue
            if suffix is None or name.lower().endswith(suffix):
                found.append(path.relative_to(src))
    return sorted(found, key=lambda p: p.as_posix())


def _csv_rows(path: Path, header: bool) -> Iterator[tuple[int, tuple[str, ...], dict[str, int] | None]]:
    """(row number, cells, header index) per non-empty data row of one CSV file."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        names: dict[str, int] | None = None
        if header:
            first = next(reader, None)
            names = {name.strip(): i for i, name in enumerate(first or [])}
        number = 0
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            number += 1
            yield number, tuple(cells), names


def iter_inputs(src: Path, mapping_type: str, rule: Mapping[str, Any] | None = None) -> Iterator[Input]:
    """Every input in send order: files sorted by path, CSV rows in file order."""
    if mapping_type == "file":
        for rel in list_files(src):
            yield Input(key=rel.as_posix(), path=src / rel, output=rel.as_posix())
        return
    header = uses_header(rule or {})
    for rel in list_files(src, ".csv"):
        for number, cells, names in _csv_rows(src / rel, header):
            name = rel.as_posix()
            yield Input(key=f"{name}#{number}", path=src / rel, output=f"{name}.row{number}", row=cells,
                        header=names)


def count_inputs(src: Path, mapping_type: str, rule: Mapping[str, Any] | None = None) -> int:
    """How many inputs iter_inputs will yield (a first pass, so progress has a total from the start)."""
    return sum(1 for _ in iter_inputs(src, mapping_type, rule))


def request_body(item: Input, rule: Mapping[str, Any] | None) -> tuple[bytes, str]:
    """(body, Content-Type) for one input; a CSV row becomes JSON (MappingError when it cannot)."""
    if item.row is None:
        return item.path.read_bytes(), content_type(item.path)
    data = map_row(rule or {}, item.row, item.header)
    return json.dumps(data, ensure_ascii=False).encode(), "application/json"


def output_path(dest: Path, item: Input, response_type: str) -> Path:
    """Where the model's answer to `item` goes: .json for a JSON answer, else .out."""
    is_json = response_type.split(";")[0].strip().lower() in ("application/json", "application/problem+json")
    return dest / (item.output + (".json" if is_json else ".out"))


def has_output(dest: Path, item: Input) -> bool:
    """An earlier attempt already wrote this input's output (for --resume)."""
    return any((dest / (item.output + suffix)).is_file() for suffix in OUTPUT_SUFFIXES)
