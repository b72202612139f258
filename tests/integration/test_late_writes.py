"""A WooCommerce stock write that lands after a newer one (issue #13).

WooCommerce writes are absolute. A write our side gave up on (a timeout) still reaches the shop
later, so it can overwrite a newer number: the shop then shows more than the ledger offers. The
race is made to happen every time: the sandbox delays writes (not reads) beyond the connector's
timeout, so the first push's write lands after the second push's.

The push records each write before the call and forgets it when answered; a write never
answered is read back once its window (a few timeouts) has passed, and pushed again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import func, select

from backorders import orders
from backorders.orders import LineInput, OrderInput
from connectors.sandbox.woocommerce import WooCommerceSandbox
from connectors.woocommerce import WooCommerceChannel
from rules import parse_config
from stock import counts, offers
from stock import models as m
from sync.jobs.followups import utc_now
from sync.jobs.push import push_channel
from sync.jobs.sweep import sweep
from sync.runtime import Runtime
from sync.stack import wait_until
from tests.woocommerce_support import set_faults

TIMEOUT_S = 1.0
# beyond the timeout (the call gives up at 1 s), within the window (3 timeouts); the newer
# push has a second to land before the late write does, even on a busy machine
WRITE_LATENCY_MS = 2000
SKU = "LATE-1"

CONFIG = """\
database: {url}
defaults: {{safety_buffer: 0}}
channels:
  popup: {{kind: manual}}
  woo:
    kind: woocommerce
    url: https://shop.example.com
    api_url: {api}
    consumer_key: ck_sandbox
    consumer_secret: cs_sandbox
    webhook_secret: sandbox-secret
"""


@pytest.fixture
def woo() -> Iterator[WooCommerceSandbox]:
    with WooCommerceSandbox(catalog={SKU: 10}, seed=13) as sandbox:
        yield sandbox


def woo_channel(woo: WooCommerceSandbox, timeout: float = TIMEOUT_S) -> WooCommerceChannel:
    """The connector with a short timeout (the window is 3 of them), as the push uses it."""
    return WooCommerceChannel(
        "woo",
        url="https://shop.example.com",
        api_url=woo.url,
        consumer_key="ck_sandbox",
        consumer_secret="cs_sandbox",
        webhook_secrets=["sandbox-secret"],
        timeout=timeout,
        backoff=0.01,
    )


@pytest.fixture
def runtime(ledger_url: str, woo: WooCommerceSandbox) -> Iterator[Runtime]:
    config = parse_config(CONFIG.format(url=ledger_url, api=woo.url), "stocksync.yaml", env={})
    built = Runtime.build(config)
    built.channels["woo"] = woo_channel(woo)
    with built.ctx.ledger(actor="test") as tx:
        counts.set_stock(tx, SKU, 10)
    yield built
    built.close()


def sell(runtime: Runtime, ref: str, qty: int) -> None:
    now = utc_now()
    with runtime.ctx.ledger(actor="test") as tx:
        orders.record_order(
            tx, OrderInput("popup", ref, now, now, "open", (LineInput("1", SKU, qty),))
        )


def shown(woo: WooCommerceSandbox) -> int:
    return int(requests.get(f"{woo.url}/_sandbox/state", timeout=5).json()["stock"][SKU])


def offered(runtime: Runtime) -> int:
    with runtime.ctx.read() as session:
        sku_id = session.scalar(select(m.Sku.id).where(m.Sku.code == SKU))
        assert sku_id is not None
        found = offers.breakdowns(session, runtime.config, "woo", {sku_id: SKU}, utc_now().date())
    return found[sku_id].offered


def unanswered(runtime: Runtime) -> int:
    with runtime.ctx.read() as session:
        return int(session.scalar(select(func.count()).select_from(m.PushInFlight)) or 0)


def test_a_timed_out_write_that_lands_after_a_newer_one_is_found_and_corrected(
    runtime: Runtime, woo: WooCommerceSandbox
) -> None:
    push_channel(runtime, "woo")  # maps the listing: 10 shown, 10 offered
    assert shown(woo) == 10

    sell(runtime, "P-1", 3)  # offered 7
    set_faults(woo.url, write_latency_ms=WRITE_LATENCY_MS)
    sent_at = time.monotonic()
    first = push_channel(runtime, "woo")
    # the write timed out on our side and was not repeated blindly
    assert first.errors == 1 and first.pushed == 0
    assert unanswered(runtime) == 1
    set_faults(woo.url, write_latency_ms=0)

    sell(runtime, "P-2", 2)  # offered 5: pushed at once, answered
    second = push_channel(runtime, "woo")
    assert second.pushed == 1
    assert shown(woo) == 5

    # the first write (7) lands now, after the newer one
    wait_until(lambda: shown(woo) == 7, 3 * TIMEOUT_S, "the late write landed")
    assert shown(woo) == 7 > offered(runtime) == 5

    # within the window the push leaves it (it may land yet); once past, the sweeper asks for
    # a push of the channel, which reads the listing again and lowers it
    window = 3 * TIMEOUT_S
    time.sleep(max(0.0, window + 0.1 - (time.monotonic() - sent_at)))
    assert "woo" in sweep(runtime).pushes
    third = push_channel(runtime, "woo")
    assert third.late_writes == 1 and third.pushed == 1
    assert runtime.metrics.late_writes.labels("woo")._value.get() == 1
    assert shown(woo) == 5 == offered(runtime)
    assert unanswered(runtime) == 0
    assert "woo" not in sweep(runtime).pushes


def test_an_answered_write_leaves_nothing_to_read_again(
    runtime: Runtime, woo: WooCommerceSandbox
) -> None:
    push_channel(runtime, "woo")
    sell(runtime, "P-1", 4)
    assert push_channel(runtime, "woo").pushed == 1
    assert shown(woo) == 6
    assert unanswered(runtime) == 0


def test_a_timed_out_write_is_not_repeated(woo: WooCommerceSandbox) -> None:
    """Repeating it could land it after a newer write; the push reads the shop again first.
    (Which failures a write may repeat: tests/unit/test_woocommerce_retry.py.)"""
    from connectors.base import ChannelError, OfferPush

    channel = woo_channel(woo)
    channel.fetch_listings([SKU])
    set_faults(woo.url, write_latency_ms=WRITE_LATENCY_MS)
    with pytest.raises(ChannelError, match="timed out"):
        channel.push_offers([OfferPush(SKU, 4, 10)])
    assert woo.request_count.get("POST /wp-json/wc/v3/products/batch") == 1


def test_a_write_sent_by_a_worker_killed_before_the_answer_is_read_again_after_its_window(
    runtime: Runtime, woo: WooCommerceSandbox
) -> None:
    """The push commits its writes in flight before the call: a worker SIGKILLed during the call
    leaves them behind, and the successor (the lease passes at once) cannot know whether the
    write landed. Here the dead worker's write (7) reaches the shop after two newer pushes."""
    from datetime import timedelta

    from connectors.base import OfferPush
    from stock import inflight

    push_channel(runtime, "woo")
    sell(runtime, "P-1", 3)  # offered 7
    with runtime.ctx.sessions.begin() as session:  # the dead worker's record, never answered
        listing_id = session.scalar(select(m.Listing.id).where(m.Listing.channel == "woo"))
        assert listing_id is not None
        now = utc_now()
        window = timedelta(seconds=3 * TIMEOUT_S)
        inflight.record_sent(session, "woo", "dead-worker", [(listing_id, 7)], now, now + window)
    assert push_channel(runtime, "woo").pushed == 1  # the successor: 7
    sell(runtime, "P-2", 2)
    assert push_channel(runtime, "woo").pushed == 1  # 5
    assert "woo" not in sweep(runtime).pushes  # within the window: it may land yet

    dead_worker = woo_channel(woo, timeout=10.0)
    dead_worker.fetch_listings([SKU])
    [landed] = dead_worker.push_offers([OfferPush(SKU, 7, None)])  # it lands now
    assert landed.ok and shown(woo) == 7 > offered(runtime)

    time.sleep(3 * TIMEOUT_S + 0.1)
    assert "woo" in sweep(runtime).pushes
    assert push_channel(runtime, "woo").late_writes == 1
    assert shown(woo) == 5 == offered(runtime)
    assert unanswered(runtime) == 0


def test_a_lease_this_process_left_behind_is_taken_over_at_once(
    runtime: Runtime, woo: WooCommerceSandbox
) -> None:
    """A push whose lease release failed (the database restarted mid-push) left its lease for
    60 s; the next push of the same process must not wait it out: the channel would show more
    than offered all that time."""
    from datetime import timedelta

    from stock import channel_state
    from sync.jobs.push import push_lease_owner

    push_channel(runtime, "woo")
    left_behind = push_lease_owner()  # this process, no push running under it
    now = utc_now()
    with runtime.ctx.sessions.begin() as session:
        until = now + timedelta(seconds=60)
        assert channel_state.take_lease(session, "woo", left_behind, now, until)
    sell(runtime, "P-1", 3)
    report = push_channel(runtime, "woo")
    assert not report.busy and report.pushed == 1
    assert shown(woo) == 7
