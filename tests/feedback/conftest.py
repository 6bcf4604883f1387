"""Fixtures of the feedback store tests.

The folder is put on ``sys.path`` so that ``feedback_test_support`` imports by
name, in this process and in the child processes that the spawn start
method starts, which receive the parent's ``sys.path``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from feedback_test_support import FakeClock

from otel_mlmon.feedback import PredictionStore


@pytest.fixture(name="store_path")
def fixture_store_path(tmp_path: Path) -> Path:
    return tmp_path / "feedback.sqlite3"


@pytest.fixture(name="clock")
def fixture_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(name="store")
def fixture_store(store_path: Path, clock: FakeClock) -> Iterator[PredictionStore]:
    with PredictionStore(store_path, clock=clock) as store:
        yield store
