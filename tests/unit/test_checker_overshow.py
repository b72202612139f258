"""The fault suite's over-show check (tests/support/checker.py): a channel showing more than the
ledger offers is tolerated for OVERSHOW_BOUND across samples, and fails the scenario after."""

from __future__ import annotations

import pytest

from tests.support import checker as c


def view(offered: int) -> c.LedgerView:
    return c.LedgerView({}, [], {}, {"woo": {"K-1": offered}}, 0, 0, 0, {}, [])


def shown(quantity: int) -> c.ChannelView:
    return c.ChannelView({}, {"woo": {"K-1": quantity}})


def test_showing_more_than_offered_fails_only_once_it_outlasts_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(c.time, "monotonic", lambda: clock[0])
    check = c.Checker(ctx=None, shop_url="", woo_url="", overshow_bound=2.0)  # type: ignore[arg-type]
    assert check._overshown_too_long(view(5), shown(7)) == []  # first seen now
    clock[0] += 1.5
    assert check._overshown_too_long(view(5), shown(7)) == []  # within the bound
    clock[0] += 1.0
    [problem] = check._overshown_too_long(view(5), shown(7))
    assert problem.startswith("woo:K-1 has shown more than the ledger offers for 2.5s")
    # a sample where it is right again starts the count anew
    assert check._overshown_too_long(view(5), shown(5)) == []
    clock[0] += 5
    assert check._overshown_too_long(view(5), shown(6)) == []
    # showing less than offered is a slow raise, not an oversell risk
    clock[0] += 10
    assert check._overshown_too_long(view(5), shown(3)) == []


def test_the_default_bound_is_a_push_interval_plus_the_late_write_window() -> None:
    assert c.OVERSHOW_BOUND == 0.5 + 3 * 10.0 + 1.0
