"""How a pooled SKU's units are split over its channels (pure: no I/O).

A channel is offered what is left of its allotment. The allotments left, plus the units moving
between channels, plus the reserve, never exceed what the ledger can fill (`free`): so however
fast the shops sell, and however late their webhooks arrive, together they cannot sell more.

Every interval the plan (1) takes back allotments when `free` fell below what is handed out (a
count went down), (2) gives unallocated units to the channels below their target, (3) moves
units from channels above their target to those below. A channel's target is its share of the
pool by recent sell rate (by weight before the first sales), so no unit sits on a quiet shop
while a busy one is sold out. A move is taken from the donor at once and given to the recipient
only once the donor's shop shows its smaller number (stock.pools). At the end, when every
channel has sold its allotment (only the reserve is left), the reserve goes to a channel whose
writes are compare-and-set: it cannot lose a sale to a race.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

QUIET_SHARE = 0.05  # of the pool's sell rate, kept as demand for a channel selling nothing now
MOVE_SLACK = 0.1  # a channel within this fraction of its target (at least 1 unit) is left alone


@dataclass(frozen=True, slots=True)
class PoolChannel:
    name: str
    remaining: int  # allotment minus sold; negative when it sold beyond (a race)
    rate: float  # units sold per second lately
    weight: int
    safe: bool  # compare-and-set writes: a sale cannot be overwritten by our write


@dataclass(frozen=True, slots=True)
class PoolInputs:
    free: int  # units the ledger can still fill: on hand - reserved - safety buffer (+ incoming)
    reserve: int
    in_transit: int  # units taken from donors, not yet given
    channels: tuple[PoolChannel, ...]


@dataclass(frozen=True, slots=True)
class Grant:
    """Change a channel's allotment now: positive from the unallocated units, negative back.
    `covers_sold`: it only makes the allotment cover what the channel sold beyond it (a race
    whose units the ledger already counted): nothing is handed out."""

    channel: str
    units: int
    why: str
    covers_sold: bool = False


@dataclass(frozen=True, slots=True)
class Move:
    source: str
    target: str
    units: int
    why: str


@dataclass(frozen=True, slots=True)
class PoolPlan:
    grants: tuple[Grant, ...] = ()
    moves: tuple[Move, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.grants or self.moves)


def committed(inputs: PoolInputs) -> int:
    """Units the channels may still sell, plus those on their way between channels."""
    return sum(max(c.remaining, 0) for c in inputs.channels) + inputs.in_transit


def plan(inputs: PoolInputs) -> PoolPlan:
    if not inputs.channels:
        return PoolPlan()
    covers = tuple(
        Grant(c.name, -c.remaining, "it sold beyond its allotment", covers_sold=True)
        for c in inputs.channels
        if c.remaining < 0
    )
    if covers:
        inputs = PoolInputs(
            inputs.free,
            inputs.reserve,
            inputs.in_transit,
            tuple(
                PoolChannel(c.name, max(c.remaining, 0), c.rate, c.weight, c.safe)
                for c in inputs.channels
            ),
        )
    result = _plan(inputs)
    return PoolPlan(grants=covers + result.grants, moves=result.moves)


def _plan(inputs: PoolInputs) -> PoolPlan:
    end = inputs.free <= inputs.reserve  # only the reserve is left: the end of the drop
    available = inputs.free - (0 if end else inputs.reserve) - committed(inputs)
    if available < 0:
        return PoolPlan(grants=_take_back(inputs, -available))
    if end:
        return PoolPlan(grants=_last_units(inputs, available))
    remaining = {c.name: max(c.remaining, 0) for c in inputs.channels}
    targets = _targets(inputs.channels, sum(remaining.values()) + available)
    grants: list[Grant] = []
    # the unallocated units first: growing from them needs no shrink anywhere
    for name in sorted(remaining, key=lambda n: remaining[n] - targets[n]):
        if available <= 0:
            break
        units = min(targets[name] - remaining[name], available)
        if units > 0:
            grants.append(Grant(name, units, "unallocated units to a channel below its target"))
            remaining[name] += units
            available -= units
    moves: list[Move] = []
    donors = sorted(remaining, key=lambda n: targets[n] - remaining[n])
    takers = sorted(remaining, key=lambda n: remaining[n] - targets[n])
    for taker in takers:
        need = targets[taker] - remaining[taker]
        if need <= _slack(targets[taker]):
            continue
        for donor in donors:
            surplus = remaining[donor] - targets[donor]
            if donor == taker or surplus <= _slack(targets[donor]):
                continue
            units = min(surplus, need)
            moves.append(Move(donor, taker, units, "the recipient sells faster than the donor"))
            remaining[donor] -= units
            remaining[taker] += units
            need -= units
            if need <= 0:
                break
    return PoolPlan(grants=tuple(grants), moves=tuple(moves))


def first_allotments(
    channels: Sequence[str], weights: dict[str, int] | None, units: int
) -> dict[str, int]:
    """The first split of `units` by weight (equal when no weights), largest remainders first."""
    chosen = {name: (weights or {}).get(name, 0 if weights else 1) for name in channels}
    return _split(units, {name: float(w) for name, w in chosen.items()})


def _targets(channels: Sequence[PoolChannel], total: int) -> dict[str, int]:
    rates = sum(c.rate for c in channels)
    weights = sum(c.weight for c in channels) or 1
    if rates > 0:
        demand = {c.name: c.rate + QUIET_SHARE * rates * c.weight / weights for c in channels}
    else:
        demand = {c.name: float(c.weight) for c in channels}
    return _split(total, demand)


def _split(total: int, demand: dict[str, float]) -> dict[str, int]:
    whole = sum(demand.values())
    if total <= 0 or whole <= 0:
        return dict.fromkeys(demand, 0)
    exact = {name: total * d / whole for name, d in demand.items()}
    shares = {name: int(value) for name, value in exact.items()}
    left = total - sum(shares.values())
    for name in sorted(exact, key=lambda n: (shares[n] - exact[n], n))[:left]:
        shares[name] += 1
    return shares


def _slack(target: int) -> int:
    return max(1, int(target * MOVE_SLACK))


def _take_back(inputs: PoolInputs, excess: int) -> tuple[Grant, ...]:
    """More is handed out than the ledger can fill: shrink the slowest sellers first."""
    grants: list[Grant] = []
    for channel in sorted(inputs.channels, key=lambda c: (c.rate, -c.remaining, c.name)):
        units = min(max(channel.remaining, 0), excess)
        if units > 0:
            grants.append(Grant(channel.name, -units, "the ledger holds fewer units than allotted"))
            excess -= units
        if excess <= 0:
            break
    return tuple(grants)


def _last_units(inputs: PoolInputs, left: int) -> tuple[Grant, ...]:
    """Only the reserve is left: it goes to the fastest channel that can take it safely
    (compare-and-set), else to the fastest one."""
    if left <= 0:
        return ()
    safe = [c for c in inputs.channels if c.safe] or list(inputs.channels)
    best = max(safe, key=lambda c: (c.rate, c.weight, c.name))
    return (Grant(best.name, left, "end of the drop: the last units to a safe channel"),)
