"""Per-test time limits for tests on the local cluster (pyproject.toml sets the 60 s default and why).

Only the test body is timed for them (func_only): the session fixtures bring the cluster up, build binaries
and start the operator in the first test's setup, and are bounded by their own waits (hack/localcluster.py,
OperatorProcess.start). An explicit `--timeout` on the command line or a test's own timeout mark wins.
"""

from __future__ import annotations

import os

import pytest

# An e2e test's waits are bounded by the test itself, up to 300 s for one call (a helm install with --wait in
# test_chart_install.py), and the longest tests chain a few such waits.
E2E_TIMEOUT = 900.0
# A chaos run is bounded by its own waits at about 400 s (120 s for the fault to finish, 240 s to converge,
# a quiet window) after the workload's first convergence (240 s); `make chaos` runs CHAOS_RUNS of them in one
# test, so the limit grows with it.
FAULTS_TIMEOUT = 1800.0 * max(1, int(os.environ.get("CHAOS_RUNS", "1")))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("timeout", None) is not None:
        return
    for item in items:
        if "cluster" not in getattr(item, "fixturenames", ()) or item.get_closest_marker("timeout"):
            continue
        limit = FAULTS_TIMEOUT if "faults" in item.path.parts else E2E_TIMEOUT
        item.add_marker(pytest.mark.timeout(limit, func_only=True))
