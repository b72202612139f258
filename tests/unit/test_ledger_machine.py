"""Ledger invariants under random operations, on SQLite."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.ledger_machine import LedgerMachine, migrated_sqlite

pytestmark = pytest.mark.slow  # a hypothesis state machine: ~20 s


class SqliteLedgerMachine(LedgerMachine):
    make_url = staticmethod(migrated_sqlite)


SqliteLedgerMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSqliteLedger = SqliteLedgerMachine.TestCase
