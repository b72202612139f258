"""What a push tells the shop page (issue #17): how many offered units are incoming, and the
ETA of the PO line the first of them comes on; what the push remembers of the page."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from connectors.base import OfferPush
from stock.engine import IncomingLine, OfferInputs, compute_offer
from stock.listings import DirtyListing
from stock.offers import first_incoming_eta, incoming_offered
from sync.jobs.push import PAGE_KEY, PAGE_UNKNOWN, PlannedPush, _page_shown, offer_push

TODAY = date(2026, 7, 1)


def breakdown(
    on_hand: int,
    incoming: int,
    *,
    reserved: int = 0,
    backordered: int = 0,
    buffer: int = 0,
    cap: int | None = None,
    share: float = 1.0,
    enabled: bool = True,
    hold: int = 0,
) -> int:
    found = compute_offer(
        OfferInputs(
            on_hand=on_hand,
            reserved=reserved,
            backordered=backordered,
            incoming_open=incoming,
            safety_buffer=buffer,
            cap=cap,
            backorders_enabled=enabled,
            incoming_share=share,
            campaign_hold=hold,
        )
    )
    return incoming_offered(found)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ({"on_hand": 20, "incoming": 10}, 10),  # offered 30: 20 in stock, 10 to come
        ({"on_hand": 0, "incoming": 10}, 10),  # every offered unit is incoming
        ({"on_hand": 20, "incoming": 0}, 0),  # nothing to come
        ({"on_hand": 20, "incoming": 10, "enabled": False}, 0),  # backorders off
        ({"on_hand": 5, "incoming": 10, "buffer": 2}, 10),  # buffer out of stock first
        ({"on_hand": 1, "incoming": 10, "buffer": 3}, 8),  # a buffer beyond stock eats incoming
        ({"on_hand": 20, "incoming": 10, "cap": 25}, 5),  # the cap takes stock first
        ({"on_hand": 20, "incoming": 10, "cap": 15}, 0),  # a cap below stock: none incoming
        ({"on_hand": 4, "incoming": 10, "backordered": 6}, 4),  # promised units not offered
        ({"on_hand": 4, "incoming": 10, "backordered": 12}, 0),  # beyond capacity
        ({"on_hand": 10, "incoming": 8, "reserved": 10, "share": 0.5}, 4),
        ({"on_hand": 10, "incoming": 8, "hold": 4}, 8),  # campaign units held out of stock
    ],
)
def test_incoming_offered_counts_stock_first(case: dict[str, int], expected: int) -> None:
    assert breakdown(**case) == expected


def line(ordered: int, eta_days: int, received: int = 0) -> IncomingLine:
    return IncomingLine(ordered, received, TODAY + timedelta(days=eta_days))


def test_the_first_open_line_within_the_horizon_gives_the_date() -> None:
    lines = [line(5, 3, received=5), line(4, 5), line(10, 9)]  # the first is received in full
    assert first_incoming_eta(lines, TODAY, 14, 1.0, 0) == TODAY + timedelta(days=5)


def test_units_promised_to_backorders_come_first() -> None:
    lines = [line(4, 5), line(10, 9)]
    # 4 units wait for the first line: the next buyer's unit comes on the second
    assert first_incoming_eta(lines, TODAY, 14, 1.0, 4) == TODAY + timedelta(days=9)
    assert first_incoming_eta(lines, TODAY, 14, 1.0, 3) == TODAY + timedelta(days=5)
    assert first_incoming_eta(lines, TODAY, 14, 1.0, 14) is None  # nothing left to offer


def test_the_share_counts_line_by_line() -> None:
    lines = [line(1, 2), line(1, 6), line(4, 8)]
    # half of each line's units: the first whole unit is shared once two lines are counted
    assert first_incoming_eta(lines, TODAY, 14, 0.5, 0) == TODAY + timedelta(days=6)


def test_late_lines_count_and_lines_beyond_the_horizon_do_not() -> None:
    assert first_incoming_eta([line(3, -4)], TODAY, 14, 1.0, 0) == TODAY - timedelta(days=4)
    assert first_incoming_eta([line(3, 20)], TODAY, 14, 1.0, 0) is None


def dirty(external_ids: dict[str, str]) -> DirtyListing:
    return DirtyListing(1, 1, "A", True, 5, 5, None, 1, external_ids=external_ids)


def test_a_push_carries_the_page_and_what_it_shows() -> None:
    eta = TODAY + timedelta(days=5)
    plain = offer_push(PlannedPush(dirty({"variant_id": "v"}), 7))
    assert plain == OfferPush("A", 7, 5)  # never had a date: none shown, known
    shown = offer_push(PlannedPush(dirty({PAGE_KEY: eta.isoformat()}), 9, 4, eta))
    assert (shown.incoming, shown.expected_on, shown.expected_on_shown) == (4, eta, eta)
    assert not shown.page_unknown
    assert offer_push(PlannedPush(dirty({PAGE_KEY: PAGE_UNKNOWN}), 9, 4, eta)).page_unknown
    assert offer_push(PlannedPush(dirty({PAGE_KEY: "garbage"}), 9, 4, eta)).page_unknown


def test_the_page_is_remembered_only_when_it_changes() -> None:
    eta = TODAY + timedelta(days=5)
    ids = {"product_id": "11"}
    assert _page_shown(PlannedPush(dirty(ids), 7)) is None  # no date then, none now
    assert _page_shown(PlannedPush(dirty(ids), 9, 4, eta)) == {**ids, PAGE_KEY: eta.isoformat()}
    remembered = {**ids, PAGE_KEY: eta.isoformat()}
    assert _page_shown(PlannedPush(dirty(remembered), 9, 4, eta)) is None
    assert _page_shown(PlannedPush(dirty(remembered), 7)) == {**ids, PAGE_KEY: ""}
