"""Shared by the reliability suite: connections to the test cluster that scripts/test.sh starts
(INVENTORY_SYNC_DSN), a fresh database per test module, and the suite's mode.

INVENTORY_SYNC_SOAK=1 selects the long (soak) mode; the default is the short mode CI runs."""

import os
import sys
from pathlib import Path

import pytest

# The harness the Python suites share (tests/harness): connections, the race barrier.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import connect, fresh_database  # noqa: E402,F401 (the suite's modules import them from here)

SOAK = os.environ.get("INVENTORY_SYNC_SOAK") == "1"


@pytest.fixture(scope="module")
def db(request):
    """A fresh database for the test module, named after it."""
    return fresh_database("rel_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
