"""values.schema.json and the README values table are generated from values.yaml's comments (hack/chart_values.py).

As for the CRD (tests/unit/api/test_crd.py), the committed files must be what the generator writes now:
an edited comment or constraint in values.yaml without `make chart-values` fails here.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "inference-operator"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("chart_values", ROOT / "hack" / "chart_values.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


chart_values = _generator()


@pytest.mark.parametrize("name", ["values.schema.json", "README.md"])
def test_committed_file_is_what_values_yaml_generates(name: str) -> None:
    wanted = chart_values.outputs(CHART)[CHART / name]
    assert (CHART / name).read_text(encoding="utf-8") == wanted, f"charts/inference-operator/{name} is stale: " \
        "run `make chart-values`"


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    copy = tmp_path / "inference-operator"
    shutil.copytree(CHART, copy)
    return copy


def edit(chart: Path, old: str, new: str) -> None:
    values = chart / "values.yaml"
    text = values.read_text()
    assert old in text
    values.write_text(text.replace(old, new, 1))


def test_an_edited_comment_makes_both_stale_until_regenerated(chart: Path) -> None:
    edit(chart, "# Debug logging (the operator's --verbose).", "# Debug logging, very chatty.")
    assert chart_values.main(["--check", "--chart", str(chart)]) == 1
    assert chart_values.main(["--chart", str(chart)]) == 0
    assert chart_values.main(["--check", "--chart", str(chart)]) == 0
    assert "Debug logging, very chatty." in (chart / "values.schema.json").read_text()
    assert "| `verbose` | `false` | Debug logging, very chatty. |" in (chart / "README.md").read_text()


def test_a_constraint_comment_reaches_the_schema(chart: Path) -> None:
    edit(chart, "  # @schema minimum: 3\n", "  # @schema minimum: 5\n")
    assert chart_values.main(["--chart", str(chart)]) == 0
    schema = json.loads((chart / "values.schema.json").read_text())
    assert schema["properties"]["leaderElection"]["properties"]["leaseDurationSeconds"]["minimum"] == 5


@pytest.mark.parametrize(("old", "new", "message"), [
    ("verbose: false\n", "verbose: false\nundocumented: 1\n", "no comment describes it"),
    ("# Labels added to the operator pod.\n# @schema $ref: stringMap\n", "# Labels added to the operator pod.\n",
     "an empty mapping needs an @schema"),
    ("# @schema uniqueItems: true\n", "# @schema uniqueItems: [true\n", "@schema is not YAML"),
    ("verbose: false\n", "verbose: false\n- stray\n", "not a `key: value` line"),
])
def test_undocumented_or_unreadable_values_are_errors_not_gaps(
        chart: Path, old: str, new: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    edit(chart, old, new)
    assert chart_values.main(["--chart", str(chart)]) == 2
    assert message in capsys.readouterr().err
