"""hack/provenance.py: what every result file says of where it comes from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
import provenance  # noqa: E402


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_the_commit_and_whether_the_tree_differs(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-qm", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "result.json").write_text("{}")  # an untracked result being written is not a change
    assert provenance.git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "a.txt").write_text("two\n")
    assert provenance.git_state(tmp_path) == {"commit": head, "dirty": True}


def test_outside_a_repository_the_commit_is_unknown(tmp_path: Path) -> None:
    assert provenance.git_state(tmp_path) == {"commit": None, "dirty": None}


def test_memory_is_in_mib(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24576000 kB\nMemFree:        1000 kB\n")
    assert provenance.memory_mib(meminfo) == 24000


def test_a_run_records_where_it_ran_and_the_load_before_and_after() -> None:
    started = provenance.begin(["python", "hack/bench.py", "--runs", "3"], {"services": 1000},
                               provenance.cluster_settings({"nodes": 2}))
    done = json.loads(json.dumps(provenance.finish(started)))  # what a result file holds
    assert len(done["commit"]) == 40 and isinstance(done["dirty"], bool)
    assert done["command"] == "python hack/bench.py --runs 3"
    assert done["settings"] == {"services": 1000}
    assert done["cluster"]["nodes"] == 2 and done["cluster"]["versions"]["KUBERNETES_VERSION"].startswith("v")
    assert done["machine"]["cores"] >= 1 and done["machine"]["memory_mib"] > 0
    assert len(done["load_average_before"]) == len(done["load_average_after"]) == 3
    assert done["started"] <= done["ended"]


def test_a_median_is_of_an_odd_number_of_runs_with_its_spread() -> None:
    assert provenance.median_spread([14.6, 12.8, 12.6]) == {"median": 12.8, "min": 12.6, "max": 14.6,
                                                            "runs": [14.6, 12.8, 12.6]}
    with pytest.raises(ValueError, match="odd number"):
        provenance.median_spread([1.0, 2.0])
    with pytest.raises(ValueError, match="odd number"):
        provenance.median_spread([])


@pytest.mark.parametrize("text", ["2", "0", "-1"])
def test_runs_must_be_odd(text: str) -> None:
    with pytest.raises(ValueError, match="positive odd"):
        provenance.odd_runs(text)


def test_runs_odd_are_taken() -> None:
    assert provenance.odd_runs("3") == 3


def test_a_plot_names_the_commit() -> None:
    assert provenance.commit_label({"commit": "a" * 40, "dirty": True}) == "aaaaaaaaaaaa+dirty"
    assert provenance.commit_label({"commit": None}) == "unknown commit"
