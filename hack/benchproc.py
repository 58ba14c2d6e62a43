"""What both controllers' benchmark runs share (hack/bench.py, hack/bench_kserve.py): a controller run as
a child process with its peak memory, and the API server's audit log read from a mark, across rotation."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import localcluster


class ChildProcess:
    """A controller as a subprocess (subclasses start it); killed at the end, its memory read from /proc."""

    proc: subprocess.Popen | None = None

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()

    def peak_rss_mb(self, field: str = "VmHWM") -> float:
        """Peak resident memory (VmHWM), or the current one with field="VmRSS", in MiB (the kB of /proc / 1024):
        the result files' `*_mb` keys keep their name so that older files compare, but hold MiB."""
        assert self.proc
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def audit_mark() -> tuple[int, int]:
    """Where the audit log ends now: (its inode, its size)."""
    stat = localcluster.AUDIT_LOG.stat()
    return stat.st_ino, stat.st_size


def audit_lines_since(mark: tuple[int, int]) -> Iterator[str]:
    """Audit lines written after `mark`. The API server rotates the log at 100 MB (audit-<time>.log): a file
    rotated since is read from the mark on, then every later one."""
    inode, offset = mark
    files = sorted(localcluster.AUDIT_LOG.parent.glob("audit-*.log")) + [localcluster.AUDIT_LOG]
    start = next((i for i, f in enumerate(files) if os.stat(f).st_ino == inode), len(files) - 1)
    for index, path in enumerate(files[start:]):
        with path.open(errors="replace") as lines:
            if index == 0:
                lines.seek(offset)
            yield from lines
