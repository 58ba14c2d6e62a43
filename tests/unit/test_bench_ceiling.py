"""hack/bench_ceiling.py: the burst's ceiling writes the operator's children, every Deployment first."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
import bench_ceiling  # noqa: E402
from bench import service  # noqa: E402
from inference_operator.builders.labels import MANAGED_BY_LABEL  # noqa: E402
from inference_operator.config import OperatorConfig  # noqa: E402


class Recording:
    """The apply calls of the ceiling, in the order they were made."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, str]] = []

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        self.applied.append((manifest["kind"], manifest["metadata"]["name"]))
        return dict(manifest)


def children(n: int) -> list[list[dict[str, Any]]]:
    return [bench_ceiling.ceiling_children(service(f"c{i:05d}"), "bench-ceiling", OperatorConfig(), True)
            for i in range(n)]


def test_the_ceiling_writes_the_operators_children_unowned() -> None:
    (one,) = children(1)
    assert [c["kind"] for c in one] == ["Deployment", "Service", "HTTPRoute"]
    for child in one:
        assert "ownerReferences" not in child["metadata"] and MANAGED_BY_LABEL not in child["metadata"]["labels"]
        assert child["metadata"]["namespace"] == "bench-ceiling"
    assert MANAGED_BY_LABEL not in one[0]["spec"]["template"]["metadata"]["labels"]


async def test_every_deployment_is_written_before_any_other_child() -> None:
    kube = Recording()
    ends = await bench_ceiling.write_waves(kube, bench_ceiling.write_order(children(3)))
    kinds = [kind for kind, _ in kube.applied]
    assert kinds[:3] == ["Deployment"] * 3 and "Deployment" not in kinds[3:]
    assert sorted(kinds[3:]) == ["HTTPRoute"] * 3 + ["Service"] * 3
    assert len(ends) == 2 and ends[0] <= ends[1]
