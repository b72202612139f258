"""The CSV files `stocksync stock import` reads, told apart by their header row.

    plain               sku,on_hand (the header is optional)
    shopify_inventory   Shopify's inventory export (Products > Inventory > Export): Handle,
                        Title, Option1..3 Name/Value, SKU, HS Code, COO, then either one row per
                        variant per location (`Location` and the quantity columns `Incoming`,
                        `Unavailable`, `Committed`, `Available`, `On hand`; the import template
                        names them `On hand (current)`, `On hand (new)`, `... (not editable)`)
                        or, in older files, one column per location holding its quantity.
                        On hand is read (Available where there is no On hand column); several
                        locations need --location NAME
    shopify_products    Shopify's product export: `Variant SKU` and `Variant Inventory Qty`
                        (newer files: `SKU` and `Inventory quantity`), beside `Handle` or
                        `URL handle`; image-only rows have no SKU
    woocommerce         WooCommerce's product export (Products > Export): `SKU`, `Stock`, with
                        `Type` or `In stock?`; a variable product's own row usually has no stock

Rows without a SKU, rows whose stock the shop does not track (an empty quantity, `not stocked`)
are skipped and counted. A negative quantity in a shop's export (sold beyond stock) is counted
as 0 and reported. Every other problem is reported as FILE:LINE and nothing is imported.
Pure: text in, rows out (no database, no console).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field

PLAIN = "plain"
SHOPIFY_INVENTORY = "shopify_inventory"
SHOPIFY_PRODUCTS = "shopify_products"
WOOCOMMERCE = "woocommerce"
TITLES = {
    PLAIN: "sku,on_hand",
    SHOPIFY_INVENTORY: "Shopify inventory export",
    SHOPIFY_PRODUCTS: "Shopify product export",
    WOOCOMMERCE: "WooCommerce product export",
}

# the columns of Shopify's inventory export that say which variant a row is (the others, in a
# file without a `Location` column, are locations)
_SHOPIFY_ID_COLUMNS = {
    "handle", "url handle", "title", "option1 name", "option1 value", "option2 name",
    "option2 value", "option3 name", "option3 value", "sku", "hs code", "coo", "barcode",
    "bin name", "country/region of origin", "harmonized system code",
}  # fmt: skip
_NOT_STOCKED = "not stocked"


class CsvProblems(ValueError):
    """The file cannot be imported; one `FILE:LINE: problem` (or `FILE: problem`) per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass
class StockCsv:
    """What a file holds: (line, SKU, on hand) rows and what was detected and left out."""

    format: str
    rows: list[tuple[int, str, int]] = field(default_factory=list)
    quantity_column: str | None = None
    location: str | None = None
    skipped_no_sku: int = 0
    skipped_untracked: int = 0
    skipped_other_locations: int = 0
    negative_as_zero: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return TITLES[self.format]

    def detected(self) -> dict[str, object]:
        """What `stock import --json` reports beside the plain format's keys."""
        return {
            "format": self.format,
            "quantity_column": self.quantity_column,
            "location": self.location,
            "skipped": {
                "no_sku": self.skipped_no_sku,
                "untracked": self.skipped_untracked,
                "other_locations": self.skipped_other_locations,
            },
            "negative_as_zero": self.negative_as_zero,
        }

    def describe(self) -> str:
        """One line for people: the format, the column and location read, what was left out."""
        parts = [f"Detected {self.title}"]
        if self.quantity_column:
            parts.append(f"column {self.quantity_column!r}")
        if self.location:
            parts.append(f"location {self.location!r}")
        text = ", ".join(parts)
        left = [
            f"{count} {what}"
            for count, what in (
                (self.skipped_no_sku, "rows without SKU"),
                (self.skipped_untracked, "rows not tracked (empty or not stocked)"),
                (self.skipped_other_locations, "rows of other locations"),
            )
            if count
        ]
        if left:
            text += "; skipped " + ", ".join(left)
        if self.negative_as_zero:
            text += f"; {len(self.negative_as_zero)} negative quantities counted as 0"
        return text


def _key(header: str) -> str:
    return " ".join(header.strip().lower().split())


def detect(header: Sequence[str]) -> str:
    """The format a header row says the file has (PLAIN when it is none of the exports)."""
    keys = {_key(h) for h in header}
    if "variant sku" in keys or (
        {"sku", "inventory quantity"} <= keys and keys & {"handle", "url handle"}
    ):
        return SHOPIFY_PRODUCTS
    if "sku" in keys and "handle" in keys:
        return SHOPIFY_INVENTORY
    if {"sku", "stock"} <= keys and keys & {"type", "in stock?"}:
        return WOOCOMMERCE
    return PLAIN


def parse(text: str, name: str, location: str | None = None) -> StockCsv:
    """Read a stock CSV (any of the formats above); CsvProblems when it cannot be imported."""
    records = list(csv.reader(text.splitlines()))
    first = next((r for r in records if any(cell.strip() for cell in r)), None)
    kind = detect(first) if first is not None else PLAIN
    if kind != SHOPIFY_INVENTORY and location is not None:
        raise CsvProblems([f"{name}: --location is for Shopify inventory exports only"])
    if kind == PLAIN:
        return _plain(records, name)
    assert first is not None
    start = records.index(first)
    header = [_key(h) for h in first]
    body = [(number, r) for number, r in enumerate(records[start + 1 :], start=start + 2)]
    if kind == SHOPIFY_INVENTORY:
        return _shopify_inventory(first, body, name, location)
    if kind == SHOPIFY_PRODUCTS:
        sku = header.index("variant sku" if "variant sku" in header else "sku")
        qty_name = next(
            (q for q in ("variant inventory qty", "inventory quantity") if q in header), None
        )
        if qty_name is None:
            raise CsvProblems([f"{name}:{start + 1}: no 'Variant Inventory Qty' column"])
        tracker = next(
            (
                header.index(t)
                for t in ("variant inventory tracker", "inventory tracker")
                if t in header
            ),
            None,
        )
        result = StockCsv(SHOPIFY_PRODUCTS, quantity_column=first[header.index(qty_name)].strip())
        return _export_rows(result, body, name, sku, header.index(qty_name), tracker)
    sku, stock = header.index("sku"), header.index("stock")
    return _export_rows(StockCsv(WOOCOMMERCE, quantity_column="Stock"), body, name, sku, stock)


def _plain(records: list[list[str]], name: str) -> StockCsv:
    result = StockCsv(PLAIN)
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, record in enumerate(records, start=1):
        if not record or all(not cell.strip() for cell in record):
            continue
        if number == 1 and [c.strip().lower() for c in record] == ["sku", "on_hand"]:
            continue
        if len(record) != 2:
            problems.append(f"{name}:{number}: expected 2 columns sku,on_hand, got {len(record)}")
            continue
        sku, qty_text = record[0].strip(), record[1].strip()
        if not sku:
            problems.append(f"{name}:{number}: empty sku")
            continue
        try:
            qty = int(qty_text)
        except ValueError:
            problems.append(f"{name}:{number}: on_hand {qty_text!r} is not a whole number")
            continue
        if qty < 0:
            problems.append(f"{name}:{number}: on_hand cannot be negative ({qty})")
            continue
        if sku in seen:
            problems.append(f"{name}:{number}: {sku} already set on line {seen[sku]}")
            continue
        seen[sku] = number
        result.rows.append((number, sku, qty))
    return _checked(result, problems, name)


def _checked(result: StockCsv, problems: list[str], name: str) -> StockCsv:
    if problems:
        raise CsvProblems(problems)
    if not result.rows:
        raise CsvProblems([f"{name}: no rows to import"])
    return result


def _cell(record: Sequence[str], index: int) -> str:
    return record[index].strip() if index < len(record) else ""


def _export_rows(
    result: StockCsv,
    body: list[tuple[int, list[str]]],
    name: str,
    sku_at: int,
    qty_at: int,
    tracker_at: int | None = None,
) -> StockCsv:
    """Rows of a product export: one SKU and one quantity column."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, record in body:
        if not record or all(not cell.strip() for cell in record):
            continue
        sku = _cell(record, sku_at)
        if not sku:
            result.skipped_no_sku += 1
            continue
        qty_text = _cell(record, qty_at)
        if not qty_text or (tracker_at is not None and not _cell(record, tracker_at)):
            result.skipped_untracked += 1
            continue
        _take(result, problems, seen, name, number, sku, qty_text, result.quantity_column or "")
    return _checked(result, problems, name)


def _take(
    result: StockCsv,
    problems: list[str],
    seen: dict[str, int],
    name: str,
    number: int,
    sku: str,
    qty_text: str,
    column: str,
) -> None:
    try:
        qty = int(qty_text)
    except ValueError:
        try:
            as_float = float(qty_text)
        except ValueError:
            as_float = 0.5
        if not as_float.is_integer():
            problems.append(f"{name}:{number}: {column} {qty_text!r} is not a whole number")
            return
        qty = int(as_float)  # "12.0", as spreadsheets write numbers
    if sku in seen:
        problems.append(f"{name}:{number}: {sku} already set on line {seen[sku]}")
        return
    seen[sku] = number
    if qty < 0:
        result.negative_as_zero.append(sku)
        qty = 0
    result.rows.append((number, sku, qty))


def _shopify_inventory(
    raw: list[str], body: list[tuple[int, list[str]]], name: str, location: str | None
) -> StockCsv:
    header = [_key(h) for h in raw]
    sku_at = header.index("sku")
    if "location" in header:
        return _inventory_by_row(header, body, name, location, sku_at)
    return _inventory_by_column(raw, body, name, location, sku_at)


def _quantity_column(header: list[str]) -> tuple[int, str] | None:
    """On hand, else Available, in the names Shopify's exports and templates use."""
    for wanted in ("on hand", "on hand (current)", "available", "available (not editable)"):
        if wanted in header:
            return header.index(wanted), wanted
    return None


def _inventory_by_row(
    header: list[str],
    body: list[tuple[int, list[str]]],
    name: str,
    location: str | None,
    sku_at: int,
) -> StockCsv:
    found = _quantity_column(header)
    if found is None:
        raise CsvProblems([f"{name}: no 'On hand' or 'Available' column"])
    qty_at, column = found
    location_at = header.index("location")
    names = sorted({_cell(r, location_at) for _n, r in body if _cell(r, location_at)})
    chosen = _chosen_location(names, location, name)
    result = StockCsv(SHOPIFY_INVENTORY, quantity_column=_title(column), location=chosen)
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, record in body:
        if not record or all(not cell.strip() for cell in record):
            continue
        if _cell(record, location_at) != chosen:
            result.skipped_other_locations += 1
            continue
        sku = _cell(record, sku_at)
        if not sku:
            result.skipped_no_sku += 1
            continue
        qty_text = _cell(record, qty_at)
        if not qty_text or qty_text.lower() == _NOT_STOCKED:
            result.skipped_untracked += 1
            continue
        _take(result, problems, seen, name, number, sku, qty_text, _title(column))
    return _checked(result, problems, name)


def _inventory_by_column(
    raw: list[str],
    body: list[tuple[int, list[str]]],
    name: str,
    location: str | None,
    sku_at: int,
) -> StockCsv:
    """Older exports: one column per location (its name as the header) holding Available."""
    columns = {
        column.strip(): index
        for index, column in enumerate(raw)
        if column.strip() and _key(column) not in _SHOPIFY_ID_COLUMNS
    }
    if not columns:
        raise CsvProblems([f"{name}: no location column with quantities"])
    chosen = _chosen_location(sorted(columns), location, name)
    qty_at = columns[chosen]
    result = StockCsv(SHOPIFY_INVENTORY, quantity_column="Available", location=chosen)
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, record in body:
        if not record or all(not cell.strip() for cell in record):
            continue
        sku = _cell(record, sku_at)
        if not sku:
            result.skipped_no_sku += 1
            continue
        qty_text = _cell(record, qty_at)
        if not qty_text or qty_text.lower() == _NOT_STOCKED:
            result.skipped_untracked += 1
            continue
        _take(result, problems, seen, name, number, sku, qty_text, chosen)
    return _checked(result, problems, name)


def _chosen_location(names: list[str], location: str | None, file: str) -> str:
    if location is not None:
        if location not in names:
            raise CsvProblems(
                [f"{file}: no location {location!r} in the file; it has {', '.join(names)}"]
            )
        return location
    if len(names) > 1:
        raise CsvProblems(
            [f"{file}: several locations ({', '.join(names)}): choose one with --location NAME"]
        )
    if not names:
        raise CsvProblems([f"{file}: no rows to import"])
    return names[0]


def _title(column: str) -> str:
    return column[:1].upper() + column[1:]
