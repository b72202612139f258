"""Who gets a campaign's units, and when (pure: no I/O, no clock; times are passed in).

A campaign (issue #15) sets units of its SKUs aside. Customers sign up (an `Entry`); a sign-up
that may be one customer twice, or over the per-customer limit, goes to review by hand
(`needs_review`) instead of the queue. Every `wave_every_hours` a wave (`allocate_wave`) gives
the free units to waiting entries, each SKU's units to that SKU's entries only (per-variant
pools); an allocated entry pays by its deadline or expires, and its units are free for the next
wave. stock.campaigns keeps the entries; this module only decides.

An entry is allocated whole or not at all (it asked for its quantity, not for part of it). One
that does not fit the units left is skipped, and later, smaller entries may still be served: a
unit left over while someone waits for it would help nobody. The skipped entry keeps its place
for the next wave. (The same rule as a `partial: false` backorder release.)
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

METHODS = ("fcfs", "lottery", "tiers")


class WaveInputError(ValueError):
    """Inputs a wave cannot be drawn from (unknown method, lottery without a seed, an entry
    twice, negative units); carries the subject and why. Nothing was allocated."""

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(f"{subject}: {message}")
        self.subject = subject
        self.message = message


@dataclass(frozen=True, slots=True)
class Entry:
    """A waitlist sign-up: `qty` units of `sku`, by the customer known by `keys`
    ({identity kind: normalised value}, stock.identity.identity_keys)."""

    id: int
    sku: str
    qty: int
    signed_up_at: datetime
    tier: str | None
    keys: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Allocation:
    """`qty` units of `sku` to entry `entry_id`; `why` in plain words (method and rank).
    `tier_reserve`: the tier whose reserved units these are (method tiers), else None: a
    tier's taken units (`allocate_wave`'s `tier_taken`) are the sum of these, less expired."""

    entry_id: int
    sku: str
    qty: int
    why: str
    tier_reserve: str | None = None


def needs_review(entry: Entry, others: Sequence[Entry], per_customer: int | None) -> str | None:
    """Why `entry` must be reviewed by hand rather than queued, or None when it may queue.

    `others` are the entries it is compared with: the campaign's live entries signed up before
    it (the entry itself, if among them, is ignored). Under review: an entry over
    `per_customer` units by itself; one sharing any identity key (same kind, same value) with
    another entry, whatever their units, because a second sign-up doubles a customer's chances
    in a lottery; the reason then adds when together they are over `per_customer`. The reason
    names key kinds and entry ids, never the values (it is shown and logged)."""
    if per_customer is not None and entry.qty > per_customer:
        return f"asks for {entry.qty} units, over the limit of {per_customer} per customer"
    shared: dict[int, list[str]] = {}
    for other in others:
        if other.id == entry.id:
            continue
        kinds = sorted(k for k, v in entry.keys.items() if other.keys.get(k) == v)
        if kinds:
            shared[other.id] = kinds
    if not shared:
        return None
    kinds_said = _and(sorted({k for kinds in shared.values() for k in kinds}))
    ids = sorted(shared)
    reason = f"same {kinds_said} as {_entries_said(ids)}"
    if per_customer is not None:
        total = entry.qty + sum(o.qty for o in others if o.id in shared)
        if total > per_customer:
            reason += f"; together {total} units, over the limit of {per_customer} per customer"
    return reason


def allocate_wave(
    waiting: Sequence[Entry],
    free: Mapping[str, int],
    method: str,
    *,
    seed: int | None,
    tier_units: Mapping[str, int],
    tier_taken: Mapping[str, int],
) -> list[Allocation]:
    """The wave's allocations: whole entries, each SKU's `free` units to its own entries, in the
    method's order, an entry that does not fit skipped (see the module doc).

    - `fcfs`: by `signed_up_at`, then id.
    - `lottery`: the ids of `waiting` sorted, shuffled by `random.Random(seed).shuffle`; the
      draw does not depend on the order of `waiting`, and anyone with the seed and the ids
      can re-check it.
    - `tiers`: each tier in `tier_units` (its order: best first) has `tier_units[t] -
      tier_taken[t]` reserved units left for this campaign, over all SKUs; they go first to
      that tier's entries in fcfs order, as far as the SKU's free units allow. Then everyone
      waiting, tier entries not yet served too, in fcfs order, gets the rest: reserved units
      that no tier entry asked for in this wave are not held back from others.

    `seed`, `tier_units` and `tier_taken` are read only by the methods that use them. The
    result is ordered by SKU, then the method's order (sign-up order for tiers). Raises
    WaveInputError, allocating nothing, for inputs it cannot decide on."""
    _check(waiting, free, method, tier_units, tier_taken)
    left = dict(free)
    allocations: list[Allocation] = []
    if method == "lottery":
        if seed is None:
            raise WaveInputError("lottery", "needs a seed, so that anyone can re-check the draw")
        order = _drawn(waiting, seed)
        allocations += _fill(order, left, f"lottery (seed {seed}): drawn")
        return _by_sku(allocations, [e.id for e in order])
    queue = sorted(waiting, key=_fcfs)
    if method == "tiers":
        served: set[int] = set()
        for tier, units in tier_units.items():
            budget = max(units - tier_taken.get(tier, 0), 0)
            members = [e for e in queue if e.tier == tier]
            for rank, e in enumerate(members, 1):
                if e.qty <= budget and e.qty <= left.get(e.sku, 0):
                    budget -= e.qty
                    left[e.sku] -= e.qty
                    served.add(e.id)
                    why = f"tier {tier}'s reserved units: {_nth(rank)} of {len(members)} in line"
                    allocations.append(Allocation(e.id, e.sku, e.qty, why, tier_reserve=tier))
        queue_rest = [e for e in queue if e.id not in served]
        allocations += _fill(queue_rest, left, "after the tiers' reserved units, in line")
    else:
        allocations += _fill(queue, left, "first come, first served: in line")
    return _by_sku(allocations, [e.id for e in queue])


def _check(
    waiting: Sequence[Entry],
    free: Mapping[str, int],
    method: str,
    tier_units: Mapping[str, int],
    tier_taken: Mapping[str, int],
) -> None:
    if method not in METHODS:
        raise WaveInputError(f"method {method!r}", f"unknown; known: {', '.join(METHODS)}")
    seen: set[int] = set()
    for e in waiting:
        if e.id in seen:
            raise WaveInputError(f"entry {e.id}", "is waiting twice")
        seen.add(e.id)
        if e.qty < 1:
            raise WaveInputError(f"entry {e.id}", f"asks for {e.qty} units; at least 1")
    negative = [
        (f"{what} {name}", units)
        for what, values in (("sku", free), ("tier", tier_units), ("tier taken", tier_taken))
        for name, units in values.items()
        if units < 0
    ]
    if negative:
        raise WaveInputError(
            ", ".join(subject for subject, _ in negative),
            "negative units: " + ", ".join(f"{s} has {u}" for s, u in negative),
        )


def _fcfs(entry: Entry) -> tuple[datetime, int]:
    return (entry.signed_up_at, entry.id)


def _drawn(waiting: Iterable[Entry], seed: int) -> list[Entry]:
    """The lottery's order: the ids sorted, then shuffled by `random.Random(seed)`."""
    by_id = {e.id: e for e in waiting}
    ids = sorted(by_id)
    random.Random(seed).shuffle(ids)
    return [by_id[i] for i in ids]


def _fill(order: Sequence[Entry], left: dict[str, int], why: str) -> list[Allocation]:
    """Greedy, per SKU: each entry in `order` that fits its SKU's units left gets them; its
    `why` is `why` and its rank among its SKU's entries in `order` (`3rd of 7 for SKU`)."""
    of_sku: dict[str, int] = defaultdict(int)
    for e in order:
        of_sku[e.sku] += 1
    rank: dict[str, int] = defaultdict(int)
    allocations: list[Allocation] = []
    for e in order:
        rank[e.sku] += 1
        if e.qty <= left.get(e.sku, 0):
            left[e.sku] -= e.qty
            said = f"{_nth(rank[e.sku])} of {of_sku[e.sku]} for {e.sku}"
            allocations.append(Allocation(e.id, e.sku, e.qty, f"{why} {said}"))
    return allocations


def _by_sku(allocations: list[Allocation], order: Sequence[int]) -> list[Allocation]:
    position = {entry_id: i for i, entry_id in enumerate(order)}
    return sorted(allocations, key=lambda a: (a.sku, position[a.entry_id]))


def wave_due(last_wave_at: datetime | None, now: datetime, every_hours: float) -> bool:
    """A wave is due when none ran yet, or `every_hours` have passed since the last one."""
    if every_hours <= 0:
        raise WaveInputError("every_hours", f"must be positive, got {every_hours}")
    return last_wave_at is None or now - last_wave_at >= timedelta(hours=every_hours)


def payment_deadline(allocated_at: datetime, window_hours: float) -> datetime:
    """When an entry allocated at `allocated_at` must have paid by."""
    return allocated_at + timedelta(hours=window_hours)


def expired(deadline: datetime, now: datetime) -> bool:
    """An allocation is expired from its deadline on (`now` at the deadline is too late)."""
    return now >= deadline


def reminder_due(
    deadline: datetime, reminded_at: datetime | None, hours_before: float | None, now: datetime
) -> bool:
    """One reminder per allocation, from `hours_before` the deadline until it passes."""
    if hours_before is None or reminded_at is not None or expired(deadline, now):
        return False
    return now >= deadline - timedelta(hours=hours_before)


def stock_rose(seen: Mapping[str, int] | None, now: Mapping[str, int]) -> bool:
    """Did any SKU's free stock (on hand less reserved) rise since the last look? Nothing
    seen yet is no rise: the first look only records."""
    if seen is None:
        return False
    return any(units > int(seen.get(code, units)) for code, units in now.items())


def _nth(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _entries_said(ids: Sequence[int]) -> str:
    return ("entry " if len(ids) == 1 else "entries ") + _and([str(i) for i in ids])
