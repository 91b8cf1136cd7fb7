"""Connections to the test cluster that scripts/test.sh starts, and to its streaming replica."""

import os

from harness import DSN, connect  # noqa: F401 (this suite's modules use dbs.DSN, dbs.connect)

STANDBY_DSN = os.environ.get("INVENTORY_SYNC_STANDBY_DSN")
