"""Fixtures of the Reconciler tests: a FakeKube (tests/fakes.py), a settable clock, a Reconciler on both."""

from __future__ import annotations

import pytest

from fakes import Clock, FakeKube
from inference_operator.catalog.flavors import load_catalog
from inference_operator.config import OperatorConfig
from inference_operator.reconcile.reconciler import Reconciler


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reconciler(kube: FakeKube, clock: Clock) -> Reconciler:
    return Reconciler(kube=kube, cfg=OperatorConfig(), catalog=lambda: load_catalog(), clock=clock)
