"""Promise dates (issue #17): when each waiting backorder should be filled. Pure.

The release queue is played forward over the open purchase-order lines: backorders in release
order take the incoming units in ETA order, and each is promised the ETA of the PO line its
last unit comes from. Units beyond everything on order have no date ("unknown").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal


@dataclass(frozen=True, slots=True)
class Incoming:
    eta: date
    units: int  # still to come on the line (ordered less received)


def promise_dates(waiting: Sequence[int], incoming: Sequence[Incoming]) -> list[date | None]:
    """For backorders waiting `waiting[i]` units each, in release order: the date each is
    filled by, given the incoming lines (any order: played in ETA order), or None."""
    lines = sorted((line for line in incoming if line.units > 0), key=lambda line: line.eta)
    dates: list[date | None] = []
    index, left = 0, lines[0].units if lines else 0
    for units in waiting:
        need = units
        last: date | None = None
        while need > 0 and index < len(lines):
            take = min(need, left)
            need -= take
            left -= take
            last = lines[index].eta
            if left == 0:
                index += 1
                left = lines[index].units if index < len(lines) else 0
        dates.append(last if need == 0 and units > 0 else None)
    return dates


Move = Literal["later", "earlier"]


def moved(was: date | None, now: date | None) -> Move | None:
    """How a promise moved: `later` (a later date, or no date any more), `earlier` (an earlier
    date, or a date where there was none), or None (the same)."""
    if was == now:
        return None
    if now is None:
        return "later"
    if was is None:
        return "earlier"
    return "later" if now > was else "earlier"
