"""Campaign benchmark (issue #15): a waitlist of 50,000 sign-ups over 3 SKUs, then 5,000 units
allocated in waves, on SQLite and (`--postgres`) a fresh PostgreSQL database; every figure
beside the database's ceiling measured in the same run (bench.ceiling) and the ratio.

1. **Sign-up** through `sync.campaign_service.sign_up`, one ledger transaction each (what
   `waitlist add` and the storefront's `POST /api/campaigns/{name}/waitlist` run), measured in
   batches at growing waitlist sizes ("fills": 0, 1,000, 5,000, 10,000, 25,000, 50,000): a
   sign-up reads the live entries that share an identity key with it, through the indexed
   keys (`stock.campaigns.sharing_entries`, for `campaign_policy.needs_review`); it read every
   live entry before, and its cost grew with the waitlist. Each batch stops after
   `curve_seconds`; the time spent inside `sharing_entries` is measured beside. Between the
   batches the waitlist is filled in bulk (multi-row INSERTs of the rows `sign_up` would write,
   review reasons included, with their audit entries), so the waves below run over the full
   50,000. The time of 50,000 sign-ups one after another is extrapolated from a straight-line
   fit of the batches (cost per sign-up against entries already there).
2. **Import**: the real `stocksync waitlist import NAME FILE.csv --json` subprocess (every row
   through `sign_up`, all in one transaction) on a fresh ledger of the same kind.
3. **Waves**: stock arrives in `waves` deliveries (units ÷ waves per SKU); after each,
   `campaign_service.tick` at an injected clock (13 h apart: the 12 h payment window has passed)
   expires the last wave's unpaid entries and allocates a wave; then `confirm_share` of the
   wave's entries pay (`campaign_service.confirm`, one transaction each, 1 h later); one more
   tick without a delivery re-allocates the last expiries. Time per tick, per allocated entry,
   statements per wave; confirms/s. Then `campaign report` (sync.campaign_report) on the full
   waitlist.

Checks (the bench raises when one fails): every wave allocated exactly the units free (delivered
so far less those paid: the waitlist never runs dry), never more than the campaign's units or
the stock on hand; each entry allocated at most once (one `campaign.allocated` audit entry per
entry, none for entries in review); every paid entry is an order whose reservation holds its
unit; the report's totals equal the bench's own book-keeping.

`python -m bench.campaigns [--quick] [--postgres [ADMIN_URL]] [--postgres-only]`
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import secrets
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from bench import ceiling
from bench.common import (
    PG_ADMIN_URL,
    default_json_path,
    environment,
    fresh_postgres,
    markdown_table,
    stocksync_executable,
    write_json,
)
from bench.statements import StatementStats, count_statements
from rules import Config, load_config
from stock import campaign_policy, campaigns, counts
from stock import models as m
from stock.db import upgrade
from stock.identity import identity_keys
from sync import campaign_report
from sync import campaign_service as service
from sync.context import AppContext
from sync.stack import StackConfig

CAMPAIGN = "bench-drop"
CHANNEL = "popup"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # sign-up opens
SIGNUP_SPAN = timedelta(days=1)  # sign-ups spread over the first day
FIRST_WAVE = T0 + SIGNUP_SPAN + timedelta(minutes=1)
WAVE_GAP = timedelta(hours=13)  # > window_hours: the last wave's unpaid entries have expired
PAY_AFTER = timedelta(hours=1)
IDENTITY = ("email", "phone")
KINDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class CampaignPlan:
    signups: int = 50_000
    skus: int = 3
    units: int = 5_000
    waves: int = 5  # deliveries, each followed by a tick; then one more tick
    confirm_share: float = 0.7  # of each wave's entries that pay within the window
    repeat_every: int = 100  # every Nth sign-up repeats the previous customer's email: review
    curve_fills: tuple[int, ...] = (0, 1_000, 5_000, 10_000, 25_000, 50_000)
    curve_batch: int = 200  # sign-ups per fill, at most...
    curve_seconds: float = 15  # ...or until this long (at least curve_min sign-ups)
    curve_min: int = 5
    import_rows: int = 1_000  # `waitlist import` CSV on a fresh ledger, real CLI
    import_timeout_s: float = 300
    window_hours: float = 12
    wave_every_hours: float = 2
    ceiling_seconds: float = 5
    ceiling_again: bool = True  # measure the ceilings again at the end (the machine drifts)
    seed: int = 15


FULL = CampaignPlan()
QUICK = CampaignPlan(
    signups=5_000,
    units=500,
    curve_fills=(0, 1_000, 2_500, 5_000),
    curve_batch=100,
    curve_seconds=8,
    import_rows=300,
    ceiling_seconds=1,
    ceiling_again=False,
)


# ------------------------------------------------------------------------------ pure helpers
def sku_codes(count: int) -> list[str]:
    return [f"CAMP-{j + 1}" for j in range(count)]


def split(total: int, parts: int) -> list[int]:
    """`total` in `parts` whole shares as equal as can be, the remainder on the first ones."""
    if parts < 1 or total < 0:
        raise ValueError(f"need parts >= 1 and total >= 0, got {parts}, {total}")
    share, rest = divmod(total, parts)
    return [share + (1 if i < rest else 0) for i in range(parts)]


def campaign_units(plan: CampaignPlan) -> dict[str, int]:
    """Units set aside per SKU: `units` split evenly."""
    return dict(zip(sku_codes(plan.skus), split(plan.units, plan.skus), strict=True))


def deliveries(plan: CampaignPlan) -> list[dict[str, int]]:
    """Per wave, units arriving per SKU: each SKU's units over `waves` deliveries."""
    per_sku = {code: split(units, plan.waves) for code, units in campaign_units(plan).items()}
    return [{code: shares[k] for code, shares in per_sku.items()} for k in range(plan.waves)]


@dataclass(frozen=True)
class Customer:
    index: int
    email: str
    phone: str
    sku: str


def customer(index: int, plan: CampaignPlan) -> Customer:
    """The index-th sign-up: a customer of their own, except every `repeat_every`th, who
    repeats the previous customer's email in other letter cases (a repeat: review). SKU j is
    wanted by weight (skus - j): the first is the most popular."""
    codes = sku_codes(plan.skus)
    rng = random.Random(plan.seed * 1_000_003 + index)
    sku = rng.choices(codes, weights=range(plan.skus, 0, -1))[0]
    phone = f"+316{10_000_000 + index}"  # Dutch mobile numbers: valid, distinct
    if plan.repeat_every > 1 and index % plan.repeat_every == plan.repeat_every - 1:
        return Customer(index, f"C{index - 1}@Example.COM", phone, sku)
    return Customer(index, f"c{index}@example.com", phone, sku)


def signed_up_at(index: int, plan: CampaignPlan) -> datetime:
    return T0 + SIGNUP_SPAN * (index / max(plan.signups, 1))


class ReviewIndex:
    """`campaign_policy.needs_review` against the live entries sharing an identity key, found
    by a dict of keys: the same answer as against every live entry (an entry sharing no key
    cannot change it), without reading them all. The bulk fill uses it; a ledger could too."""

    def __init__(self, per_customer: int | None) -> None:
        self.per_customer = per_customer
        self._by_key: dict[tuple[str, str], list[campaign_policy.Entry]] = defaultdict(list)

    def reason(self, entry: campaign_policy.Entry) -> str | None:
        others: dict[int, campaign_policy.Entry] = {}
        for kind, value in entry.keys.items():
            for other in self._by_key.get((kind, value), ()):
                others[other.id] = other
        return campaign_policy.needs_review(
            entry, sorted(others.values(), key=lambda e: e.id), self.per_customer
        )

    def add(self, entry: campaign_policy.Entry) -> None:
        for kind, value in entry.keys.items():
            self._by_key[(kind, value)].append(entry)


def curve_fills(plan: CampaignPlan) -> list[int]:
    """The waitlist sizes the sign-up batches start at: `curve_fills`, the last ones moved down
    so that a whole batch still fits in `signups`."""
    last = max(plan.signups - plan.curve_batch, 0)
    return sorted({min(fill, last) for fill in plan.curve_fills if fill >= 0})


def linear_fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y over x; one point or one x: flat through the mean."""
    if not points:
        raise ValueError("no points to fit")
    xs = [x for x, _y in points]
    ys = [y for _x, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return mean_y, 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return mean_y - slope * mean_x, slope


def interpolated_seconds(points: Sequence[tuple[float, float]], count: int) -> float:
    """The sum over fills 0..count-1 of the cost per sign-up, read off the measured points
    (fill, seconds) joined by straight lines: flat before the first, the last segment carried
    on after the last point."""
    if not points:
        raise ValueError("no points to interpolate")
    ordered = sorted(points)
    total = 0.0
    segment = 0
    for fill in range(count):
        while segment + 2 < len(ordered) and fill > ordered[segment + 1][0]:
            segment += 1
        if len(ordered) == 1 or fill <= ordered[0][0]:
            total += ordered[0][1]
            continue
        (x0, y0), (x1, y1) = ordered[segment], ordered[segment + 1]
        total += y0 + (y1 - y0) * (fill - x0) / (x1 - x0) if x1 != x0 else y1
    return total


def one_by_one_seconds(intercept: float, slope: float, count: int) -> float:
    """The sum over fills 0..count-1 of intercept + slope * fill: `count` sign-ups in a row."""
    return count * intercept + slope * count * (count - 1) / 2


def expected_wave(delivered: Mapping[str, int], paid: Mapping[str, int]) -> dict[str, int]:
    """Units a tick allocates per SKU once the last wave's unpaid entries expired: everything
    delivered and not paid for (deliveries never exceed the campaign's units), when enough
    entries wait."""
    return {code: units - paid.get(code, 0) for code, units in delivered.items()}


def significant(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------------------ ledgers
def config_for(plan: CampaignPlan, database: str, window: tuple[str, str] | None = None) -> Any:
    opens, closes = window or (T0.isoformat(), (T0 + timedelta(days=10)).isoformat())
    drop = {
        "skus": campaign_units(plan),
        "channels": [CHANNEL],
        "signup": {"opens": opens, "closes": closes},
        "method": "fcfs",
        "limits": {"per_customer": 1, "identity": list(IDENTITY)},
        "window_hours": plan.window_hours,
        "wave_every_hours": plan.wave_every_hours,
    }
    return StackConfig(
        rules={"defaults": {"safety_buffer": 0}},
        database=database,
        api_token=None,
        daemon=None,
        log_level="ERROR",
        manual_channels=(CHANNEL,),
        overrides={"campaigns": {CAMPAIGN: drop}},
    )


@dataclass
class Ledger:
    kind: str
    url: str
    config_path: Path
    ctx: AppContext

    @property
    def config(self) -> Config:
        return self.ctx.config


@contextmanager
def ledger(
    kind: str,
    folder: Path,
    pg_admin: str,
    plan: CampaignPlan,
    window: tuple[str, str] | None = None,
) -> Iterator[Ledger]:
    """A fresh, migrated ledger (SQLite in `folder`, or a new PostgreSQL database dropped
    afterwards) with the bench's campaign and its SKUs counted at 0."""
    with ExitStack() as stack:
        stamp = time.monotonic_ns()
        if kind == "postgresql":
            url = stack.enter_context(fresh_postgres(pg_admin))
        else:
            url = f"sqlite:///{folder / f'campaign-{stamp}.db'}"
        path = folder / f"stocksync-{stamp}.yaml"
        config_for(plan, url, window).write(path, None, None)
        config = load_config(path)
        upgrade(config.database)
        ctx = AppContext.open(config)
        stack.callback(ctx.close)
        with ctx.ledger(actor="bench", now=T0 - timedelta(days=1)) as tx:
            for code in campaign_units(plan):
                counts.set_stock(tx, code, 0, "bench: nothing yet")
        yield Ledger(kind, url, path, ctx)


# ------------------------------------------------------------------------------ 1. sign-up
@dataclass
class Waitlist:
    """The bench's view of the waitlist as it grows: how many entries, and their keys."""

    plan: CampaignPlan
    index: ReviewIndex
    count: int = 0
    review: int = 0
    sku_ids: dict[str, int] = field(default_factory=dict)

    def remember(self, entry_id: int, who: Customer, keys: dict[str, str], review: bool) -> None:
        self.index.add(
            campaign_policy.Entry(entry_id, who.sku, 1, signed_up_at(who.index, self.plan),
                                  None, keys)
        )  # fmt: skip
        self.count += 1
        self.review += int(review)


def bulk_fill(led: Ledger, waitlist: Waitlist, until: int, chunk: int = 2000) -> float:
    """Add sign-ups `waitlist.count`..`until`-1 as `sign_up` would leave them (status, keys,
    review reason naming the entry repeated, token, an audit entry each), in multi-row INSERTs;
    seconds taken."""
    started = time.perf_counter()
    plan = waitlist.plan
    while waitlist.count < until:
        first = waitlist.count
        people = [customer(i, plan) for i in range(first, min(first + chunk, until))]
        keys = [identity_keys(who.email, who.phone, None, None, IDENTITY) for who in people]
        times = [signed_up_at(who.index, plan) for who in people]
        tokens = [secrets.token_urlsafe(24) for _who in people]
        rows = [
            {"campaign": CAMPAIGN, "sku_id": waitlist.sku_ids[who.sku], "qty": 1,
             "email": who.email, "phone": who.phone, "country": None, "address": None,
             "tier": None, "keys": key, "status": "waiting", "token": token,
             "signed_up_at": at, "review_reason": None, "updated_at": at}
            for who, key, at, token in zip(people, keys, times, tokens, strict=True)
        ]  # fmt: skip
        with led.ctx.sessions.begin() as session:
            session.execute(insert(m.CampaignEntry), rows)
            ids = {
                str(token): int(entry_id)
                for token, entry_id in session.execute(
                    select(m.CampaignEntry.token, m.CampaignEntry.id).where(
                        m.CampaignEntry.token.in_(tokens)
                    )
                )
            }
            session.execute(
                insert(m.CampaignIdentity),
                [
                    {"campaign": CAMPAIGN, "kind": kind, "value": value, "entry_id": ids[token]}
                    for key, token in zip(keys, tokens, strict=True)
                    for kind, value in sorted(key.items())
                ],
            )
            reasons = []
            audits = []
            for who, key, at, token in zip(people, keys, times, tokens, strict=True):
                entry_id = ids[token]
                why = waitlist.index.reason(campaign_policy.Entry(entry_id, who.sku, 1, at, None,
                                                                  key))  # fmt: skip
                waitlist.remember(entry_id, who, key, why is not None)
                if why is not None:
                    reasons.append({"entry_id": entry_id, "why": why})
                audits.append({
                    "at": at, "actor": "bench",
                    "action": f"campaign.{'review' if why else 'waiting'}", "subject": CAMPAIGN,
                    "detail": {"entry": entry_id, "sku": who.sku, "qty": 1,
                               "why": why or "signed up"},
                })  # fmt: skip
            if reasons:
                _set_review(session, reasons)
            session.execute(insert(m.AuditEntry), audits)
    return time.perf_counter() - started


def _set_review(session: Session, reasons: Sequence[Mapping[str, Any]]) -> None:
    for row in reasons:
        session.execute(
            update(m.CampaignEntry)
            .where(m.CampaignEntry.id == row["entry_id"])
            .values(status="review", review_reason=row["why"])
        )


@contextmanager
def timed_calls(module: Any, name: str) -> Iterator[list[float]]:
    """Seconds of every call of `module.name` inside the block (the function is wrapped, and
    put back afterwards)."""
    original = getattr(module, name)
    spent: list[float] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - began)

    setattr(module, name, wrapper)
    try:
        yield spent
    finally:
        setattr(module, name, original)


def sign_up_batch(led: Ledger, waitlist: Waitlist, plan: CampaignPlan) -> dict[str, Any]:
    """Sign-ups through `campaign_service.sign_up`, one transaction each, from the current fill:
    `curve_batch` of them or as many as `curve_seconds` allow (at least `curve_min`)."""
    fill = waitlist.count
    room = plan.signups - fill
    if room <= 0:
        raise ValueError(f"the waitlist is full ({fill} of {plan.signups})")
    seconds: list[float] = []
    stats = StatementStats()
    with (
        count_statements(led.ctx.engine, into=stats),
        timed_calls(campaigns, "sharing_entries") as in_live,
    ):
        started = time.perf_counter()
        while len(seconds) < min(plan.curve_batch, room):
            if len(seconds) >= plan.curve_min and time.perf_counter() - started > (
                plan.curve_seconds
            ):
                break
            who = customer(waitlist.count, plan)
            form = service.SignUp(who.email, who.sku, 1, who.phone)
            began = time.perf_counter()
            with led.ctx.ledger(actor="bench", now=signed_up_at(who.index, plan)) as tx:
                entry = service.sign_up(tx, led.config, CAMPAIGN, form)
            seconds.append(time.perf_counter() - began)
            waitlist.remember(entry.id, who, entry.keys, entry.status == "review")
        took = time.perf_counter() - started
    count = len(seconds)
    return {
        "fill": fill,
        "signups": count,
        "seconds": round(took, 3),
        "rate": round(count / took, 2),
        "ms_median": round(1000 * statistics.median(seconds), 2),
        "ms_max": round(1000 * max(seconds), 2),
        "sharing_entries_pct": round(100 * sum(in_live) / took, 1) if took > 0 else None,
        "statements_per_signup": stats.per(count),
        "db_pct": stats.db_share(took),
        "top": [{"statement": s, "count": n} for s, n in stats.top(4)],
    }


def run_signups(led: Ledger, plan: CampaignPlan, progress: Callable[[str], None]) -> dict[str, Any]:
    """The sign-up curve, then the waitlist filled to `signups`."""
    with led.ctx.ledger(actor="bench", now=T0) as tx:
        sku_ids = counts.ensure_skus(tx, set(campaign_units(plan)))
    per_customer = led.config.campaign(CAMPAIGN).per_customer
    waitlist = Waitlist(plan, ReviewIndex(per_customer), sku_ids=dict(sku_ids))
    batches = []
    bulk_s = 0.0
    fills = curve_fills(plan)
    for fill in fills:
        if fill < waitlist.count:
            continue  # a batch already went past it
        bulk_s += bulk_fill(led, waitlist, fill)
        progress(f"{led.kind}: sign_up at {waitlist.count} entries")
        batches.append(sign_up_batch(led, waitlist, plan))
    bulk_s += bulk_fill(led, waitlist, plan.signups)
    points = [(b["fill"] + b["signups"] / 2, b["ms_median"] / 1000) for b in batches]
    intercept, slope = linear_fit(points)
    total_s = interpolated_seconds(points, plan.signups)
    return {
        "waitlist": waitlist,
        "batches": batches,
        "bulk_fill_s": round(bulk_s, 2),
        "through_sign_up": sum(b["signups"] for b in batches),
        "fit_ms": {"at_0": round(1000 * intercept, 3), "per_1000_entries": round(1e6 * slope, 3)},
        "one_by_one_s": round(total_s, 1),
        "one_by_one_rate": round(plan.signups / total_s, 2) if total_s > 0 else None,
    }


# ------------------------------------------------------------------------------ 2. import
def run_import(
    kind: str, folder: Path, pg_admin: str, plan: CampaignPlan, progress: Callable[[str], None]
) -> dict[str, Any]:
    """`stocksync waitlist import` of `import_rows` sign-ups (the first customers of the plan)
    on a fresh ledger whose sign-up window is open now; wall time of the subprocess."""
    window = ("2020-01-01T00:00:00+00:00", "2099-01-01T00:00:00+00:00")
    with ledger(kind, folder, pg_admin, plan, window) as led:
        path = folder / f"signups-{time.monotonic_ns()}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["email", "sku", "qty", "phone"])
            for i in range(plan.import_rows):
                who = customer(i, plan)
                writer.writerow([who.email, who.sku, 1, who.phone])
        progress(f"{kind}: waitlist import of {plan.import_rows} rows")
        command = [stocksync_executable(), "--config", str(led.config_path), "waitlist",
                   "import", CAMPAIGN, str(path), "--json"]  # fmt: skip
        started = time.perf_counter()
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=plan.import_timeout_s,
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"rows": plan.import_rows, "seconds": None, "rate": None,
                    "note": f"timed out after {plan.import_timeout_s:g} s"}  # fmt: skip
        took = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"waitlist import failed ({done.returncode}): {done.stderr[-500:]}")
        with led.ctx.read() as session:
            stored = session.scalar(
                select(func.count())
                .select_from(m.CampaignEntry)
                .where(m.CampaignEntry.campaign == CAMPAIGN)
            )
        if stored != plan.import_rows:
            raise RuntimeError(f"imported {plan.import_rows} rows but {stored} entries stored")
    return {"rows": plan.import_rows, "seconds": round(took, 2),
            "rate": round(plan.import_rows / took, 1), "note": None}  # fmt: skip


# ------------------------------------------------------------------------------ 3. waves
def _by_sku(
    allocations: Sequence[Mapping[str, Any]], codes: Sequence[str]
) -> dict[str, int]:  # fmt: skip
    units: Counter[str] = Counter()
    for row in allocations:
        units[str(row["sku"])] += int(row["qty"])
    return {code: units.get(code, 0) for code in codes}


def run_waves(
    led: Ledger, plan: CampaignPlan, progress: Callable[[str], None]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Deliveries, ticks and payments; per tick its figures, and the payments' figures."""
    codes = sku_codes(plan.skus)
    rng = random.Random(plan.seed)
    delivered: Counter[str] = Counter()
    paid: Counter[str] = Counter()
    pending: set[int] = set()
    waves: list[dict[str, Any]] = []
    confirm_s = 0.0
    confirm_stats = StatementStats()
    confirmed = 0
    arrivals = [*deliveries(plan), {}]  # the last tick: no delivery, the last expiries
    for k, arriving in enumerate(arrivals):
        at = FIRST_WAVE + WAVE_GAP * k
        if arriving:
            with led.ctx.ledger(actor="bench", now=at - timedelta(minutes=1)) as tx:
                for code, arrived in arriving.items():
                    counts.adjust_stock(tx, code, arrived, f"bench: delivery {k + 1}")
            delivered.update(arriving)
        progress(f"{led.kind}: tick {k + 1} of {len(arrivals)}")
        with (
            count_statements(led.ctx.engine) as stats,
            timed_calls(campaigns, "entries") as reading,
        ):
            started = time.perf_counter()
            with led.ctx.ledger(actor="bench", now=at) as tx:
                done = service.tick(tx, led.config, CAMPAIGN)
            took = time.perf_counter() - started
        allocated = done["wave"]["allocated"] if done["wave"] else []
        units = _by_sku(allocated, codes)
        wanted = expected_wave(dict(delivered), paid)
        if sorted(done["expired"]) != sorted(pending):
            raise RuntimeError(f"tick {k + 1} expired {len(done['expired'])} entries, "
                               f"{len(pending)} were unpaid past their deadline")  # fmt: skip
        if units != {code: wanted.get(code, 0) for code in codes} or done["cancelled"]:
            raise RuntimeError(f"tick {k + 1} allocated {units} (cancelled "
                               f"{done['cancelled']}), wanted {wanted}")  # fmt: skip
        wave_ids = [int(row["entry"]) for row in allocated]
        payers = sorted(rng.sample(wave_ids, round(plan.confirm_share * len(wave_ids))))
        with count_statements(led.ctx.engine, into=confirm_stats):
            started = time.perf_counter()
            for entry_id in payers:
                with led.ctx.ledger(actor="bench", now=at + PAY_AFTER) as tx:
                    row = service.confirm(tx, led.config, entry_id, CHANNEL)
                paid[row.sku] += row.qty
            confirm_s += time.perf_counter() - started
        confirmed += len(payers)
        pending = set(wave_ids) - set(payers)
        count = len(allocated)
        waves.append({
            "tick": k + 1, "wave": done["wave"]["number"] if done["wave"] else None,
            "delivered": sum(arriving.values()), "expired": len(done["expired"]),
            "allocated": count, "allocated_by_sku": units, "paid": len(payers),
            "seconds": round(took, 3),
            "ms_per_allocated": round(1000 * took / count, 3) if count else None,
            "rate": round(count / took, 1) if count else None,
            "entries_reads": len(reading),
            "entries_pct": round(100 * sum(reading) / took, 1),
            "statements": stats.statements,
            "statements_per_allocated": stats.per(count),
            "db_pct": stats.db_share(took),
            "top": [{"statement": s, "count": n} for s, n in stats.top(4)],
        })  # fmt: skip
    payments = {
        "confirmed": confirmed,
        "seconds": round(confirm_s, 2),
        "rate": round(confirmed / confirm_s, 1) if confirm_s else None,
        "statements_per_confirm": confirm_stats.per(confirmed),
        "db_pct": confirm_stats.db_share(confirm_s),
        "pending_at_end": len(pending),
        "paid_units": dict(paid),
        "delivered": dict(delivered),
    }
    return waves, payments


def check_outcome(
    led: Ledger,
    plan: CampaignPlan,
    waves: Sequence[Mapping[str, Any]],
    payments: Mapping[str, Any],
    report: Mapping[str, Any],
    review: int,
) -> dict[str, Any]:
    """Allocations never beyond the units; each entry allocated at most once; paid entries are
    orders holding their units; the report agrees with the bench's book-keeping."""
    units = campaign_units(plan)
    with led.ctx.read() as session:
        held = {
            str(code): int(n or 0)
            for code, n in session.execute(
                select(m.Sku.code, func.sum(m.CampaignEntry.qty))
                .join(m.Sku, m.Sku.id == m.CampaignEntry.sku_id)
                .where(
                    m.CampaignEntry.campaign == CAMPAIGN,
                    m.CampaignEntry.status.in_(("allocated", "confirmed")),
                )
                .group_by(m.Sku.code)
            )
        }
        on_hand = counts.on_hand_of(session, units)
        details = session.scalars(
            select(m.AuditEntry.detail).where(
                m.AuditEntry.action == "campaign.allocated", m.AuditEntry.subject == CAMPAIGN
            )
        ).all()
        with_wave = session.scalar(
            select(func.count())
            .select_from(m.CampaignEntry)
            .where(m.CampaignEntry.campaign == CAMPAIGN, m.CampaignEntry.wave.is_not(None))
        )
        review_allocated = session.scalar(
            select(func.count())
            .select_from(m.CampaignEntry)
            .where(
                m.CampaignEntry.campaign == CAMPAIGN,
                m.CampaignEntry.review_reason.is_not(None),
                m.CampaignEntry.wave.is_not(None),
            )
        )
        orders = session.scalar(
            select(func.count())
            .select_from(m.ChannelOrder)
            .where(m.ChannelOrder.channel == CHANNEL)
        )
        reserved = session.scalar(select(func.coalesce(func.sum(m.Reservation.qty), 0)))
    per_entry = Counter(int(d["entry"]) for d in details)
    allocations = sum(int(w["allocated"]) for w in waves)
    problems = []
    for code, limit in units.items():
        stock = on_hand[code].on_hand if code in on_hand else 0
        if held.get(code, 0) > min(limit, stock):
            problems.append(f"{code}: {held[code]} units held, {limit} set aside, {stock} on hand")
    twice = [entry for entry, n in per_entry.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} entries allocated more than once, e.g. {twice[:5]}")
    if len(per_entry) != allocations or with_wave != allocations:
        problems.append(f"{allocations} allocations in the waves, {len(per_entry)} entries with "
                        f"an allocation audit, {with_wave} with a wave")  # fmt: skip
    if review_allocated:
        problems.append(f"{review_allocated} entries held for review were allocated")
    if orders != payments["confirmed"] or reserved != payments["confirmed"]:
        problems.append(f"{payments['confirmed']} paid, {orders} orders, {reserved} reserved")
    totals = report["totals"]
    expired = sum(int(w["expired"]) for w in waves)
    wanted = {"signups": plan.signups, "allocated": allocations,
              "confirmed": payments["confirmed"], "expired": expired,
              "pending": payments["pending_at_end"], "review": review, "declined": 0}  # fmt: skip
    found = {key: totals[key] for key in wanted}
    if found != wanted:
        problems.append(f"report totals {found}, the bench counted {wanted}")
    if problems:
        raise RuntimeError("campaign bench: " + "; ".join(problems))
    return {"ok": True, "held": held, "allocations": allocations, "entries_allocated_once":
            len(per_entry), "orders": orders, "review": review}  # fmt: skip


def run_report(led: Ledger) -> tuple[dict[str, Any], float, StatementStats]:
    with count_statements(led.ctx.engine) as stats:
        started = time.perf_counter()
        with led.ctx.read() as session:
            data = campaign_report.report(session, led.config, CAMPAIGN)
        took = time.perf_counter() - started
    return data, took, stats


# ------------------------------------------------------------------------------ the run
def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_campaigns(
    plan: CampaignPlan,
    *,
    kinds: Sequence[str] = ("sqlite",),
    pg_admin: str = PG_ADMIN_URL,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    if plan.signups < 1 or plan.units < 1 or plan.waves < 1 or plan.skus < 1:
        raise ValueError(f"need at least one sign-up, unit, wave and SKU: {plan}")
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown database kinds {sorted(unknown)}; known: {KINDS}")
    report: dict[str, Any] = {
        "bench": "campaigns",
        "environment": environment(),
        "plan": asdict(plan),
        "load_start": load(),
        "runs": [],
    }
    progress("ceilings")
    ceiling_kwargs: dict[str, Any] = {
        "seconds": plan.ceiling_seconds, "clients": (1,), "pg_admin": pg_admin
    }  # fmt: skip
    before = ceiling.measure(kinds, **ceiling_kwargs)
    with tempfile.TemporaryDirectory(prefix="stocksync-campaigns-") as tmp:
        folder = Path(tmp)
        for kind in kinds:
            started = time.perf_counter()
            with ledger(kind, folder, pg_admin, plan) as led:
                signups = run_signups(led, plan, progress)
                waitlist: Waitlist = signups.pop("waitlist")
                waves, payments = run_waves(led, plan, progress)
                data, report_s, report_stats = run_report(led)
                check = check_outcome(led, plan, waves, payments, data, waitlist.review)
            imported = run_import(kind, folder, pg_admin, plan, progress)
            report["runs"].append({
                "database": kind, "signup": signups, "import": imported, "waves": waves,
                "payments": payments, "report_s": round(report_s, 3),
                "report_statements": report_stats.statements, "totals": data["totals"],
                "check": check, "run_s": round(time.perf_counter() - started, 1),
            })  # fmt: skip
    after = None
    if plan.ceiling_again:
        progress("ceilings again")
        after = ceiling.measure(kinds, **ceiling_kwargs)
    report["ceilings"] = ceilings_summary(kinds, before, after)
    report["load_end"] = load()
    for run in report["runs"]:
        base = report["ceilings"][run["database"]]["ratio_base_tps"]
        run["ceiling_tps"] = base
        add_ratios(run, base)
    return report


def ceilings_summary(
    kinds: Sequence[str], before: ceiling.Ceilings, after: ceiling.Ceilings | None
) -> dict[str, Any]:
    """Per database: the 1-client ceiling before (and after); the ratio's base is their mean."""
    found: dict[str, Any] = {}
    for kind in kinds:
        measured = [c.of(kind) for c in (before, after) if c is not None]
        values = [v for v in measured if v is not None]
        found[kind] = {
            "before_tps": _r(before.of(kind), 1),
            "after_tps": _r(after.of(kind), 1) if after is not None else None,
            "ratio_base_tps": _r(statistics.fmean(values), 1) if values else None,
        }
    return found


def ratio_of(rate: float | None, base: float | None) -> float | None:
    """Rate (units/s) ÷ ceiling (tx/s), 3 significant digits; None without either."""
    return significant(rate / base) if rate and base else None


def add_ratios(run: dict[str, Any], base: float | None) -> None:
    for batch in run["signup"]["batches"]:
        batch["ratio"] = ratio_of(batch["rate"], base)
    run["signup"]["one_by_one_ratio"] = ratio_of(run["signup"]["one_by_one_rate"], base)
    run["import"]["ratio"] = ratio_of(run["import"]["rate"], base)
    for wave in run["waves"]:
        wave["ratio"] = ratio_of(wave["rate"], base)
    run["payments"]["ratio"] = ratio_of(run["payments"]["rate"], base)


# ------------------------------------------------------------------------------ report
SIGNUP_HEADERS = ["path", "sign-ups", "entries/s", "ms median", "% in sharing_entries",
                  "statements each", "% in DB", "ceiling tx/s", "ratio"]  # fmt: skip
WAVE_HEADERS = ["tick", "wave", "delivered", "expired", "allocated", "paid", "tick s",
                "ms / allocated", "% reading entries (reads)", "statements", "per allocated",
                "% in DB", "ceiling tx/s", "ratio (allocated/s)"]  # fmt: skip


def tables(report: Mapping[str, Any]) -> str:
    out = []
    rows = [
        [kind, c["before_tps"], c["after_tps"], c["ratio_base_tps"]]
        for kind, c in report["ceilings"].items()
    ]
    out.append(
        "Ceilings, tx/s (SQLite: stdlib WAL update loop; PostgreSQL: pgbench single-row "
        "UPDATE, 1 client):\n\n"
        + markdown_table(["database", "before", "after", "ratio base"], rows)
    )
    plan = report["plan"]
    for run in report["runs"]:
        kind, base = run["database"], run["ceiling_tps"]
        signup = run["signup"]
        rows = [
            [f"sign_up, {b['fill']:,} → {b['fill'] + b['signups']:,} entries", b["signups"],
             b["rate"], b["ms_median"], b["sharing_entries_pct"], b["statements_per_signup"],
             b["db_pct"], base, b["ratio"]]
            for b in signup["batches"]
        ]  # fmt: skip
        rows.append([
            f"{plan['signups']:,} sign_up one by one, interpolated: {signup['one_by_one_s']:,} s "
            f"(fit: {signup['fit_ms']['per_1000_entries']} ms more per 1,000 entries there)",
            plan["signups"], signup["one_by_one_rate"], None, None, None, None, base,
            signup["one_by_one_ratio"],
        ])  # fmt: skip
        imp = run["import"]
        rows.append([
            f"`waitlist import` CSV, fresh ledger ({imp['note'] or 'real CLI, wall time'})",
            imp["rows"], imp["rate"], None, None, None, None, base, imp["ratio"],
        ])  # fmt: skip
        out.append(
            f"Sign-up, {kind} (bulk fill of the rest: {signup['bulk_fill_s']} s):\n\n"
            + markdown_table(SIGNUP_HEADERS, rows)
        )
        rows = [
            [w["tick"], w["wave"], w["delivered"], w["expired"], w["allocated"], w["paid"],
             w["seconds"], w["ms_per_allocated"], f"{w['entries_pct']} ({w['entries_reads']})",
             w["statements"], w["statements_per_allocated"], w["db_pct"], base, w["ratio"]]
            for w in run["waves"]
        ]  # fmt: skip
        pay = run["payments"]
        out.append(
            f"Waves, {kind} ({plan['signups']:,} entries; payments: {pay['confirmed']} confirms, "
            f"{pay['rate']}/s, {pay['statements_per_confirm']} statements each, ratio "
            f"{pay['ratio']}; `campaign report`: {run['report_s']} s, "
            f"{run['report_statements']} statements):\n\n" + markdown_table(WAVE_HEADERS, rows)
        )
    out.append(f"Load average at start {report['load_start']}, at end {report['load_end']}.")
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.campaigns",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="5,000 sign-ups, 500 units")
    parser.add_argument("--json-out", type=Path, default=default_json_path("campaigns"))
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=PG_ADMIN_URL,
        default=None,
        help="also run on a fresh PostgreSQL database (admin URL, default %(const)s)",
    )
    parser.add_argument("--postgres-only", action="store_true", help="no SQLite run")
    parser.add_argument("--signups", type=int)
    parser.add_argument("--units", type=int)
    parser.add_argument("--waves", type=int)
    parser.add_argument("--skus", type=int)
    parser.add_argument("--import-rows", type=int)
    parser.add_argument("--curve-seconds", type=float, help="per fill level")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    overrides = {
        "signups": args.signups,
        "units": args.units,
        "waves": args.waves,
        "skus": args.skus,
        "import_rows": args.import_rows,
        "curve_seconds": args.curve_seconds,
        "seed": args.seed,
    }
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    if args.postgres_only:
        kinds: tuple[str, ...] = ("postgresql",)
        pg_admin = args.postgres or PG_ADMIN_URL
    else:
        kinds = ("sqlite", "postgresql") if args.postgres else ("sqlite",)
        pg_admin = args.postgres or PG_ADMIN_URL

    def progress(message: str) -> None:
        print(f"... {message}", flush=True)

    report = run_campaigns(plan, kinds=kinds, pg_admin=pg_admin, progress=progress)
    path = write_json(report, args.json_out)
    print(tables(report))
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
