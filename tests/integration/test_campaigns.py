"""Limited-drop campaigns on the ledger (issue #15), with an injected clock, on SQLite and
PostgreSQL: the waitlist's life (waiting -> allocated -> confirmed | expired), waves, limits and
review, units held out of every channel's offer, and the CLI."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from rules import parse_config
from stock import campaigns, counts, offers
from stock import models as m
from stock.db import upgrade
from stock.tx import LedgerInputError
from sync import campaign_service as service
from sync.context import AppContext

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CONFIG = """\
database: {url}
tiers: [vip, regular]
channels:
  shop: {{kind: manual}}
  popup: {{kind: manual}}
campaigns:
  spring-drop:
    skus: {{HOODIE-S: 2}}
    channels: [popup]
    signup: {{opens: 2026-12-01T10:00:00+00:00, closes: 2026-12-04T10:00:00+00:00}}
    method: {method}{tiers}
    limits: {{per_customer: 1, identity: [email, phone]}}
    window_hours: 12
    wave_every_hours: 2
"""


def opened(url: str, method: str = "fcfs") -> AppContext:
    upgrade(url)
    tiers = "\n    tiers: {vip: 1}" if method == "tiers" else ""
    config = parse_config(
        CONFIG.format(url=url, method=method, tiers=tiers), "stocksync.yaml", env={}
    )
    ctx = AppContext.open(config)
    with ctx.ledger(actor="test", now=T0 - timedelta(days=1)) as tx:
        counts.set_stock(tx, "HOODIE-S", 5)
    return ctx


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ctx_factory(
    request: pytest.FixtureRequest, tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> Iterator[Callable[[str], AppContext]]:
    made: list[AppContext] = []
    if request.param == "sqlite":

        def make(method: str = "fcfs") -> AppContext:
            folder = tmp_path / f"{len(made)}"
            folder.mkdir()
            made.append(opened(fresh_sqlite(folder), method))
            return made[-1]

        yield make
    else:
        from sync.stack import fresh_postgres
        from tests.conftest import PG_ADMIN_URL

        stack = []

        def make(method: str = "fcfs") -> AppContext:
            context = fresh_postgres(PG_ADMIN_URL, prefix="stocksync_t_")
            stack.append(context)
            made.append(opened(context.__enter__(), method))
            return made[-1]

        yield make
        for context in stack:
            context.__exit__(None, None, None)
    for ctx in made:
        ctx.close()


def sign_up(ctx: AppContext, at: datetime, email: str, **more: Any) -> campaigns.EntryRow:
    with ctx.ledger(actor="test", now=at) as tx:
        return service.sign_up(
            tx, ctx.config, "spring-drop", service.SignUp(email, "HOODIE-S", **more)
        )


def tick(ctx: AppContext, at: datetime) -> dict[str, Any]:
    with ctx.ledger(actor="test", now=at) as tx:
        return service.tick(tx, ctx.config, "spring-drop")


def status(ctx: AppContext) -> dict[int, str]:
    with ctx.read() as session:
        return {e.id: e.status for e in campaigns.entries(session, "spring-drop")}


def offered(ctx: AppContext, at: datetime) -> int:
    with ctx.ledger(actor="test", now=at) as tx:
        value, _terms = offers.offer(tx, "shop", "HOODIE-S")
    return value


def allocated_units(ctx: AppContext) -> int:
    with ctx.read() as session:
        return sum(campaigns.held_units(session, "spring-drop").values())


def test_three_sign_ups_for_two_units_one_pays_one_expires_the_third_gets_the_next_wave(
    ctx_factory: Callable[[str], AppContext],
) -> None:
    ctx = ctx_factory("fcfs")
    assert offered(ctx, T0) == 3  # 5 on hand, 2 set aside for the campaign
    a = sign_up(ctx, T0 + timedelta(minutes=1), "ann@example.com")
    b = sign_up(ctx, T0 + timedelta(minutes=2), "bob@example.com")
    c = sign_up(ctx, T0 + timedelta(minutes=3), "cy@example.com")
    first = tick(ctx, T0 + timedelta(minutes=5))
    assert [row["entry"] for row in first["wave"]["allocated"]] == [a.id, b.id]
    assert status(ctx) == {a.id: "allocated", b.id: "allocated", c.id: "waiting"}
    assert allocated_units(ctx) == 2

    with ctx.ledger(actor="test", now=T0 + timedelta(hours=1)) as tx:
        service.confirm(tx, ctx.config, a.id)
    assert offered(ctx, T0 + timedelta(hours=1)) == 3  # the unit is an order now, not set aside
    # the next wave is due at +2 h, but nothing is free: b holds the other unit until +12 h
    assert tick(ctx, T0 + timedelta(hours=3))["wave"] is None
    assert allocated_units(ctx) == 2

    later = tick(ctx, T0 + timedelta(hours=12, minutes=6))  # b's deadline passed
    assert later["expired"] == [b.id]
    assert [row["entry"] for row in later["wave"]["allocated"]] == [c.id]
    assert status(ctx) == {a.id: "confirmed", b.id: "expired", c.id: "allocated"}
    assert allocated_units(ctx) == 2  # never more than the 2 units

    with ctx.read() as session:
        actions = list(
            session.scalars(
                select(m.AuditEntry.action)
                .where(m.AuditEntry.subject == "spring-drop")
                .order_by(m.AuditEntry.id)
            )
        )
    assert actions.count("campaign.allocated") == 3 and "campaign.expired" in actions


def test_limits_send_repeated_identities_to_review_not_to_the_queue(
    ctx_factory: Callable[[str], AppContext],
) -> None:
    ctx = ctx_factory("fcfs")
    first = sign_up(ctx, T0 + timedelta(minutes=1), "Ann.Lee@Example.com", phone="+31 6 12345678")
    again = sign_up(ctx, T0 + timedelta(minutes=2), "ann.lee@example.com")
    phone = sign_up(ctx, T0 + timedelta(minutes=3), "other@example.com", phone="0612345678",
                    country="NL")  # fmt: skip
    greedy = sign_up(ctx, T0 + timedelta(minutes=4), "greedy@example.com", qty=2)
    assert first.status == "waiting"
    assert [e.status for e in (again, phone, greedy)] == ["review"] * 3
    assert "email" in (again.review_reason or "") and "phone" in (phone.review_reason or "")
    wave = tick(ctx, T0 + timedelta(minutes=5))["wave"]
    assert [row["entry"] for row in wave["allocated"]] == [first.id]  # review entries wait
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=6)) as tx:
        approved = service.review(tx, phone.id, True, "a household: two people")
        with pytest.raises(LedgerInputError, match="needs a reason"):
            service.review(tx, greedy.id, False, " ")
    assert approved.status == "waiting"


def test_a_lottery_draw_is_the_same_for_the_same_seed(
    ctx_factory: Callable[[str], AppContext],
) -> None:
    draws = []
    for _ in range(2):
        ctx = ctx_factory("lottery")
        for n in range(8):
            sign_up(ctx, T0 + timedelta(minutes=n + 1), f"c{n}@example.com")
        with ctx.ledger(actor="test", now=T0 + timedelta(hours=1)) as tx:
            state = campaigns.lock_state(tx, "spring-drop")
            state.seed = 20261130  # the published seed
        with ctx.ledger(actor="test", now=T0 + timedelta(hours=1)) as tx:
            preview = service.allocate(tx, ctx.config, "spring-drop", dry_run=True)
        with ctx.ledger(actor="test", now=T0 + timedelta(hours=1)) as tx:
            wave = service.allocate(tx, ctx.config, "spring-drop")
        assert wave.seed == 20261130
        assert preview.allocations == wave.allocations  # the dry run shows the very draw
        draws.append([(row["email"], row["qty"]) for row in wave.allocations])
    assert draws[0] == draws[1] and len(draws[0]) == 2


def test_sign_ups_outside_the_window_or_for_other_skus_are_refused(
    ctx_factory: Callable[[str], AppContext],
) -> None:
    ctx = ctx_factory("fcfs")
    with pytest.raises(LedgerInputError, match="sign-up is open from"):
        sign_up(ctx, T0 - timedelta(minutes=1), "early@example.com")
    with pytest.raises(LedgerInputError, match="is not in campaign"), ctx.ledger(now=T0) as tx:
        service.sign_up(tx, ctx.config, "spring-drop", service.SignUp("a@example.com", "MUG"))
    with pytest.raises(LedgerInputError, match="email"):
        sign_up(ctx, T0 + timedelta(minutes=1), "not-an-email")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["sign_up", "tick", "confirm", "approve"]),
            st.integers(0, 20),  # minutes or hours on, a customer number
        ),
        min_size=1,
        max_size=25,
    )
)
def test_no_unit_is_allocated_twice_and_allocations_never_exceed_the_units(
    tmp_path: Path, fresh_sqlite: Callable[[Path], str], steps: list[tuple[str, int]]
) -> None:
    folder = tmp_path / f"p{abs(hash(tuple(steps)))}"
    folder.mkdir(exist_ok=True)
    ctx = opened(fresh_sqlite(folder))
    try:
        now = T0
        for action, n in steps:
            now += timedelta(minutes=17)
            if action == "sign_up":
                with contextlib.suppress(LedgerInputError):  # after the window
                    sign_up(ctx, now, f"c{n}@example.com", qty=1 + n % 2)
            elif action == "tick":
                now += timedelta(hours=n)
                tick(ctx, now)
            else:
                with ctx.read() as session:
                    wanted = "allocated" if action == "confirm" else "review"
                    rows = campaigns.entries(session, "spring-drop", [wanted])
                if rows:
                    with ctx.ledger(actor="test", now=now) as tx:
                        if action == "confirm":
                            service.confirm(tx, ctx.config, rows[0].id)
                        else:
                            service.review(tx, rows[0].id, True, "checked")
            assert allocated_units(ctx) <= 2
        with ctx.read() as session:
            allocations = session.execute(
                select(func.json_extract(m.AuditEntry.detail, "$.entry"), func.count())
                .where(m.AuditEntry.action == "campaign.allocated")
                .group_by(func.json_extract(m.AuditEntry.detail, "$.entry"))
            ).all()
        assert all(count == 1 for _entry, count in allocations)
    finally:
        ctx.close()


def test_the_cli_signs_up_allocates_with_a_dry_run_first_and_lists(tmp_path: Path) -> None:
    path = tmp_path / "stocksync.yaml"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    text = CONFIG.format(url=url, method="fcfs", tiers="").replace(
        "2026-12-01T10:00:00+00:00, closes: 2026-12-04T10:00:00+00:00",
        "2020-01-01T00:00:00+00:00, closes: 2099-01-01T00:00:00+00:00",
    )
    path.write_text(text, encoding="utf-8")

    def run(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            ["stocksync", "--config", str(path), *args, "--json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    subprocess.run(["stocksync", "--config", str(path), "db", "upgrade"], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    run("stock", "set", "HOODIE-S", "5")
    added = run("waitlist", "add", "spring-drop", "--email", "a@example.com", "--sku", "HOODIE-S")
    assert added["status"] == "waiting" and added["token"]
    csv_file = tmp_path / "signups.csv"
    csv_file.write_text("email,sku,qty\nb@example.com,HOODIE-S,1\nc@example.com,HOODIE-S,1\n")
    assert run("waitlist", "import", "spring-drop", str(csv_file))["imported"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("email,sku,qty\nd@example.com,HOODIE-S,1\ne@example.com,MUG,1\n")
    refused = subprocess.run(
        ["stocksync", "--config", str(path), "waitlist", "import", "spring-drop", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and f"{bad}:3:" in refused.stderr
    assert len(run("waitlist", "list", "spring-drop")["entries"]) == 3  # all or nothing
    # overrides, each with its reason in the audit log: one entry out of turn, one skipped
    friend = run("waitlist", "add", "spring-drop", "--email", "d@example.com", "--sku",
                 "HOODIE-S", "--channel", "popup")  # fmt: skip
    assert friend["channel"] == "popup"
    no_reason = subprocess.run(
        ["stocksync", "--config", str(path), "campaign", "allocate", "spring-drop", "--entry",
         str(friend["id"])], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    chosen = run("campaign", "allocate", "spring-drop", "--entry", str(friend["id"]),
                 "--reason", "the merchant's friend")  # fmt: skip
    assert chosen["status"] == "allocated" and chosen["expires_at"]
    waiting = run("waitlist", "list", "spring-drop", "--status", "waiting")["entries"]
    assert [e["email"] for e in waiting] == ["a@example.com", "b@example.com", "c@example.com"]
    skipped = run("campaign", "skip", str(waiting[2]["id"]), "--reason", "asked to leave")
    assert skipped["status"] == "declined"

    dry = run("campaign", "allocate", "spring-drop", "--dry-run")
    assert [row["email"] for row in dry["allocations"]] == ["a@example.com"]  # 1 unit free
    assert len(run("waitlist", "list", "spring-drop", "--status", "waiting")["entries"]) == 2
    wave = run("campaign", "allocate", "spring-drop")
    assert wave["wave"] == 1 and len(wave["allocations"]) == 1
    shown = run("campaign", "show", "spring-drop")
    assert shown["counts"] == {"HOODIE-S": {"allocated": 2, "declined": 1, "waiting": 1}}
    explained = run("explain", "HOODIE-S", "--channel", "shop")
    assert explained["channels"][0]["terms"]["campaign_hold"] == 2
    full = subprocess.run(
        ["stocksync", "--config", str(path), "campaign", "allocate", "spring-drop", "--entry",
         str(waiting[1]["id"]), "--reason", "vip"], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert full.returncode == 2 and "0 free in the campaign" in full.stderr  # both units held


def test_the_storefront_signs_up_over_http_and_reads_its_status_page(tmp_path: Path) -> None:
    """`stocksync run`'s public API: sign-up (rate-limited per address), the status page by
    its private token; bad forms are 400s that say why."""
    import dataclasses

    import requests

    from sync import stack
    from tests.support.stack import Stack, stack_config

    campaign = {
        "skus": {"DEMO-1": 3},
        "channels": ["popup"],
        "signup": {"opens": "2020-01-01T00:00:00+00:00", "closes": "2099-01-01T00:00:00+00:00"},
        "limits": {"per_customer": 1},
    }
    config = dataclasses.replace(stack_config(), overrides={"campaigns": {"drop": campaign}})
    with stack.start_stack(Stack, tmp_path, config, {"DEMO-1": 10}, actor="test") as running:
        assert running.daemon is not None
        running.daemon.wait_idle()  # the campaign job of the daemon's start: nothing to do yet
        base = f"{running.daemon_url}/api/campaigns/drop"
        reply = requests.post(f"{base}/waitlist", json={"email": "a@example.com", "sku": "DEMO-1"},
                              timeout=10)  # fmt: skip
        assert reply.status_code == 201, reply.text
        entry = reply.json()
        assert entry["status"] == "waiting" and len(entry["token"]) >= 24
        page = requests.get(f"{running.daemon_url}{entry['status_url']}", timeout=10).json()
        assert page["status"] == "waiting" and "waitlist" in page["next"]
        assert any("At most 1 per customer" in rule for rule in page["rules"])
        assert requests.get(f"{base}/entries/not-a-token", timeout=10).status_code == 404
        assert requests.post(f"{running.daemon_url}/api/campaigns/nope/waitlist", json={},
                             timeout=10).status_code == 404  # fmt: skip
        bad = requests.post(f"{base}/waitlist", json={"email": "b@example.com", "sku": "MUG"},
                            timeout=10)  # fmt: skip
        assert bad.status_code == 400 and "not in campaign drop" in bad.json()["error"]
        codes = [
            requests.post(f"{base}/waitlist", json={"email": f"c{n}@example.com", "sku": "DEMO-1"},
                          timeout=10).status_code
            for n in range(10)
        ]  # fmt: skip
        assert codes.count(201) == 8 and codes[-1] == 429  # 10 a minute per address, 2 used
        with running.ctx.read() as session:
            assert len(campaigns.entries(session, "drop")) == 9
        # the units are out of both shops' offers: 10 on hand, 3 set aside
        running.wait_until(lambda: running.shop_available("DEMO-1") == 7, 20, "shop at 7")
        # the daemon's campaign job runs the wave that is due (every minute; here at once)
        running.daemon.actors.campaign_tick.send()
        running.daemon.wait_idle()
        page = requests.get(f"{running.daemon_url}{entry['status_url']}", timeout=10).json()
        assert page["status"] == "allocated" and page["deadline"]
        assert page["next"].startswith("A unit is yours: pay before")
        with running.ctx.read() as session:
            assert len(campaigns.entries(session, "drop", ["allocated"])) == 3


def test_at_close_the_rest_is_not_allocated_and_the_units_go_back_to_the_shops(
    ctx_factory: Callable[[str], AppContext],
) -> None:
    ctx = ctx_factory("fcfs")
    paid = sign_up(ctx, T0 + timedelta(minutes=1), "a@example.com")
    tick(ctx, T0 + timedelta(minutes=2))
    with ctx.ledger(actor="test", now=T0 + timedelta(minutes=3)) as tx:
        service.confirm(tx, ctx.config, paid.id)
    held = sign_up(ctx, T0 + timedelta(days=2), "a@example.com")  # review: a repeat
    closes = T0 + timedelta(days=3)
    assert tick(ctx, closes - timedelta(minutes=1))["closed"] is False
    assert offered(ctx, closes) == 3  # 5 on hand, 1 sold, 1 still set aside
    done = tick(ctx, closes + timedelta(hours=2))
    assert done["closed"] is True
    assert status(ctx) == {paid.id: "confirmed", held.id: "not_allocated"}
    assert offered(ctx, closes + timedelta(hours=2)) == 4  # nothing set aside any more
    assert tick(ctx, closes + timedelta(hours=3))["wave"] is None


def test_tiers_take_their_reserved_units_first_then_everyone_in_line(
    ctx_factory: Callable[[str], AppContext],
) -> None:
    ctx = ctx_factory("tiers")
    first = sign_up(ctx, T0 + timedelta(minutes=1), "r1@example.com", tier="regular")
    second = sign_up(ctx, T0 + timedelta(minutes=2), "r2@example.com")
    vip = sign_up(ctx, T0 + timedelta(minutes=3), "v1@example.com", tier="vip")
    wave = tick(ctx, T0 + timedelta(minutes=4))["wave"]
    assert {row["entry"] for row in wave["allocated"]} == {vip.id, first.id}
    with ctx.read() as session:
        reserve = {e.id: e for e in campaigns.entries(session, "spring-drop", ["allocated"])}
        assert campaigns.tier_reserve_taken(session, "spring-drop") == {"vip": 1}
    assert set(reserve) == {vip.id, first.id} and second.id not in reserve


def test_overrides_allocate_out_of_turn_or_skip_with_a_reason(
    ctx_factory: Callable[[str], AppContext],
) -> None:
    ctx = ctx_factory("fcfs")
    a = sign_up(ctx, T0 + timedelta(minutes=1), "a@example.com")
    b = sign_up(ctx, T0 + timedelta(minutes=2), "b@example.com")
    c = sign_up(ctx, T0 + timedelta(minutes=3), "c@example.com")
    at = T0 + timedelta(minutes=4)
    with ctx.ledger(actor="test", now=at) as tx:
        service.allocate_entry(tx, ctx.config, c.id, "the influencer we promised one")
        service.skip(tx, a.id, "chargeback history")
        with pytest.raises(LedgerInputError, match="needs a reason"):
            service.skip(tx, b.id, "")
    wave = tick(ctx, at + timedelta(minutes=1))["wave"]
    assert [row["entry"] for row in wave["allocated"]] == [b.id]
    assert status(ctx) == {a.id: "declined", b.id: "allocated", c.id: "allocated"}
    with ctx.ledger(actor="test", now=at) as tx, pytest.raises(LedgerInputError, match="free"):
        late = service.sign_up(tx, ctx.config, "spring-drop",
                               service.SignUp("d@example.com", "HOODIE-S"))  # fmt: skip
        service.allocate_entry(tx, ctx.config, late.id, "no unit left for this one")


def test_a_payment_after_the_deadline_is_refused_even_before_the_tick(
    ctx_factory: Callable[[str], AppContext],
) -> None:
    ctx = ctx_factory("fcfs")
    entry = sign_up(ctx, T0 + timedelta(minutes=1), "a@example.com")
    tick(ctx, T0 + timedelta(minutes=2))
    late = T0 + timedelta(minutes=2, hours=12, seconds=1)
    with pytest.raises(LedgerInputError, match="deadline passed"), ctx.ledger(now=late) as tx:
        service.confirm(tx, ctx.config, entry.id)
    assert status(ctx) == {entry.id: "allocated"}  # the next tick expires it


def test_two_campaigns_on_one_sku_never_allocate_the_same_units(
    tmp_path: Path, fresh_sqlite: Callable[[Path], str]
) -> None:
    url = fresh_sqlite(tmp_path)
    upgrade(url)
    text = CONFIG.format(url=url, method="fcfs", tiers="") + (
        "  second-drop:\n"
        "    skus: {HOODIE-S: 2}\n"
        "    channels: [popup]\n"
        "    signup: {opens: 2026-12-01T10:00:00+00:00, closes: 2026-12-04T10:00:00+00:00}\n"
    )
    ctx = AppContext.open(parse_config(text, "stocksync.yaml", env={}))
    try:
        with ctx.ledger(actor="test", now=T0 - timedelta(days=1)) as tx:
            counts.set_stock(tx, "HOODIE-S", 3)  # 2 + 2 set aside, only 3 there
        for n, name in enumerate(["spring-drop", "spring-drop", "second-drop", "second-drop"]):
            with ctx.ledger(actor="test", now=T0 + timedelta(minutes=n + 1)) as tx:
                service.sign_up(tx, ctx.config, name,
                                service.SignUp(f"c{n}@example.com", "HOODIE-S"))  # fmt: skip
        for name in ("spring-drop", "second-drop"):
            with ctx.ledger(actor="test", now=T0 + timedelta(minutes=10)) as tx:
                service.tick(tx, ctx.config, name)
        with ctx.read() as session:
            held = sum(
                sum(campaigns.held_units(session, name).values())
                for name in ("spring-drop", "second-drop")
            )
        assert held == 3  # not 4: the second campaign saw the first one's allocations
    finally:
        ctx.close()


def test_a_lottery_seed_is_drawn_at_the_first_sign_up_and_kept(
    ctx_factory: Callable[[str], AppContext],
) -> None:
    ctx = ctx_factory("lottery")
    sign_up(ctx, T0 + timedelta(minutes=1), "a@example.com")
    with ctx.read() as session:
        state = campaigns.state(session, "spring-drop")
        seed = state.seed if state else None
    assert seed is not None
    sign_up(ctx, T0 + timedelta(minutes=2), "b@example.com")
    wave = tick(ctx, T0 + timedelta(minutes=3))["wave"]
    assert all(f"seed {seed}" in row["why"] for row in wave["allocated"])
