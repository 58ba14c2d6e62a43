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
