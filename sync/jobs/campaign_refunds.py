"""Campaign refunds on the shops (issue #16): one job per planned refund (`campaign_money`).

Claimed in one ledger transaction, made with no ledger row locked, recorded in another. The
connector searches the order's refunds for the refund's key before it makes one, so a retry
after a call that landed (a worker killed between the call and the commit) records the refund
the shop already made instead of refunding twice; a claim older than the lease belongs to a job
that died, and the campaign tick hands such refunds out again. A channel stocksync cannot
refund on (a manual channel) gets the refund marked `by_hand`: the merchant's to make.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta

from connectors.base import ChannelError, RefundRequest, TakesRefunds
from connectors.woocommerce_payments import GATEWAY_CANNOT_REFUND
from stock import campaign_money
from stock.campaign_money import MoneyRow
from sync.failures import is_transient
from sync.jobs.followups import Followups
from sync.logs import get_logger
from sync.runtime import Runtime

log = get_logger("stocksync.jobs.campaign_refunds")

REFUND_LEASE = timedelta(minutes=2)
# the fault suite kills the worker right after the shop's answer, before the ledger records it
CRASH_AFTER_CALL_ENV = "STOCKSYNC_TEST_CRASH_AFTER_REFUND_CALL"


def settle_refund(runtime: Runtime, money_id: int) -> Followups:
    with runtime.ctx.ledger(actor="campaigns") as tx:
        row = campaign_money.claim(tx, money_id, REFUND_LEASE)
    if row is None:
        return Followups()  # made already, waiting for a condition, or another job has it
    channel = runtime.channels.get(row.channel or "")
    if not isinstance(channel, TakesRefunds) or not row.order_ref:
        return _record(runtime, row, "by_hand",
                       f"refund {row.amount} {row.currency} by hand on {row.channel}")  # fmt: skip
    request = RefundRequest(
        order_ref=row.order_ref, amount=row.amount, currency=row.currency, key=row.key,
        reason=f"stocksync {row.campaign}: {row.reason}",
    )  # fmt: skip
    try:
        shop_ref = channel.refund(request)
    except Exception as exc:
        if is_transient(exc) or not isinstance(exc, ChannelError):
            with runtime.ctx.ledger(actor="campaigns") as tx:
                campaign_money.release_claim(tx, row.id)
            raise
        if exc.code == GATEWAY_CANNOT_REFUND:
            return _record(runtime, row, "by_hand", f"refund {row.amount} {row.currency} by "
                           f"hand: {exc.message}", error=str(exc))  # fmt: skip
        log.warning("campaign_refund_failed", money=row.id, error=str(exc))
        return _record(runtime, row, "failed", f"the shop refused: {exc.message}", error=str(exc))
    if os.environ.get(CRASH_AFTER_CALL_ENV) == str(row.id):
        os.kill(os.getpid(), signal.SIGKILL)  # a fault test: the shop refunded, we never knew
    return _record(runtime, row, "refunded", "refunded on the shop", shop_ref=shop_ref)


def _record(
    runtime: Runtime,
    row: MoneyRow,
    state: str,
    why: str,
    *,
    shop_ref: str | None = None,
    error: str | None = None,
) -> Followups:
    with runtime.ctx.ledger(actor="campaigns") as tx:
        campaign_money.record_outcome(tx, row.id, state, why, shop_ref=shop_ref, error=error)
    log.info("campaign_refund", money=row.id, channel=row.channel, state=state,
             amount=f"{row.amount} {row.currency}")  # fmt: skip
    return Followups()
