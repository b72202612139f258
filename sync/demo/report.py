"""The demo's live table and its end-of-day summary: plain values in, rich renderables out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from sync.demo.customers import SalesLog
from sync.demo.lag import LagStats
from sync.demo.ledger import LedgerTotals, SkuLedger
from sync.demo.plan import percentile
from sync.demo.watch import ShopView


class PushCounter:
    """Pushes that landed per SKU, counted from each listing's `pushed_at` as it changes."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], set[str]] = {}

    def update(self, rows: Iterable[SkuLedger]) -> None:
        for row in rows:
            for channel, stamp in row.pushed_at.items():
                if stamp is not None:
                    self._seen.setdefault((channel, row.sku), set()).add(stamp)

    def by_sku(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for (_channel, sku), stamps in self._seen.items():
            counts[sku] = counts.get(sku, 0) + len(stamps)
        return counts


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def sku_table(
    rows: Sequence[SkuLedger],
    view: ShopView,
    lags: Mapping[str, Sequence[float]],
    pushes: Mapping[str, int],
    channels: Sequence[str],
) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", padding=0, show_edge=False)
    table.add_column("SKU", no_wrap=True)
    # two-line headers keep the table within 80 columns
    numeric = ["on\nhand", "re-\nserved", "back-\nordered", "in-\ncoming"]
    numeric += [f"offered\n{ch}" for ch in channels] + [f"{ch}\nshows" for ch in channels]
    numeric += ["pushes", "lag\np50"]
    for name in numeric:
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        shown: list[Text] = []
        for ch in channels:
            value = view.shown.get(ch, {}).get(row.sku)
            settled = value == row.offered.get(ch)
            # yellow: the shop still shows an older number (a push is on its way)
            shown.append(Text("-" if value is None else str(value), "" if settled else "yellow"))
        table.add_row(
            row.sku,
            str(row.on_hand),
            str(row.reserved),
            Text(str(row.backordered), "magenta" if row.backordered else ""),
            str(row.incoming),
            *[str(row.offered.get(ch, "-")) for ch in channels],
            *shown,
            str(pushes.get(row.sku, 0)),
            _seconds(percentile(lags.get(row.sku, ()), 50)),
        )
    return table


def live_view(
    elapsed: float,
    duration: float,
    phase: str,
    sales: SalesLog,
    table: Table,
    view: ShopView,
) -> RenderableType:
    orders = ", ".join(f"{ch} {n}" for ch, n in sorted(sales.orders.items())) or "none yet"
    refused = sum(sales.refused.values())
    head = Text.assemble(
        ("stocksync demo", "bold"),
        f"  {elapsed:4.1f}/{duration:.0f} s  {phase}\n",
        f"orders: {orders}; refused (409): {refused}; ",
        f"Shopify holds: {view.holds_now} now, {view.holds_seen} placed; ",
        f"Woo on-hold: {view.woo_on_hold_now} now, {view.woo_on_hold_seen} seen",
    )
    return Group(head, table)


# ---------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class Summary:
    orders: dict[str, int]  # channel -> orders the shops took
    refused: dict[str, int]
    errors: list[str]
    ledger_orders: dict[str, int]
    sold: dict[str, int]  # sku -> units sold on all shops
    opening: dict[str, int]
    received: dict[str, int]
    incoming: dict[str, int]  # still on order at the end
    oversold: dict[str, int]  # sku -> units no stock, receipt or open PO covers
    ledger_mismatch: list[str]  # sales the ledger does not show (or shows differently)
    backorders_created: int
    backordered_units: int
    released_units: int
    backorders_open: int
    beyond_capacity: int
    holds_placed: int
    holds_released: int
    woo_on_hold_seen: int
    pushes: dict[str, int]  # channel -> pushes that landed (daemon metrics)
    lag_p50: float | None
    lag_p95: float | None
    lag_samples: int
    lag_unmeasured: int
    unsettled: list[str]  # "channel SKU: shows X, ledger offers Y" after the end
    inbox_failed: int
    warnings_logged: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def oversold_units(self) -> int:
        return sum(self.oversold.values())

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.oversold_units:
            found.append(f"{self.oversold_units} units oversold: {self.oversold}")
        found += [f"ledger differs from the shops: {m}" for m in self.ledger_mismatch]
        found += [f"not settled: {u}" for u in self.unsettled]
        if self.inbox_failed:
            found.append(f"{self.inbox_failed} inbox events failed")
        found += [f"checkout error: {e}" for e in self.errors]
        return found


def summarize(
    *,
    opening: Mapping[str, int],
    sales: SalesLog,
    totals: LedgerTotals,
    rows: Sequence[SkuLedger],
    view: ShopView,
    lag: LagStats,
    pushes: Mapping[str, int],
    warnings_logged: int = 0,
) -> Summary:
    sold = sales.units_by_sku()
    incoming = {row.sku: row.incoming for row in rows}
    skus = sorted(set(opening) | set(sold))
    oversold = {}
    recorded = {row.sku: row.oversold for row in rows}  # the ledger's own count, if any
    for sku in skus:
        covered = opening.get(sku, 0) + totals.received.get(sku, 0) + incoming.get(sku, 0)
        beyond = max(sold.get(sku, 0) - covered, recorded.get(sku, 0))
        if beyond > 0:
            oversold[sku] = beyond
    mismatch = []
    for channel in sorted(set(sales.sold) | set(totals.units)):
        ours, theirs = totals.units.get(channel, {}), sales.sold.get(channel, {})
        if ours != theirs:
            mismatch.append(f"{channel}: shops sold {theirs}, ledger has {ours}")
    unsettled = [
        f"{channel} {row.sku}: shows {view.shown.get(channel, {}).get(row.sku)}, "
        f"ledger offers {offered}"
        for row in rows
        for channel, offered in sorted(row.offered.items())
        if channel in view.shown and view.shown[channel].get(row.sku) != offered
    ]
    lags = lag.all_lags()
    return Summary(
        orders=dict(sales.orders),
        refused=dict(sales.refused),
        errors=list(sales.errors),
        ledger_orders=dict(totals.orders),
        sold=sold,
        opening=dict(opening),
        received=dict(totals.received),
        incoming=incoming,
        oversold=oversold,
        ledger_mismatch=mismatch,
        backorders_created=totals.backorders_created,
        backordered_units=totals.backordered_units,
        released_units=totals.released_units,
        backorders_open=totals.backorders_open,
        beyond_capacity=totals.beyond_capacity,
        holds_placed=view.holds_seen,
        holds_released=view.holds_released,
        woo_on_hold_seen=view.woo_on_hold_seen,
        pushes=dict(pushes),
        lag_p50=percentile(lags, 50),
        lag_p95=percentile(lags, 95),
        lag_samples=len(lags),
        lag_unmeasured=lag.expired,
        unsettled=unsettled,
        inbox_failed=totals.inbox_failed,
        warnings_logged=warnings_logged,
    )


def summary_lines(summary: Summary) -> list[str]:
    """Plain lines, stable enough for scripts and tests to read (`key: value` each)."""

    def per_channel(values: Mapping[str, int]) -> str:
        return ", ".join(f"{ch} {n}" for ch, n in sorted(values.items())) or "none"

    sold = sum(summary.sold.values())
    existed = sum(summary.opening.values()) + sum(summary.received.values())
    return [
        f"orders taken: {sum(summary.orders.values())} ({per_channel(summary.orders)})",
        f"orders in ledger: {sum(summary.ledger_orders.values())} "
        f"({per_channel(summary.ledger_orders)})",
        f"refused checkouts: {sum(summary.refused.values())} ({per_channel(summary.refused)})",
        f"units sold: {sold} of {existed} (stock {sum(summary.opening.values())} "
        f"+ received {sum(summary.received.values())}; still incoming "
        f"{sum(summary.incoming.values())})",
        f"oversold units: {summary.oversold_units}",
        f"backorders created: {summary.backorders_created} ({summary.backordered_units} units, "
        f"{summary.beyond_capacity} beyond capacity)",
        f"backorders released: {summary.released_units} units "
        f"({summary.backorders_open} still open)",
        f"shopify holds: {summary.holds_placed} placed, {summary.holds_released} released",
        f"woocommerce orders put on-hold: {summary.woo_on_hold_seen}",
        f"pushes: {sum(summary.pushes.values())} ({per_channel(summary.pushes)})",
        f"propagation lag: p50 {_seconds(summary.lag_p50)}, p95 {_seconds(summary.lag_p95)} "
        f"({summary.lag_samples} sales watched, {summary.lag_unmeasured} not seen in time)",
        f"shops settled: {'yes' if not summary.unsettled else 'no'}",
        f"warnings logged: {summary.warnings_logged}",
    ]
