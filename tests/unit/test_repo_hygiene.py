"""The tree as committed: no merge left half done (a conflict marker in a doc reached main once)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^(<{7}|>{7})( |$)|^={7}$", re.MULTILINE)


def test_no_conflict_markers_in_tracked_files():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True).stdout.split()
    found = []
    for name in files:
        path = REPO / name
        if not path.is_file() or path.suffix in (".png", ".ico", ".gz", ".tgz"):
            continue
        text = path.read_bytes()
        if b"\0" in text[:4096]:
            continue  # binary
        for match in MARKER.finditer(text.decode(errors="replace")):
            line = text[:match.start()].count(b"\n") + 1
            found.append(f"{name}:{line}: {match.group(0)!r}")
    assert not found, "conflict markers:\n" + "\n".join(found)


def test_test_module_names_are_unique():
    """pytest imports test files by basename (no packages under tests/): two of one name stop the collection."""
    files = subprocess.run(["git", "ls-files", "tests/*test_*.py"], cwd=REPO, check=True, capture_output=True,
                           text=True).stdout.split()
    seen: dict[str, str] = {}
    clashes = [f"{seen[Path(f).name]} and {f}" for f in files if seen.setdefault(Path(f).name, f) != f]
    assert not clashes, "test modules sharing a name:\n" + "\n".join(clashes)
