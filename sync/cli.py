"""The `stocksync` command line (DESIGN §7): exit 0 ok, 1 failure, 2 bad input; stable `--json`."""

from __future__ import annotations

import gc
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from rules import ConfigError, load_config, render_config_template
from stock import counts, inbox, offers, purchasing
from stock.db import DatabaseError, safe_url, upgrade
from stock.tx import Effects, LedgerInputError, LedgerTx
from sync import queries, render
from sync.context import AppContext, NotMigrated, config_path

if TYPE_CHECKING:
    from rich.console import Console

    from backorders.orders import Outcome
    from sync.adopt import ChannelCount
    from sync.stock_csv import StockCsv

# Start-up is most of a read command's time (`explain`, `status`): modules only some commands
# need (rich, the order workflow, Alembic, the daemon, connectors, PostgreSQL's dialect) are
# imported where they are used, not here.

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

app = typer.Typer(
    name="stocksync",
    help="One honest stock ledger for Shopify, WooCommerce and manual channels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stock_app = typer.Typer(help="Count stock on hand.", no_args_is_help=True)
po_app = typer.Typer(help="Purchase orders: incoming stock.", no_args_is_help=True)
order_app = typer.Typer(help="Orders of manual channels (pop-ups, phone, wholesale).")
db_app = typer.Typer(help="The ledger database.", no_args_is_help=True)
inbox_app = typer.Typer(
    help="Received webhooks and polled orders; failed ones form the exception queue.",
    no_args_is_help=True,
)
app.add_typer(stock_app, name="stock")
app.add_typer(po_app, name="po")
app.add_typer(order_app, name="order", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(inbox_app, name="inbox")


class _LazyConsole:
    """A rich Console made on first use: `--json` output never loads rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def real(self) -> Console:
        """The Console itself, for code that needs one (rich.live)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)


out = cast("Console", _LazyConsole(highlight=False, soft_wrap=True))
err = cast("Console", _LazyConsole(stderr=True, highlight=False, soft_wrap=True))

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


class State:
    """Per-process CLI state: the global --config and whether this command prints JSON."""

    config_file: str | None = None
    as_json: bool = False


STATE = State()


@app.callback()
def _root(
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file (default ./stocksync.yaml or $STOCKSYNC_CONFIG).",
            envvar="STOCKSYNC_CONFIG",
        ),
    ] = None,
) -> None:
    STATE.config_file = config


# ---------------------------------------------------------------------------- error handling
def fail(message: str, code: int = EXIT_FAILURE, *, as_json: bool | None = None) -> NoReturn:
    """Report a failure (as JSON on stdout when --json was given) and exit with `code`."""
    if as_json if as_json is not None else STATE.as_json:
        print(json.dumps({"ok": False, "error": message}))
    else:
        err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


@contextmanager
def handled(as_json: bool = False) -> Iterator[None]:
    """Map every known failure to a clear message and the documented exit code."""
    STATE.as_json = as_json
    try:
        yield
    except typer.Exit:
        raise
    except ConfigError as exc:
        if as_json:
            print(json.dumps({"ok": False, "error": "config", "issues": _issues(exc)}))
        else:
            err.print(str(exc), markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    except LedgerInputError as exc:
        fail(str(exc), EXIT_BAD_INPUT, as_json=as_json)
    except NotMigrated as exc:
        fail(str(exc), EXIT_FAILURE, as_json=as_json)
    except DatabaseError as exc:
        fail(f"database: {exc}", EXIT_FAILURE, as_json=as_json)
    except OperationalError as exc:
        fail(f"database: {exc.orig}", EXIT_FAILURE, as_json=as_json)
    except SQLAlchemyError as exc:
        fail(f"database: {exc}", EXIT_FAILURE, as_json=as_json)


def _issues(exc: ConfigError) -> list[dict[str, Any]]:
    return [
        {"file": i.file, "line": i.line, "path": i.path, "message": i.message} for i in exc.errors
    ]


def open_app(require_migrated: bool = True) -> AppContext:
    return AppContext.from_file(config_path(STATE.config_file), require_migrated=require_migrated)


@contextmanager
def opened() -> Iterator[AppContext]:
    """The configured app for one command, closed when the command ends."""
    ctx = open_app()
    try:
        yield ctx
    finally:
        ctx.close()


@contextmanager
def collector_paused() -> Iterator[None]:
    """For a command that builds 100,000s of objects and ends: without the cyclic garbage
    collector rescanning them on every allocation burst (~0.5 s of `status` at 100,000 SKUs).
    Whatever cyclic garbage it leaves is freed when the collector resumes or the process ends."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def emit(
    data: Any,
    as_json: bool,
    human: Callable[[], None],
    *,
    one_line: tuple[str, Callable[[Any], str]] | None = None,
) -> None:
    """Print `data` as JSON (sorted keys, indented) or for humans. `one_line` = (key, encode):
    the long list under that key is printed on one line by `encode` (indented JSON is encoded
    in Python: 100,000 `status` rows took ~2 s)."""
    if not as_json:
        human()
        return
    if one_line is None:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    long_key, encode = one_line
    fields = [
        f"  {json.dumps(key)}: "
        + (
            encode(value)
            if key == long_key
            else json.dumps(value, indent=2, sort_keys=True, default=str).replace("\n", "\n  ")
        )
        for key, value in sorted(data.items())
    ]
    print("{\n" + ",\n".join(fields) + "\n}")


_STATUS_ROW = (
    '{"backordered": %d, "incoming": %d, "offered": %s, "on_hand": %d, "oversold": %d, '
    '"reserved": %d, "sku": %s}'
)


def status_rows_json(rows: Sequence[dict[str, Any]]) -> str:
    """`json.dumps(rows, sort_keys=True)` for status rows, faster: each row's JSON from a
    template, each distinct `offered` dict encoded once (rows share them). A row of another
    shape is encoded by json.dumps."""
    offered_json: dict[int, str] = {}
    parts: list[str] = []
    for row in rows:
        try:
            if len(row) != 7:
                raise KeyError(row)
            offered = row["offered"]
            text = offered_json.get(id(offered))
            if text is None:
                text = offered_json[id(offered)] = json.dumps(offered, sort_keys=True)
            parts.append(
                _STATUS_ROW
                % (
                    row["backordered"],
                    row["incoming"],
                    text,
                    row["on_hand"],
                    row["oversold"],
                    row["reserved"],
                    encode_basestring_ascii(row["sku"]),
                )
            )
        except (KeyError, TypeError):
            parts.append(json.dumps(row, sort_keys=True, default=str))
    return "[" + ", ".join(parts) + "]"


def parse_pairs(pairs: Sequence[str], what: str = "SKU=QTY") -> dict[str, int]:
    """SKU=QTY arguments -> {sku: qty}; repeated SKUs add up. Bad input exits 2."""
    result: dict[str, int] = {}
    for pair in pairs:
        sku, sep, qty_text = pair.rpartition("=")
        if not sep or not sku:
            fail(f"{pair!r}: expected {what}", EXIT_BAD_INPUT)
        try:
            qty = int(qty_text)
        except ValueError:
            fail(f"{pair!r}: quantity {qty_text!r} is not a whole number", EXIT_BAD_INPUT)
        result[sku] = result.get(sku, 0) + qty
    return result


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{text!r}: expected a date as YYYY-MM-DD", EXIT_BAD_INPUT)


def parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{text!r}: expected an ISO time like 2026-11-23T10:00:00+00:00", EXIT_BAD_INPUT)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def outcome_json(outcome: Outcome | None, effects: Effects) -> dict[str, Any]:
    """What an order change did to the order, and what the transaction released or oversold."""
    from backorders.orders import Outcome

    outcome = outcome or Outcome()
    return {
        "reserved": outcome.reserved,
        "backordered": outcome.backordered,
        "beyond_capacity": outcome.beyond_capacity,
        "released": [
            {
                "channel": r.channel,
                "order": r.order_external_id,
                "line": r.external_line_id,
                "sku": r.sku,
                "qty": r.qty,
                "complete": r.complete,
            }
            for r in effects.released
        ],
        "oversold": effects.oversold,
    }


# ---------------------------------------------------------------------------- setup commands
@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write stocksync.yaml.")] = Path(),
    as_json: JsonFlag = False,
) -> None:
    """Write a starter stocksync.yaml and create the ledger database."""
    with handled(as_json):
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "stocksync.yaml"
        if target.exists():
            fail(f"{target} already exists; not overwriting it", EXIT_BAD_INPUT, as_json=as_json)
        target.write_text(render_config_template(), encoding="utf-8")
        config = load_config(target)
        upgrade(config.database)
        data = {"ok": True, "config": str(target), "database": safe_url(config.database)}
        emit(
            data,
            as_json,
            lambda: out.print(
                f"Wrote {target} and created {safe_url(config.database)}.\n"
                f"Next: stocksync --config {target} stock set SKU QTY"
            ),
        )


@app.command()
def check(
    diff: Annotated[
        bool,
        typer.Option(
            "--diff",
            help="Also list, without writing, every offered number these rules move: SKU, "
            "channel, what the channel was last given -> what the rules give now.",
        ),
    ] = False,
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="Also call each channel once (Shopify: shop, location, token scopes; "
            "WooCommerce: one product page) and report refused credentials, missing scopes or "
            "an unreachable shop; exit 1 if any channel fails.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Validate the config (errors as FILE:LINE: key: message) and reach the database;
    with --online, the channels too."""
    with handled(as_json):
        path = config_path(STATE.config_file)
        config = load_config(path)
        ctx = AppContext.open(config, require_migrated=diff)
        try:
            revision = queries.revision(ctx)
            moved = _offers_moved(ctx) if diff else None
        finally:
            ctx.close()
        data: dict[str, Any] = {
            "ok": True,
            "config": str(path),
            "database": safe_url(config.database),
            "revision": revision,
            "channels": {name: ch.kind for name, ch in config.channels.items()},
            "settings": config.redacted(),
        }
        if moved is not None:
            data["diff"] = moved
        if online:
            from sync.online_check import check_channels

            data["online"] = check_channels(config)
            data["ok"] = all(result["ok"] for result in data["online"].values())
        emit(data, as_json, lambda: render.check(out, data))
        if not data["ok"]:
            raise typer.Exit(EXIT_FAILURE)


def _offers_moved(ctx: AppContext) -> list[dict[str, Any]]:
    from sync.jobs.reevaluate import moved_offers

    today = datetime.now(UTC).date()
    with ctx.read() as session:
        return [
            {
                "sku": moved.listing.sku,
                "channel": channel,
                "before": moved.before,
                "after": moved.offered,
                "push_pending": moved.listing.dirty,
            }
            for channel in ctx.listed_channel_names
            for moved in moved_offers(session, ctx.config, channel, today)
        ]


@db_app.command("upgrade")
def db_upgrade(as_json: JsonFlag = False) -> None:
    """Create or migrate the ledger tables."""
    with handled(as_json):
        config = load_config(config_path(STATE.config_file))
        upgrade(config.database)
        ctx = AppContext.open(config)
        revision = queries.revision(ctx)
        ctx.close()
        data = {"ok": True, "database": safe_url(config.database), "revision": revision}
        emit(
            data,
            as_json,
            lambda: out.print(f"{data['database']} is at revision {revision['current']}"),
        )


# ---------------------------------------------------------------------------- stock
@stock_app.command("set", context_settings={"ignore_unknown_options": True})
def stock_set(
    sku: str,
    qty: Annotated[int, typer.Argument(help="Units on hand after the count.")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit log).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set the units on hand of SKU (a stock count)."""
    _stock_change(lambda tx: counts.set_stock(tx, sku, qty, reason), sku, as_json)


# negative deltas are arguments, not options
@stock_app.command("adjust", context_settings={"ignore_unknown_options": True})
def stock_adjust(
    sku: str,
    delta: Annotated[int, typer.Argument(help="Units to add (negative to remove).")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit log).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add DELTA units to SKU's on hand (negative removes; never below 0)."""
    _stock_change(lambda tx: counts.adjust_stock(tx, sku, delta, reason), sku, as_json)


def _stock_change(change: Callable[[LedgerTx], int], sku: str, as_json: bool) -> None:
    with handled(as_json), opened() as ctx:
        with ctx.ledger() as tx:
            on_hand = change(tx)
        data = {"ok": True, "sku": sku, "on_hand": on_hand, **outcome_json(None, tx.effects)}
        emit(data, as_json, lambda: render.stock_change(out, data))


@stock_app.command("import")
def stock_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with columns sku,on_hand (header optional), or a Shopify inventory or "
            "product export, or a WooCommerce product export (told apart by the header)."
        ),
    ],
    location: Annotated[
        str | None,
        typer.Option(
            "--location",
            help="The location to read from a Shopify inventory export with several.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set on hand for many SKUs from a CSV, all or nothing."""
    with handled(as_json), collector_paused():
        parsed = read_stock_csv(file, location)
        rows = parsed.rows
        with opened() as ctx, ctx.ledger() as tx:
            counts.import_counts(tx, {sku: qty for _line, sku, qty in rows}, "import")
        released = sum(r.qty for r in tx.effects.released)
        data: dict[str, Any] = {
            "ok": True, "file": str(file), "skus": len(rows), "released_units": released,
        }  # fmt: skip
        if parsed.format != "plain":  # the plain format's answer stays as it always was
            data.update(parsed.detected())

        def human() -> None:
            if parsed.format != "plain":
                out.print(parsed.describe(), markup=False)
            out.print(f"Imported {len(rows)} SKUs from {file} ({released} units released)")

        emit(data, as_json, human)


def read_stock_csv(file: Path, location: str | None = None) -> StockCsv:
    """The file's rows (sync/stock_csv.py); every problem exits 2 with FILE:LINE."""
    from sync.stock_csv import CsvProblems, parse

    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        fail(f"{file}: cannot read: {exc.strerror}", EXIT_BAD_INPUT)
    try:
        return parse(text, str(file), location)
    except CsvProblems as exc:
        fail(str(exc), EXIT_BAD_INPUT)


# ---------------------------------------------------------------------------- adopting a shop
@app.command()
def adopt(
    channel: Annotated[str, typer.Argument(help="A Shopify or WooCommerce channel's name.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Take the channel's number also for SKUs the ledger counted differently.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Take a live shop's quantities as on hand: the SKUs it sells that the ledger does not
    know, or never counted, get the channel's number (docs/onboarding.md)."""
    from sync import adopt as adopting

    with handled(as_json):
        if as_json and not (yes or dry_run):
            fail("--json needs --yes or --dry-run (no prompts in JSON mode)", EXIT_BAD_INPUT)
        with opened() as ctx:
            found = _read_channel(ctx, channel)
            with ctx.read() as session:
                rows = adopting.plan(session, found, overwrite)
            tally = adopting.summary(rows)
            data: dict[str, Any] = {
                "ok": True, "channel": channel, "dry_run": dry_run, "adopted": False,
                "summary": tally, "rows": [r.as_json() for r in rows],
            }  # fmt: skip
            if dry_run:
                emit(data, as_json, lambda: render.adopt(out, data))
                return
            if not as_json:
                render.adopt(out, data)
            if not yes and not typer.confirm(f"Set on hand for {tally['set']} SKUs?"):
                fail("nothing written", EXIT_FAILURE)
            with ctx.ledger() as tx:
                done = adopting.apply(tx, channel, found, overwrite)
            _hand_to_workers(ctx, tx.effects)
        tally = adopting.summary(done.rows)
        data.update(
            adopted=True,
            summary=tally,
            rows=[r.as_json() for r in done.rows],
            released_units=sum(r.qty for r in tx.effects.released),
            oversold=tx.effects.oversold,
        )
        # refused SKUs keep the ledger's count, as asked: listed, not a failure
        emit(data, as_json, lambda: render.adopted(out, data))


def _read_channel(ctx: AppContext, name: str) -> list[ChannelCount]:
    """Every SKU the channel sells, with a progress bar on a terminal's stderr."""
    from connectors.base import ChannelError, PayloadError
    from sync import adopt as adopting
    from sync.runtime import build_channel

    configured = ctx.config.channels.get(name)
    if configured is None:
        known = ", ".join(sorted(ctx.config.channels)) or "none"
        fail(f"unknown channel {name!r}; configured: {known}", EXIT_BAD_INPUT)
    connector = build_channel(configured)
    if connector is None:
        fail(
            f"channel {name!r} is {configured.kind}: only Shopify and WooCommerce channels "
            "have quantities to adopt",
            EXIT_BAD_INPUT,
        )
    try:
        if not sys.stderr.isatty():
            return adopting.read_channel(connector)
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(
            SpinnerColumn(),
            TextColumn("reading {task.description}: {task.completed} records"),
            TimeElapsedColumn(),
            console=cast(_LazyConsole, err).real(),
            transient=True,
        ) as progress:
            task = progress.add_task(name, total=None)
            return adopting.read_channel(connector, lambda: progress.advance(task))
    except (ChannelError, PayloadError) as exc:
        fail(f"reading {name}: {exc}", EXIT_FAILURE)
    finally:
        connector.close()


# ---------------------------------------------------------------------------- purchase orders
@po_app.command("add")
def po_add(
    ref: str,
    lines: Annotated[list[str], typer.Argument(help="SKU=QTY ordered, one or more.")],
    eta: Annotated[str, typer.Option(help="Expected arrival, YYYY-MM-DD.")],
    supplier: Annotated[str | None, typer.Option(help="Supplier name.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a purchase order (or edit an open one: each SKU's ordered quantity is set)."""
    with handled(as_json):
        quantities = parse_pairs(lines)
        eta_date = parse_date(eta)
        with opened() as ctx, ctx.ledger() as tx:
            purchasing.add_po(tx, ref, eta_date, quantities, supplier)
            data = queries.po_detail(tx.session, ref)
        emit({"ok": True, **data}, as_json, lambda: render.purchase_orders(out, [data]))


@po_app.command("receive")
def po_receive(
    ref: str,
    lines: Annotated[list[str], typer.Argument(help="SKU=QTY received, one or more.")],
    allow_over: Annotated[
        bool,
        typer.Option("--allow-over", help="Book units beyond the ordered quantity (else refused)."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Book received units into stock and release backorders in the configured order."""
    with handled(as_json):
        quantities = parse_pairs(lines)
        # receipt and release are one transaction: no order can take the units between them
        with opened() as ctx:
            try:
                with ctx.ledger() as tx:
                    over = purchasing.receive_po(tx, ref, quantities, allow_over=allow_over)
                    detail = queries.po_detail(tx.session, ref)
            except purchasing.OverReceipt as exc:
                fail(f"{exc}; book it anyway with --allow-over", EXIT_BAD_INPUT)
            _hand_to_workers(ctx, tx.effects)
        data = {
            "ok": True, **detail, **outcome_json(None, tx.effects), "release": "done",
            "over_received": over,
        }  # fmt: skip
        emit(data, as_json, lambda: render.receipt(out, data))


@po_app.command("cancel")
def po_cancel(ref: str, as_json: JsonFlag = False) -> None:
    """Cancel a purchase order: its open lines stop counting as incoming; the backorders they
    covered are listed as at risk. Received units stay booked."""
    from backorders import settle

    with handled(as_json):
        with opened() as ctx:
            with ctx.ledger() as tx:
                cancelled = purchasing.cancel_po(tx, ref)
                at_risk = settle.flag_at_risk(tx, f"po.cancel {ref}", cancelled)
                detail = queries.po_detail(tx.session, ref)
            _hand_to_workers(ctx, tx.effects)  # offers went down: push them
        data = {"ok": True, **detail, "cancelled": cancelled, "at_risk": at_risk}
        emit(data, as_json, lambda: render.po_cancel(out, data))


def _hand_to_workers(ctx: AppContext, effects: Effects) -> None:
    """With Redis, running workers write releases back and push the new numbers now; with the
    in-process broker the daemon's sweeper does when it next runs."""
    if ctx.config.broker == "memory":
        return
    from redis.exceptions import RedisError

    from sync import actor_names
    from sync.enqueue import enqueue

    try:
        for writeback_id in sorted(effects.writebacks):
            enqueue(ctx.config.broker, actor_names.WRITE_BACK, writeback_id)
        if effects.dirty_sku_ids:
            for channel in ctx.listed_channel_names:
                enqueue(ctx.config.broker, actor_names.PUSH, channel)
    except RedisError as exc:
        # the ledger is settled; the daemon's sweeper writes back and pushes when it next runs
        err.print(f"warning: could not queue write-backs and pushes ({exc}); the sweeper will")


@po_app.command("list")
def po_list(
    include_closed: Annotated[
        bool, typer.Option("--all", help="Include received and cancelled POs.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List purchase orders with what is still to arrive."""
    with handled(as_json):
        with opened() as ctx, ctx.read() as session:
            data = queries.po_list(session, include_closed)
        emit({"purchase_orders": data}, as_json, lambda: render.purchase_orders(out, data))


# ---------------------------------------------------------------------------- manual orders
@order_app.command("add")
def order_add(
    channel: str,
    ref: str,
    lines: Annotated[list[str], typer.Argument(help="SKU=QTY, one or more.")],
    customer: Annotated[str | None, typer.Option(help="Customer key (email, id).")] = None,
    tier: Annotated[str | None, typer.Option(help="Customer tier, e.g. vip.")] = None,
    placed_at: Annotated[
        str | None, typer.Option("--placed-at", help="ISO time (default now).")
    ] = None,
    email: Annotated[
        str | None, typer.Option(help="The customer's email: they are told what happens.")
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="The customer's language for messages, e.g. nl.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record an order on a manual channel: reserve what stock covers, backorder the rest."""
    from backorders import orders
    from backorders.orders import LineInput, OrderInput

    with handled(as_json):
        quantities = parse_pairs(lines)
        for sku, qty in quantities.items():
            if qty <= 0:
                fail(f"{sku}: quantity must be positive, got {qty}", EXIT_BAD_INPUT)
        if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            fail(f"--email: not an email address: {email!r}", EXIT_BAD_INPUT)
        if language is not None and not re.fullmatch(
            r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?", language
        ):
            fail(
                f"--language: not a language tag such as nl or en-GB: {language!r}", EXIT_BAD_INPUT
            )
        with opened() as ctx:
            _require_manual(ctx, channel)
            now = datetime.now(UTC)
            placed = parse_time(placed_at) if placed_at else now
            tiers = ctx.config.tiers
            if tier is not None and tiers and tier not in tiers:
                fail(f"unknown tier {tier!r}; configured tiers: {', '.join(tiers)}", 2)
            with ctx.ledger() as tx:
                if queries.order_exists(tx.session, channel, ref):
                    fail(f"{channel}/{ref}: order already exists", EXIT_BAD_INPUT)
                outcome = orders.record_order(
                    tx,
                    OrderInput(
                        channel=channel,
                        external_id=ref,
                        placed_at=placed,
                        updated_at=now,
                        status="open",
                        lines=tuple(
                            LineInput(str(i), sku, qty)
                            for i, (sku, qty) in enumerate(quantities.items(), start=1)
                        ),
                        customer_key=customer or email,
                        tier=tier,
                        source_status="manual",
                        email=email,
                        language=language,
                    ),
                )
                detail = queries.order_detail(tx.session, channel, ref)
        data = {"ok": True, **detail, **outcome_json(outcome, tx.effects)}
        emit(data, as_json, lambda: render.order(out, data))


@order_app.command("cancel")
def order_cancel(channel: str, ref: str, as_json: JsonFlag = False) -> None:
    """Cancel a manual order: free its reservations and backorders (may release others)."""
    from backorders import orders

    with handled(as_json):
        with opened() as ctx:
            _require_manual(ctx, channel)
            with ctx.ledger() as tx:
                outcome = orders.cancel_order(tx, channel, ref)
                detail = queries.order_detail(tx.session, channel, ref)
        data = {"ok": True, **detail, **outcome_json(outcome, tx.effects)}
        emit(data, as_json, lambda: render.order(out, data))


@order_app.command("ship")
def order_ship(
    channel: str,
    ref: str,
    lines: Annotated[
        list[str] | None,
        typer.Argument(help="SKU=QTY to ship (default: every reserved unit of the order)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Ship reserved units of a manual order: they leave on hand and count as shipped; the
    order is fulfilled when nothing of it waits any more."""
    from backorders import orders

    with handled(as_json):
        quantities = parse_pairs(lines) if lines else None
        for sku, qty in (quantities or {}).items():
            if qty <= 0:
                fail(f"{sku}: quantity must be positive, got {qty}", EXIT_BAD_INPUT)
        with opened() as ctx:
            _require_manual(ctx, channel)
            with ctx.ledger() as tx:
                shipped = orders.ship_order(tx, channel, ref, quantities)
                detail = queries.order_detail(tx.session, channel, ref)
            _hand_to_workers(ctx, tx.effects)
        data = {"ok": True, **detail, **outcome_json(None, tx.effects), "shipped": shipped}
        emit(data, as_json, lambda: render.order(out, data))


def _require_manual(ctx: AppContext, channel: str) -> None:
    found = ctx.config.channels.get(channel)
    if found is None:
        known = ", ".join(ctx.config.channels) or "none"
        fail(f"unknown channel {channel!r}; configured: {known}", EXIT_BAD_INPUT)
    if found.kind != "manual":
        fail(
            f"channel {channel!r} is {found.kind}: its orders come from the channel itself",
            EXIT_BAD_INPUT,
        )


# ---------------------------------------------------------------------------- reading
@app.command()
def explain(
    sku: str,
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show every term of the offered quantity per channel, with the rule sources."""
    with handled(as_json):
        with opened() as ctx, ctx.ledger() as tx:
            data = offers.explain(tx, sku, channel)
        emit(data, as_json, lambda: render.explain(out, data))


@app.command()
def backorders(
    sku: Annotated[
        str | None,
        typer.Option("--sku", help="Only SKUs matching this glob, e.g. 'TEE-*' (or one SKU)."),
    ] = None,
    channel: Annotated[
        str | None, typer.Option("--channel", help="Only orders of this channel.")
    ] = None,
    include_closed: Annotated[bool, typer.Option("--all", help="Include released ones.")] = False,
    limit: Annotated[
        int, typer.Option(help="Rows per page (a SKU is never split across pages).", min=1)
    ] = 100,
    after_sku: Annotated[
        str | None,
        typer.Option("--after-sku", help="The page after this SKU (`next` of the last page)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List backorders in release order, flagged when accepted beyond capacity; a page at a
    time, in SKU order."""
    with handled(as_json):
        with opened() as ctx, ctx.read() as session:
            rows, after = queries.backorders(
                session, ctx.config, sku, include_closed, limit=limit, after_sku=after_sku,
                channel=channel,
            )  # fmt: skip
        emit(
            {"backorders": rows, "next": after},
            as_json,
            lambda: render.backorders(out, rows, after),
        )


@app.command()
def status(
    sku: Annotated[
        str | None, typer.Option("--sku", help="Only SKUs matching this glob, e.g. 'TEE-*'.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most this many SKUs (in code order).", min=0)
    ] = None,
    channel: Annotated[
        str | None, typer.Option("--channel", help="Only this channel's offers and state.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Per-SKU stock and offers, and the health of the ledger and the channels."""
    with handled(as_json), collector_paused():
        with opened() as ctx:
            db_revision = queries.revision(ctx)
            with ctx.read() as session:
                data = queries.status(
                    ctx, session, db_revision, datetime.now(UTC).date(), sku_glob=sku,
                    limit=limit, channel=channel,
                )  # fmt: skip
        emit(data, as_json, lambda: render.status(out, data), one_line=("skus", status_rows_json))


@inbox_app.command("list")
def inbox_list(
    failed: Annotated[bool, typer.Option("--failed", help="Only the exception queue.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List inbox events: pending, processed, or failed with their error."""
    with handled(as_json):
        with opened() as ctx, ctx.read() as session:
            rows = inbox.listing(session, failed_only=failed, limit=limit)
        emit({"events": rows}, as_json, lambda: render.inbox(out, rows))


@inbox_app.command("retry")
def inbox_retry(
    event_ids: Annotated[list[int] | None, typer.Argument(help="Event ids to retry.")] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Retry the whole exception queue.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Process failed events again now (after fixing what made them fail)."""
    from sync.jobs import inbox as inbox_jobs
    from sync.runtime import Runtime

    with handled(as_json):
        if not event_ids and not all_failed:
            fail("name event ids or --all-failed", EXIT_BAD_INPUT)
        config = load_config(config_path(STATE.config_file))
        runtime = Runtime.build(config)
        try:
            with runtime.ctx.read() as session:
                ids = queries.retryable_events(session, event_ids or [], all_failed)
            results = []
            for event_id in ids:
                inbox_jobs.reset_event(runtime, event_id)
                inbox_jobs.process_event(runtime, event_id, drain=False)
                with runtime.ctx.read() as session:
                    results.extend(inbox.listing(session, event_ids=[event_id]))
        finally:
            runtime.close()
        still_failed = [r for r in results if r["error"]]
        data = {"ok": not still_failed, "events": results}
        emit(data, as_json, lambda: render.inbox(out, results))
        if still_failed:
            raise typer.Exit(EXIT_FAILURE)


@app.command()
def run(
    host: Annotated[str | None, typer.Option(help="Bind address (default server.host).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default server.port, 8080).", min=0, max=65535)
    ] = None,
    threads: Annotated[int, typer.Option(help="In-process worker threads.", min=1)] = 4,
) -> None:
    """Run the daemon: webhooks, polling, pushes; in-process workers with `broker: memory`.
    Exit 3 when the port is taken, 4 when the broker (Redis) does not answer."""
    from sync.daemon import Daemon, StartupError

    with handled():
        config = load_config(config_path(STATE.config_file))
        configure_logging(config)
        daemon = Daemon(
            config, host or config.server.host, config.server.port if port is None else port,
            worker_threads=threads,
        )  # fmt: skip
        try:
            daemon.serve_forever()
        except StartupError as exc:
            fail(str(exc), exc.exit_code)


@app.command()
def worker(
    threads: Annotated[int, typer.Option(help="Worker threads in this process.", min=1)] = 4,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this worker's Prometheus metrics on this port.", min=1, max=65535),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Bind address for --metrics-port.")] = (
        "127.0.0.1"
    ),
) -> None:
    """Run dramatiq workers for `broker: redis://...`; start more processes to scale.
    Exit 3 when --metrics-port is taken, 4 when Redis does not answer."""
    import signal
    import threading

    # first, before the heavy imports: a worker told to stop while it starts (a standby
    # started and stopped at once on a busy machine) then exits cleanly instead of dying
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    from sync.daemon import StartupError, run_worker

    with handled():
        config = load_config(config_path(STATE.config_file))
        if config.broker == "memory":
            fail(
                "`broker: memory` runs its workers inside `stocksync run`; "
                "set broker: redis://... to run separate workers",
                EXIT_BAD_INPUT,
            )
        configure_logging(config)
        try:
            run_worker(config, threads, stop, metrics_host=metrics_host, metrics_port=metrics_port)
        except StartupError as exc:
            fail(str(exc), exc.exit_code)


def configure_logging(config: Any) -> None:
    from sync import logs
    from sync.runtime import Runtime

    secrets = Runtime.secrets_of(config)
    logs.configure(config.logging.level, config.logging.json, secrets)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sandbox(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="shopify or woocommerce")],
) -> None:
    """Run a loopback Shopify or WooCommerce sandbox (--port N --seed FILE --webhook-url URL)."""
    if kind == "shopify":
        from connectors.sandbox.shopify import main as sandbox_main
    elif kind == "woocommerce":
        from connectors.sandbox.woocommerce import main as sandbox_main
    else:
        fail(f"unknown sandbox {kind!r}: choose shopify or woocommerce", EXIT_BAD_INPUT)
    raise typer.Exit(sandbox_main(list(ctx.args)))


@app.command()
def demo(
    duration: Annotated[
        float, typer.Option(help="Seconds the demo runs before its summary.", min=1)
    ] = 20.0,
    seed: Annotated[int, typer.Option(help="Seed of the customer traffic (repeatable).")] = 7,
    live: Annotated[
        bool | None,
        typer.Option("--live/--no-live", help="Live table (default: when stdout is a terminal)."),
    ] = None,
) -> None:
    """Both sandboxes and the daemon on loopback, customers buying, a live table, a summary."""
    from sync.demo import run_demo

    raise typer.Exit(run_demo(cast(_LazyConsole, out).real(), duration, seed=seed, live=live))


# commands in their own modules, which use the helpers above; importing `cli_audit`,
# `cli_report` and `cli_suppliers` registers their commands on `app`
from sync import cli_audit, cli_report, cli_suppliers  # noqa: E402, F401
from sync.cli_campaigns import campaign_app, review_app, waitlist_app  # noqa: E402
from sync.cli_notify import notify_app  # noqa: E402

app.add_typer(waitlist_app, name="waitlist")
app.add_typer(campaign_app, name="campaign")
app.add_typer(review_app, name="review")
app.add_typer(notify_app, name="notify")


def main(argv: Sequence[str] | None = None) -> None:
    try:
        app(args=list(argv) if argv is not None else None, prog_name="stocksync")
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
