"""`stock import` reads the shops' own exports as well as sku,on_hand: the format is told by the
header, Shopify's inventory export by location, rows without a SKU or untracked are skipped and
counted (sync/stock_csv.py)."""

# ruff: noqa: E501  (the header rows are written as the shops' admins write them)

from __future__ import annotations

import pytest

from sync.stock_csv import (
    PLAIN,
    SHOPIFY_INVENTORY,
    SHOPIFY_PRODUCTS,
    WOOCOMMERCE,
    CsvProblems,
    detect,
    parse,
)

SHOPIFY_INVENTORY_ALL = """\
Handle,Title,Option1 Name,Option1 Value,Option2 Name,Option2 Value,Option3 Name,Option3 Value,SKU,HS Code,COO,Location,Incoming,Unavailable,Committed,Available,On hand
basic-tee,Basic Tee,Size,S,Color,Black,,,TEE-BLK-S,,,Main,0,0,2,10,12
basic-tee,Basic Tee,Size,M,Color,Black,,,TEE-BLK-M,,,Main,5,1,0,7,8
basic-tee,Basic Tee,Size,L,Color,Black,,,,,,Main,0,0,0,3,3
gift-card,Gift Card,Title,Default Title,,,,,GIFT,,,Main,0,0,0,not stocked,not stocked
mug,Mug,Title,Default Title,,,,,MUG,,,Main,0,0,4,-4,0
"""

TWO_LOCATIONS = """\
Handle,Title,Option1 Name,Option1 Value,Option2 Name,Option2 Value,Option3 Name,Option3 Value,SKU,HS Code,COO,Location,Incoming,Unavailable,Committed,Available,On hand
basic-tee,Basic Tee,Size,S,,,,,TEE-S,,,Main,0,0,0,10,10
basic-tee,Basic Tee,Size,S,,,,,TEE-S,,,Pop-up store,0,0,1,2,3
basic-tee,Basic Tee,Size,M,,,,,TEE-M,,,Main,0,0,0,4,4
basic-tee,Basic Tee,Size,M,,,,,TEE-M,,,Pop-up store,0,0,0,0,0
"""

# the import template: On hand (current) and On hand (new), quantities "(not editable)"
TEMPLATE = """\
Handle,Title,Option1 Name,Option1 Value,Option2 Name,Option2 Value,Option3 Name,Option3 Value,SKU,HS Code,COO,Location,Bin name,Incoming (not editable),Unavailable (not editable),Committed (not editable),Available (not editable),On hand (current),On hand (new)
cap,Cap,Title,Default Title,,,,,CAP,,,Shop floor,,0,0,1,5,6,
"""

# older exports: one column per location, holding Available
BY_COLUMN = """\
Handle,Title,Option1 Name,Option1 Value,Option2 Name,Option2 Value,Option3 Name,Option3 Value,SKU,Warehouse,Shop floor
cap,Cap,Title,Default Title,,,,,CAP,9,2
hat,Hat,Title,Default Title,,,,,HAT,not stocked,1
"""

SHOPIFY_PRODUCTS_CSV = """\
Handle,Title,Body (HTML),Vendor,Type,Tags,Published,Option1 Name,Option1 Value,Option2 Name,Option2 Value,Option3 Name,Option3 Value,Variant SKU,Variant Grams,Variant Inventory Tracker,Variant Inventory Qty,Variant Inventory Policy,Variant Fulfillment Service,Variant Price,Image Src
basic-tee,Basic Tee,<p>Soft</p>,Acme,Tees,,TRUE,Size,S,,,,,TEE-S,200,shopify,11,deny,manual,19.00,https://example.com/1.jpg
basic-tee,,,,,,,Size,M,,,,,TEE-M,200,shopify,0,deny,manual,19.00,
basic-tee,,,,,,,,,,,,,,,,,,,,https://example.com/2.jpg
sticker,Sticker,,Acme,Misc,,TRUE,Title,Default Title,,,,,STICKER,5,,0,continue,manual,2.00,
"""

WOOCOMMERCE_CSV = """\
ID,Type,SKU,Name,Published,"Is featured?","Visibility in catalog","In stock?",Stock,"Low stock amount","Backorders allowed?",Parent,"Regular price"
10,simple,MUG-1,Mug,1,0,visible,1,14,,0,,9.50
11,variable,TEE,Tee,1,0,visible,1,,,0,,
12,variation,TEE-S,Tee - S,1,0,visible,1,3,,0,id:11,19
13,variation,TEE-M,Tee - M,1,0,visible,0,0,,0,id:11,19
14,simple,,Gift wrap,1,0,visible,1,,,0,,2
15,simple,POSTER,Poster,1,0,visible,1,-2,,notify,,12
"""


def test_each_format_is_told_by_its_header() -> None:
    assert detect(["sku", "on_hand"]) == PLAIN
    assert detect(["A", "5"]) == PLAIN
    assert detect(SHOPIFY_INVENTORY_ALL.splitlines()[0].split(",")) == SHOPIFY_INVENTORY
    assert detect(BY_COLUMN.splitlines()[0].split(",")) == SHOPIFY_INVENTORY
    assert detect(SHOPIFY_PRODUCTS_CSV.splitlines()[0].split(",")) == SHOPIFY_PRODUCTS
    assert detect(["URL handle", "Title", "SKU", "Inventory quantity"]) == SHOPIFY_PRODUCTS
    assert detect(["ID", "Type", "SKU", "Name", "In stock?", "Stock"]) == WOOCOMMERCE


def test_plain_format_is_unchanged() -> None:
    parsed = parse("sku,on_hand\nA,3\n\nB,0\n", "count.csv")
    assert (parsed.format, parsed.rows) == (PLAIN, [(2, "A", 3), (4, "B", 0)])
    with pytest.raises(CsvProblems) as raised:
        parse("sku,on_hand\nA,x\n,1\nB,-1\nA,2\nC,1,2\n", "count.csv")
    assert raised.value.problems == [
        "count.csv:2: on_hand 'x' is not a whole number",
        "count.csv:3: empty sku",
        "count.csv:4: on_hand cannot be negative (-1)",
        "count.csv:6: expected 2 columns sku,on_hand, got 3",
    ]
    with pytest.raises(CsvProblems, match="no rows to import"):
        parse("sku,on_hand\n", "count.csv")


def test_shopify_inventory_export_reads_on_hand() -> None:
    parsed = parse(SHOPIFY_INVENTORY_ALL, "inventory_export.csv")
    assert parsed.format == SHOPIFY_INVENTORY
    assert (parsed.quantity_column, parsed.location) == ("On hand", "Main")
    # On hand, not Available: committed units are on the shelf still
    assert parsed.rows == [(2, "TEE-BLK-S", 12), (3, "TEE-BLK-M", 8), (6, "MUG", 0)]
    assert (parsed.skipped_no_sku, parsed.skipped_untracked) == (1, 1)
    assert parsed.negative_as_zero == []
    assert parsed.describe() == (
        "Detected Shopify inventory export, column 'On hand', location 'Main'; skipped 1 rows "
        "without SKU, 1 rows not tracked (empty or not stocked)"
    )


def test_shopify_inventory_without_on_hand_reads_available() -> None:
    lines = SHOPIFY_INVENTORY_ALL.splitlines()
    without = "\n".join(",".join(line.split(",")[:-1]) for line in lines)
    parsed = parse(without, "inventory_export.csv")
    assert parsed.quantity_column == "Available"
    assert parsed.rows == [(2, "TEE-BLK-S", 10), (3, "TEE-BLK-M", 7), (6, "MUG", 0)]
    assert parsed.negative_as_zero == ["MUG"]  # sold beyond stock: nothing on the shelf


def test_several_locations_need_location() -> None:
    with pytest.raises(CsvProblems) as raised:
        parse(TWO_LOCATIONS, "inv.csv")
    assert raised.value.problems == [
        "inv.csv: several locations (Main, Pop-up store): choose one with --location NAME"
    ]
    parsed = parse(TWO_LOCATIONS, "inv.csv", location="Pop-up store")
    assert parsed.rows == [(3, "TEE-S", 3), (5, "TEE-M", 0)]
    assert parsed.skipped_other_locations == 2
    with pytest.raises(CsvProblems, match="no location 'Depot' in the file; it has Main, Pop-up"):
        parse(TWO_LOCATIONS, "inv.csv", location="Depot")


def test_shopify_import_template_reads_on_hand_current() -> None:
    parsed = parse(TEMPLATE, "template.csv")
    assert (parsed.quantity_column, parsed.location, parsed.rows) == (
        "On hand (current)",
        "Shop floor",
        [(2, "CAP", 6)],
    )


def test_older_inventory_export_has_a_column_per_location() -> None:
    with pytest.raises(CsvProblems, match=r"several locations \(Shop floor, Warehouse\)"):
        parse(BY_COLUMN, "old.csv")
    parsed = parse(BY_COLUMN, "old.csv", location="Warehouse")
    assert (parsed.location, parsed.rows, parsed.skipped_untracked) == (
        "Warehouse",
        [(2, "CAP", 9)],
        1,
    )


def test_shopify_product_export() -> None:
    parsed = parse(SHOPIFY_PRODUCTS_CSV, "products_export_1.csv")
    assert parsed.format == SHOPIFY_PRODUCTS
    assert parsed.quantity_column == "Variant Inventory Qty"
    assert parsed.rows == [(2, "TEE-S", 11), (3, "TEE-M", 0)]
    # the image-only row has no SKU; the sticker's inventory is not tracked by Shopify
    assert (parsed.skipped_no_sku, parsed.skipped_untracked) == (1, 1)


def test_woocommerce_product_export() -> None:
    parsed = parse(WOOCOMMERCE_CSV, "wc-product-export.csv")
    assert parsed.format == WOOCOMMERCE
    assert parsed.rows == [(2, "MUG-1", 14), (4, "TEE-S", 3), (5, "TEE-M", 0), (7, "POSTER", 0)]
    # the variable parent manages no stock of its own; the gift wrap has no SKU
    assert (parsed.skipped_untracked, parsed.skipped_no_sku) == (1, 1)
    assert parsed.negative_as_zero == ["POSTER"]
    assert parsed.detected() == {
        "format": "woocommerce",
        "quantity_column": "Stock",
        "location": None,
        "skipped": {"no_sku": 1, "untracked": 1, "other_locations": 0},
        "negative_as_zero": ["POSTER"],
    }


def test_export_problems_name_file_and_line() -> None:
    bad = WOOCOMMERCE_CSV.replace(",14,", ",lots,").replace("TEE-M", "TEE-S")
    with pytest.raises(CsvProblems) as raised:
        parse(bad, "wc.csv")
    assert raised.value.problems == [
        "wc.csv:2: Stock 'lots' is not a whole number",
        "wc.csv:5: TEE-S already set on line 4",
    ]
    with pytest.raises(CsvProblems, match="--location is for Shopify inventory exports only"):
        parse(WOOCOMMERCE_CSV, "wc.csv", location="Main")
