"""The refund fault of issue #16: a worker makes a campaign refund on the shop and is killed
(SIGKILL) right after the shop answered, before the ledger could record it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sync.jobs.campaign_refunds import CRASH_AFTER_CALL_ENV

_WORKER = (
    "import sys; from rules import load_config; from sync.runtime import Runtime; "
    "from sync.jobs.campaign_refunds import settle_refund; "
    "settle_refund(Runtime.build(load_config(sys.argv[1])), int(sys.argv[2]))"
)


def refund_and_die(config_path: Path, money_id: int) -> None:
    """Run the refund job for `money_id` in a worker process that dies after the shop call."""
    env = {**os.environ, CRASH_AFTER_CALL_ENV: str(money_id)}
    died = subprocess.run(
        [sys.executable, "-c", _WORKER, str(config_path), str(money_id)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert died.returncode == -signal.SIGKILL, died.stderr
