"""Promise dates, the pure planner (issue #17): the release queue played over the open PO
lines in ETA order; each backorder gets the ETA its last unit comes from, or no date."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from backorders.promises import Incoming, moved, promise_dates

D1, D2, D3 = date(2026, 12, 10), date(2026, 12, 20), date(2027, 1, 5)


def test_each_backorder_gets_the_eta_of_the_line_its_last_unit_comes_from() -> None:
    incoming = [Incoming(D2, 5), Incoming(D1, 3)]  # any order: played by ETA
    assert promise_dates([2, 2, 3, 2], incoming) == [D1, D2, D2, None]


def test_nothing_on_order_means_no_date() -> None:
    assert promise_dates([1, 4], []) == [None, None]
    assert promise_dates([1], [Incoming(D1, 0)]) == [None]


def test_a_backorder_filled_exactly_by_a_line_takes_that_lines_eta() -> None:
    assert promise_dates([3, 1], [Incoming(D1, 3), Incoming(D3, 1)]) == [D1, D3]


def test_how_a_promise_moved() -> None:
    assert moved(D1, D1) is None
    assert moved(D1, D2) == "later" and moved(D1, None) == "later"
    assert moved(D2, D1) == "earlier" and moved(None, D1) == "earlier"


@given(
    waiting=st.lists(st.integers(1, 20), max_size=30),
    incoming=st.lists(
        st.tuples(st.integers(0, 60), st.integers(0, 30)).map(
            lambda t: Incoming(D1 + timedelta(days=t[0]), t[1])
        ),
        max_size=10,
    ),
)
def test_dates_never_go_back_in_release_order_and_never_promise_more_than_is_coming(
    waiting: list[int], incoming: list[Incoming]
) -> None:
    dates = promise_dates(waiting, incoming)
    assert len(dates) == len(waiting)
    known = [d for d in dates if d is not None]
    assert known == sorted(known)  # later in line, never earlier
    # the dated backorders are a prefix of the line, and fit in what is coming
    first_unknown = dates.index(None) if None in dates else len(dates)
    assert all(d is None for d in dates[first_unknown:])
    assert sum(waiting[:first_unknown]) <= sum(line.units for line in incoming)
    if first_unknown < len(dates):
        assert sum(waiting[: first_unknown + 1]) > sum(line.units for line in incoming)
