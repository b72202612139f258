"""Offered numbers that move with no ledger change still reach the shops: a rule changed and
reloaded, a purchase order entering the backorder horizon as days pass, a channel that shows
our last push while the formula now says otherwise. And `check --diff` shows such moves
before they are made."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from stock import purchasing
from sync.jobs.followups import utc_now
from sync.jobs.reconcile import reconcile_channel
from sync.jobs.reevaluate import moved_offers
from tests.support.processes import stocksync_executable
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.slow


def settled(stack: Stack, value: int, sku: str = "DEMO-1") -> None:
    stack.wait_until(
        lambda: stack.woo_stock(sku) == value and stack.shop_available(sku) == value,
        what=f"both shops at {value}",
    )


def with_safety_buffer(stack: Stack, units: int) -> None:
    settings = yaml.safe_load(stack.config_path.read_text(encoding="utf-8"))
    settings["defaults"] = {**settings.get("defaults", {}), "safety_buffer": units}
    stack.config_path.write_text(yaml.safe_dump(settings), encoding="utf-8")


def check_diff(stack: Stack) -> list[dict[str, object]]:
    done = subprocess.run(
        [stocksync_executable(), "--config", str(stack.config_path), "check", "--diff", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return list(json.loads(done.stdout)["diff"])


def test_a_changed_rule_is_shown_by_check_diff_then_reaches_both_shops_on_reload(
    tmp_path: Path,
) -> None:
    with running_stack(tmp_path, catalog={"DEMO-1": 20, "DEMO-2": 4}) as stack:
        assert stack.daemon is not None
        settled(stack, 20)
        stack.daemon.wait_idle()
        assert check_diff(stack) == []  # the shops show what the rules give

        with_safety_buffer(stack, 5)
        moved = {
            (row["sku"], row["channel"]): (row["before"], row["after"]) for row in check_diff(stack)
        }
        assert moved == {
            ("DEMO-1", "shop"): (20, 15),
            ("DEMO-1", "woo"): (20, 15),
            ("DEMO-2", "shop"): (4, 0),
            ("DEMO-2", "woo"): (4, 0),
        }
        assert stack.woo_stock("DEMO-1") == 20  # --diff wrote nothing

        assert stack.daemon.reload()  # what SIGHUP does
        settled(stack, 15)
        settled(stack, 0, "DEMO-2")
        stack.daemon.wait_idle()
        assert check_diff(stack) == []

        stack.config_path.write_text("defaults: [not, a, mapping\n", encoding="utf-8")
        assert not stack.daemon.reload()  # a broken file changes nothing
        assert stack.daemon.runtime.config.rule_for("shop", "DEMO-1").safety_buffer.value == 5


def test_a_po_entering_the_horizon_as_days_pass_moves_the_offer(tmp_path: Path) -> None:
    with running_stack(tmp_path, catalog={"DEMO-1": 2}) as stack:
        assert stack.daemon is not None
        runtime = stack.daemon.runtime
        settled(stack, 2)
        horizon = runtime.config.rule_for("shop", "DEMO-1").horizon_days.value
        with runtime.ctx.ledger(actor="test") as tx:
            eta = tx.now.date() + timedelta(days=horizon + 3)
            purchasing.add_po(tx, "PO-LATE", eta, {"DEMO-1": 10})
        stack.daemon.wait_idle()
        settled(stack, 2)  # beyond the horizon: not offered yet
        today = utc_now().date()
        with runtime.ctx.sessions() as session:
            assert list(moved_offers(session, runtime.config, "shop", today)) == []
            later = list(moved_offers(session, runtime.config, "shop", today + timedelta(days=4)))
        assert [(m.listing.sku, m.before, m.offered) for m in later] == [("DEMO-1", 2, 12)]


def test_reconcile_compares_each_channel_with_the_formula(tmp_path: Path) -> None:
    with running_stack(tmp_path, catalog={"DEMO-1": 20}) as stack:
        assert stack.daemon is not None
        runtime = stack.daemon.runtime
        settled(stack, 20)
        stack.daemon.wait_idle()
        # the rules change under a running process without a re-evaluation (as before this
        # existed): the shops still show our last push, which is no longer the formula's
        with_safety_buffer(stack, 4)
        from rules import load_config

        runtime.adopt_rules(load_config(stack.config_path))
        drifts, followups = reconcile_channel(runtime, "woo")
        assert [(d.sku, d.ours, d.channel) for d in drifts] == [("DEMO-1", 16, 20)]
        stack.daemon.actors.dispatch(followups)
        stack.wait_until(lambda: stack.woo_stock("DEMO-1") == 16, what="woo at 16")
