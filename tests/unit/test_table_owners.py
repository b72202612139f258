"""Each ledger table has one module that writes it (the map in stock/models.py's docstring).

Read statically from the shipped packages: every INSERT/UPDATE/DELETE statement built on a
model (`insert(m.X)`, `update(m.X)`, `delete(m.X)`) and every new ORM row (`m.X(...)`) must sit
in the table's owner. Changes through loaded objects (`row.qty += 1`) are not seen here; the
owners are also the only modules that load rows for writing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from stock import models

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rules", "stock", "backorders", "connectors", "sync", "notify")
OWNERS = {
    "Sku": "stock/counts.py",
    "StockLevel": "stock/counts.py",
    "PurchaseOrder": "stock/purchasing.py",
    "PoLine": "stock/purchasing.py",
    "PoReceipt": "stock/purchasing.py",
    "Reservation": "stock/commitments.py",
    "Backorder": "stock/commitments.py",
    "ChannelOrder": "backorders/orders.py",
    "OrderLine": "backorders/orders.py",
    "Listing": "stock/listings.py",
    "PushInFlight": "stock/inflight.py",
    "PoolShare": "stock/pools.py",
    "PoolMove": "stock/pools.py",
    "CampaignEntry": "stock/campaigns.py",
    "CampaignState": "stock/campaigns.py",
    "CampaignMoney": "stock/campaign_money.py",
    "CampaignShopPlan": "stock/campaign_plans.py",
    "CampaignIdentity": "stock/campaigns.py",
    "Writeback": "stock/outbox.py",
    "InboxEvent": "stock/inbox.py",
    "ChannelState": "stock/channel_state.py",
    "AuditEntry": "stock/audit.py",
    "NotifyMessage": "notify/outbox.py",
    "NotifyCursor": "notify/notifier.py",
    "AlertIncident": "notify/alerts.py",
}
STATEMENTS = {"insert", "update", "delete", "pg_insert", "sqlite_insert"}


def _model(node: ast.expr) -> str | None:
    """`m.X` or `models.X` naming a table's model -> "X"."""
    named = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    if named and node.value.id in ("m", "models") and node.attr in OWNERS:  # type: ignore[attr-defined]
        return node.attr  # type: ignore[attr-defined,no-any-return]
    return None


def _written(call: ast.Call) -> str | None:
    """The model a call writes: a statement built on it, or a new row of it."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    if name in STATEMENTS and call.args:
        return _model(call.args[0])
    return _model(func)


def _writes(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = (node for node in ast.walk(tree) if isinstance(node, ast.Call))
    return sorted((model, call.lineno) for call in calls if (model := _written(call)))


def test_every_table_has_an_owner() -> None:
    tables = {mapper.class_.__name__ for mapper in models.Base.registry.mappers}
    assert tables == set(OWNERS)


def test_only_the_owner_writes_a_table() -> None:
    strays = [
        f"{path.relative_to(ROOT)}:{line}: writes {model}, owned by {OWNERS[model]}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
        for model, line in _writes(path)
        if str(path.relative_to(ROOT)) != OWNERS[model]
    ]
    assert strays == []


@pytest.mark.parametrize("model", sorted(OWNERS))
def test_the_check_sees_a_write(model: str, tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(f"update(m.{model}).values(x=1)\nm.{model}(x=1)\n", encoding="utf-8")
    assert _writes(probe) == [(model, 1), (model, 2)]
