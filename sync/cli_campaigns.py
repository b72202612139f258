"""`stocksync waitlist|campaign|review ...`: limited-drop campaigns from the command line.

Registered on the main app by sync/cli.py; the workflows are sync/campaign_service.py.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from stock import campaign_money, campaigns
from stock.tx import LedgerInputError
from sync import campaign_service as service
from sync.cli import (
    EXIT_BAD_INPUT,
    JsonFlag,
    emit,
    fail,
    handled,
    opened,
    out,
    parse_time,
)

waitlist_app = typer.Typer(help="Campaign waitlists: sign-ups.", no_args_is_help=True)
campaign_app = typer.Typer(help="Limited-drop campaigns: waves, deadlines.", no_args_is_help=True)
review_app = typer.Typer(help="Campaign sign-ups held for review.", no_args_is_help=True)


class _DryRun(Exception):
    """Raised inside a ledger transaction to roll a dry run back."""


@contextmanager
def _ledger(ctx: Any, *, rollback: bool, now: Any = None) -> Iterator[Any]:
    """A ledger transaction that is rolled back when `rollback` (a dry run, a read)."""
    try:
        with ctx.ledger(now=now) as tx:
            yield tx
            if rollback:
                raise _DryRun
    except _DryRun:
        pass


DRY_RUN = Annotated[
    bool, typer.Option("--dry-run", help="Show the refund it would plan; change nothing.")
]


def _print_rows(title: str, rows: list[dict[str, Any]], keys: list[str]) -> None:
    if not rows:
        out.print(f"{title}: none")
        return
    out.print(f"{title}:")
    for row in rows:
        out.print("  " + "  ".join(f"{key}={row.get(key)}" for key in keys), markup=False)


@waitlist_app.command("add")
def waitlist_add(
    campaign: str,
    email: Annotated[str, typer.Option(help="The customer's email.")],
    sku: Annotated[str, typer.Option(help="The variant wanted.")],
    qty: Annotated[int, typer.Option(help="Units wanted.")] = 1,
    phone: Annotated[str | None, typer.Option(help="Phone number.")] = None,
    country: Annotated[str | None, typer.Option(help="ISO country code (for the phone).")] = None,
    address: Annotated[str | None, typer.Option(help="Postal address.")] = None,
    tier: Annotated[str | None, typer.Option(help="Customer tier (one of `tiers:`).")] = None,
    channel: Annotated[
        str | None, typer.Option(help="Where they will pay (default: the campaign's first).")
    ] = None,
    accept_terms: Annotated[
        bool, typer.Option("--accept-terms", help="The customer accepted the payment terms.")
    ] = False,
    deposit_paid: Annotated[
        str | None,
        typer.Option(help="CHANNEL:REFERENCE of a deposit the customer paid (taken by hand)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Sign a customer up: waiting, or in review when over the limits."""
    with handled(as_json):
        paid = None
        if deposit_paid is not None:
            where, sep, ref = deposit_paid.partition(":")
            if not sep or not where or not ref:
                fail(f"--deposit-paid wants CHANNEL:REFERENCE, got {deposit_paid!r}",
                     EXIT_BAD_INPUT)  # fmt: skip
            paid = (where, ref)
        form = service.SignUp(email, sku, qty, phone, country, address, tier, channel,
                              accept_terms, paid)  # fmt: skip
        with opened() as ctx, ctx.ledger() as tx:
            entry = service.sign_up(tx, ctx.config, campaign, form)
        data = {"ok": True, **entry.as_dict(token=True)}
        why = f" ({entry.review_reason})" if entry.review_reason else ""
        emit(
            data, as_json, lambda: out.print(f"entry {entry.id}: {entry.status}{why}", markup=False)
        )


@waitlist_app.command("import")
def waitlist_import(campaign: str, file: Path, as_json: JsonFlag = False) -> None:
    """Sign up every row of a CSV (email, sku, qty, phone, country, address, tier, channel):
    all or nothing; errors as FILE:LINE."""
    with handled(as_json):
        try:
            text = file.read_text(encoding="utf-8-sig")
        except OSError as exc:
            fail(f"{file}: {exc.strerror or exc}", EXIT_BAD_INPUT)
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "email" not in reader.fieldnames:
            fail(f"{file}:1: the header needs at least email and sku columns", EXIT_BAD_INPUT)
        forms: list[tuple[int, service.SignUp]] = []
        problems: list[str] = []
        for row in reader:
            try:
                forms.append((reader.line_num, service.sign_up_rows(row)))
            except ValueError as exc:
                problems.append(f"{file}:{reader.line_num}: {exc}")
        if problems:
            fail("\n".join(problems), EXIT_BAD_INPUT)
        with opened() as ctx:
            try:
                with ctx.ledger() as tx:
                    added = []
                    for line, form in forms:
                        try:
                            added.append(service.sign_up(tx, ctx.config, campaign, form))
                        except LedgerInputError as exc:
                            problems.append(f"{file}:{line}: {exc}")
                    if problems:
                        raise _DryRun
            except _DryRun:
                fail("\n".join(problems) + "\nnothing was imported", EXIT_BAD_INPUT)
        data = {
            "ok": True,
            "imported": len(added),
            "review": sum(e.status == "review" for e in added),
        }
        emit(data, as_json, lambda: out.print(
            f"imported {data['imported']} sign-ups ({data['review']} for review)"))  # fmt: skip


@waitlist_app.command("list")
def waitlist_list(
    campaign: str,
    status: Annotated[str | None, typer.Option(help="Only entries in this state.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The campaign's entries in sign-up order."""
    with handled(as_json):
        with opened() as ctx, ctx.read() as session:
            service.campaign_of(ctx.config, campaign)
            rows = [
                e.as_dict()
                for e in campaigns.entries(session, campaign, [status] if status else None)
            ]
        keys = ["id", "status", "sku", "qty", "email", "expires_at", "channel", "payment"]
        emit({"ok": True, "entries": rows}, as_json,
             lambda: _print_rows(f"{campaign} entries", rows, keys))  # fmt: skip


@campaign_app.command("allocate")
def campaign_allocate(
    name: str,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show who would get what.")] = False,
    entry: Annotated[
        int | None, typer.Option(help="Override: give this entry a unit now, out of its turn.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (required with --entry).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a wave now: free units to the waiting entries by the campaign's method. With
    --entry ID --reason TEXT: allocate that one entry (waiting or in review) now."""
    with handled(as_json):
        if entry is not None:
            _allocate_one(name, entry, reason, dry_run, as_json)
            return
        if reason is not None:
            fail("--reason goes with --entry", EXIT_BAD_INPUT)
        with opened() as ctx, _ledger(ctx, rollback=dry_run) as tx:
            wave = service.allocate(tx, ctx.config, name, dry_run=dry_run)
        data = {"ok": True, "dry_run": dry_run, "wave": wave.number, "method": wave.method,
                "seed": wave.seed, "allocations": wave.allocations}  # fmt: skip
        emit(data, as_json, lambda: _print_rows(
            ("would allocate" if dry_run else f"wave {wave.number}"), wave.allocations,
            ["entry", "email", "sku", "qty", "why"]))  # fmt: skip


def _allocate_one(name: str, entry: int, reason: str | None, dry_run: bool, as_json: bool) -> None:
    if not reason or not reason.strip():
        fail("--entry needs --reason TEXT: an override is kept in the audit log", EXIT_BAD_INPUT)
    assert reason is not None
    with opened() as ctx, _ledger(ctx, rollback=dry_run) as tx:
        if campaigns.entry(tx.session, entry).campaign != name:
            raise LedgerInputError(f"entry {entry}", f"is not in campaign {name}")
        row = service.allocate_entry(tx, ctx.config, entry, reason)
    data = {"ok": True, "dry_run": dry_run, **row.as_dict()}
    verb = "would be allocated" if dry_run else "allocated"
    emit(data, as_json, lambda: out.print(
        f"entry {row.id}: {verb}, pay by {row.expires_at.isoformat() if row.expires_at else '-'}",
        markup=False))  # fmt: skip


@campaign_app.command("skip")
def campaign_skip(
    entry: int,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    dry_run: DRY_RUN = False,
    as_json: JsonFlag = False,
) -> None:
    """Override: take a waiting entry (or one in review) out of the line: declined (and
    refunded in full, with payment terms)."""
    _end_entry(entry, dry_run, as_json, lambda tx, _config: service.skip(tx, entry, reason))


@campaign_app.command("tick")
def campaign_tick(
    name: Annotated[str | None, typer.Argument(help="One campaign; all when left out.")] = None,
    now: Annotated[str | None, typer.Option(help="Run as of this ISO time (a rehearsal).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what is due, refunds too; change nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run what is due: expiries, stock-down cancellations, reminders, a wave, refunds, the
    close."""
    with handled(as_json):
        at = parse_time(now) if now else None
        with opened() as ctx:
            names = [name] if name else list(ctx.config.campaigns)
            results = []
            for each in names:
                with _ledger(ctx, now=at, rollback=dry_run) as tx:
                    done = service.tick(tx, ctx.config, each)
                    done["money"] = _money_planned(tx)
                    results.append(done)
        emit({"ok": True, "dry_run": dry_run, "campaigns": results}, as_json,
             lambda: _print_ticks(results))  # fmt: skip


def _money_planned(tx: Any) -> list[dict[str, Any]]:
    """The refunds this transaction planned (shown by --dry-run and --json)."""
    from sqlalchemy import select

    from rules.money import from_minor
    from stock import models as m

    tx.session.flush()
    rows = tx.session.scalars(
        select(m.CampaignMoney).where(
            m.CampaignMoney.created_at == tx.now, m.CampaignMoney.kind == "refund"
        )
    )
    return [
        {"money": row.id, "entry": row.entry_id, "kind": row.kind, "state": row.state,
         "amount": str(from_minor(row.amount_minor, row.currency)), "currency": row.currency,
         "reason": row.reason}
        for row in rows
    ]  # fmt: skip


def _print_ticks(results: list[dict[str, Any]]) -> None:
    for r in results:
        wave = r["wave"]["number"] if r["wave"] else "-"
        out.print(
            f"{r['campaign']}: expired {len(r['expired'])}, cancelled {len(r['cancelled'])}, "
            f"reminded {len(r['reminded'])}, wave {wave}{', closed' if r['closed'] else ''}"
            + (f", refunds planned {len(r['money'])}" if r.get("money") else ""),
            markup=False,
        )


@campaign_app.command("show")
def campaign_show(name: str, as_json: JsonFlag = False) -> None:
    """Counts per state and SKU, waves, the lottery seed, units still free."""
    with handled(as_json):
        with opened() as ctx, _ledger(ctx, rollback=True) as tx:
            data = service.show(tx, ctx.config, name)
        emit({"ok": True, **data}, as_json, lambda: out.print_json(data=data))


@campaign_app.command("report")
def campaign_report(
    name: str,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="CSV: one row per (wave, SKU), then a totals row.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Sign-ups, allocated, paid, expired, declined; conversion (paid ÷ allocated) by wave, SKU."""
    from sync import campaign_report

    _print_report(campaign_report, name, as_csv, as_json)


@campaign_app.command("cancel")
def campaign_cancel(
    entry: int,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    dry_run: DRY_RUN = False,
    as_json: JsonFlag = False,
) -> None:
    """The customer changes their mind: cancelled, and refunded as their terms say."""
    _end_entry(entry, dry_run, as_json,
               lambda tx, config: service.cancel(tx, config, entry, reason))  # fmt: skip


def _end_entry(
    entry: int, dry_run: bool, as_json: bool, end: Callable[[Any, Any], campaigns.EntryRow]
) -> None:
    """Run a change that may end an entry (and plan its refund); --dry-run rolls it back."""
    with handled(as_json):
        with opened() as ctx, _ledger(ctx, rollback=dry_run) as tx:
            row = end(tx, ctx.config)
            money = [m.as_dict() for m in campaign_money.of_entries(
                tx.session, [entry]).get(entry, []) if m.kind == "refund"]  # fmt: skip
        data = {"ok": True, "dry_run": dry_run, **row.as_dict(), "refunds": money}
        emit(data, as_json, lambda: out.print(
            f"entry {row.id}: {'would be ' if dry_run else ''}{row.status}; refunds: "
            + (", ".join(f"{m['amount']} {m['currency']} ({m['state']})" for m in money)
               or "none"), markup=False))  # fmt: skip


@campaign_app.command("terms")
def campaign_terms(
    entry: int,
    accept: Annotated[
        bool | None,
        typer.Option("--accept/--decline", help="Accept the changed terms, or cancel (refund)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The customer's choice on changed terms (they asked by phone, by mail): accept them, or
    decline and be cancelled with everything they paid refunded."""
    with handled(as_json):
        if accept is None:
            fail("say --accept or --decline", EXIT_BAD_INPUT)
        with opened() as ctx, ctx.ledger() as tx:
            row = service.decide_terms(tx, ctx.config, entry, bool(accept))
        emit({"ok": True, **row.as_dict()}, as_json,
             lambda: out.print(f"entry {row.id}: {row.status}", markup=False))  # fmt: skip


@campaign_app.command("payments")
def campaign_payments(
    name: str,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: a row per entry, then totals.")] = (
        False
    ),
    as_json: JsonFlag = False,
) -> None:
    """Per entry: deposit, balance, refunds, what was kept, state, deadlines; totals; metrics."""
    from sync import campaign_money_report

    _print_report(campaign_money_report, name, as_csv, as_json)


def _print_report(report: Any, name: str, as_csv: bool, as_json: bool) -> None:
    """A campaign report module's `report` as CSV, JSON or a table."""
    with handled(as_json):
        if as_csv and as_json:
            fail("--csv and --json: choose one", EXIT_BAD_INPUT)
        with opened() as ctx, ctx.read() as session:
            try:
                data = report.report(session, ctx.config, name)
            except KeyError as exc:
                raise LedgerInputError(name, str(exc.args[0])) from None
        if as_csv:
            print(report.to_csv(data), end="")
            return
        emit({"ok": True, **data}, as_json, lambda: report.render(out, data))


@campaign_app.command("confirm")
def campaign_confirm(
    entry: int,
    channel: Annotated[str | None, typer.Option(help="The manual channel it was paid on.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """A customer paid on a manual channel: the allocated unit becomes that channel's order."""
    with handled(as_json):
        with opened() as ctx, ctx.ledger() as tx:
            row = service.confirm(tx, ctx.config, entry, channel)
        emit({"ok": True, **row.as_dict()}, as_json,
             lambda: out.print(f"entry {row.id}: confirmed as order {row.order_ref}"))  # fmt: skip


@review_app.command("list")
def review_list(as_json: JsonFlag = False) -> None:
    """Entries held for review, every campaign."""
    with handled(as_json):
        with opened() as ctx, ctx.read() as session:
            rows = [
                {**e.as_dict(), "reason": e.review_reason}
                for name in ctx.config.campaigns
                for e in campaigns.entries(session, name, ["review"])
            ]
        emit({"ok": True, "entries": rows}, as_json, lambda: _print_rows(
            "review", rows, ["id", "campaign", "sku", "qty", "email", "reason"]))  # fmt: skip


def _decide(entry: int, reason: str, approve: bool, as_json: bool) -> None:
    with handled(as_json):
        with opened() as ctx, ctx.ledger() as tx:
            row = service.review(tx, entry, approve, reason)
        emit({"ok": True, **row.as_dict()}, as_json,
             lambda: out.print(f"entry {row.id}: {row.status}"))  # fmt: skip


@review_app.command("approve")
def review_approve(
    entry: int,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    as_json: JsonFlag = False,
) -> None:
    """Let an entry join the queue in its sign-up place."""
    _decide(entry, reason, True, as_json)


@review_app.command("reject")
def review_reject(
    entry: int,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    dry_run: DRY_RUN = False,
    as_json: JsonFlag = False,
) -> None:
    """Decline an entry (refunded in full, with payment terms)."""
    _end_entry(entry, dry_run, as_json,
               lambda tx, _config: service.review(tx, entry, False, reason))  # fmt: skip
