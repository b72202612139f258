"""Exit codes and messages: 2 for bad input (with FILE:LINE where there is a file), 1 for
failures such as an unmigrated database. Nothing a refused command was given is half-applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import Cli, init, line_of

BAD_CSV = "sku,on_hand\nB,1\nC,x\n,3\nD,-1\nB,2\nE,1,2\n"


@pytest.mark.slow
def test_bad_input_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    config = init(tmp_path)
    cli = Cli(tmp_path, config)
    cli("stock", "set", "A", "3")
    bad_csv = tmp_path / "count.csv"
    bad_csv.write_text(BAD_CSV, encoding="utf-8")
    csv_problems = "\n".join(
        [
            f"{bad_csv}:3: on_hand 'x' is not a whole number",
            f"{bad_csv}:4: empty sku",
            f"{bad_csv}:5: on_hand cannot be negative (-1)",
            f"{bad_csv}:6: B already set on line 2",
            f"{bad_csv}:7: expected 2 columns sku,on_hand, got 3",
        ]
    )
    json_cases: dict[tuple[str, ...], str] = {
        ("stock", "set", "A", "-3"): "A: on hand cannot be negative, got -3",
        ("stock", "adjust", "A", "-5"): "A: adjusting 3 by -5 would leave -2",
        ("stock", "import", str(bad_csv)): csv_problems,
        ("order", "add", "popup", "X", "A"): "'A': expected SKU=QTY",
        ("order", "add", "market", "X", "A=1"): "unknown channel 'market'; configured: popup",
        ("order", "cancel", "popup", "NOPE"): "popup/NOPE: no such order",
        ("po", "receive", "NOPE", "A=1"): "NOPE: no such purchase order",
        ("explain", "NOPE"): "NOPE: unknown SKU",
    }
    human_cases: dict[tuple[str, ...], str] = {
        ("stock", "import", str(bad_csv)): csv_problems,
        ("sandbox", "ftp"): "unknown sandbox 'ftp': choose shopify or woocommerce",
    }
    results = cli.many([(*args, "--json") for args in json_cases] + list(human_cases), expect=2)
    for result, message in zip(results, [*json_cases.values(), *human_cases.values()], strict=True):
        if result.args[-1] == "--json":
            assert result.json() == {"ok": False, "error": message}, result
            assert result.stderr == "", result
        else:
            assert (result.stdout, result.stderr) == ("", f"error: {message}\n"), result

    # all or nothing: neither the CSV's valid row B nor any order was kept
    status = cli("status", "--json").json()
    assert [(s["sku"], s["on_hand"]) for s in status["skus"]] == [("A", 3)]
    assert status["orders_open"] == 0


@pytest.mark.slow
def test_unmigrated_or_unreachable_database_exits_1(tmp_path: Path) -> None:
    """A config pointing at a new database file, as after editing the one `init` wrote."""
    config = tmp_path / "stocksync.yaml"
    config.write_text(
        "database: sqlite:///other.db\nchannels:\n  popup: {kind: manual}\n", encoding="utf-8"
    )
    other_db = tmp_path / "other.db"
    no_folder = tmp_path / "nowhere.yaml"
    no_folder.write_text("database: sqlite:///missing/ledger.db\n", encoding="utf-8")
    check, unreachable, *failed = Cli(tmp_path).many(
        [
            ("check", "--json"),
            ("--config", str(no_folder), "status", "--json"),
            ("status",),
            ("stock", "set", "A", "1", "--json"),
        ],
        expect=None,
    )
    assert check.code == 0, check  # check reports the revision; it needs no tables
    revision = check.json()["revision"]
    assert revision["current"] is None
    message = (
        f"database sqlite:///{other_db} is at revision none, the code needs {revision['head']}: "
        "run `stocksync db upgrade`"
    )
    for result in failed:
        assert result.code == 1, result
        if result.args[-1] == "--json":
            assert result.json() == {"ok": False, "error": message}
        else:
            assert result.stderr == f"error: {message}\n"
    assert unreachable.code == 1, unreachable
    missing = tmp_path / "missing"
    assert unreachable.json() == {
        "ok": False,
        "error": f"database: sqlite:///{missing}/ledger.db: folder {missing} does not exist",
    }

    upgraded = Cli(tmp_path)("db", "upgrade", "--json").json()
    assert upgraded == {
        "ok": True,
        "database": f"sqlite:///{other_db}",
        "revision": {"current": revision["head"], "head": revision["head"]},
    }


BAD_CONFIG = """\
database: sqlite:///stocksync.db
channels:
  popup: {kind: manual}
  shop:
    kind: shopify
    shop: my-store.myshopify.com
    token: ${E2E_UNSET_SHOPIFY_TOKEN}
    webhook_secret_file: hook.secret
defaults:
  safety_bufer: 2
  cap: many
  backorders:
    incoming_share: 1.5
channel_rules:
  popop: {priority: 1}
"""


@pytest.mark.slow
def test_bad_config_exits_2_with_file_line_key_messages(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_CONFIG, encoding="utf-8")
    (tmp_path / "hook.secret").write_text("whsec_e2e\n", encoding="utf-8")
    expected = [
        (
            line_of(BAD_CONFIG, "token:"),
            "channels.shop.token",
            "environment variable E2E_UNSET_SHOPIFY_TOKEN is not set",
        ),
        (
            line_of(BAD_CONFIG, "safety_bufer"),
            "defaults.safety_bufer",
            "unknown key 'safety_bufer' (did you mean 'safety_buffer'?)",
        ),
        (line_of(BAD_CONFIG, "cap: many"), "defaults.cap", "must be an integer, got 'many'"),
        (
            line_of(BAD_CONFIG, "incoming_share: 1.5"),
            "defaults.backorders.incoming_share",
            "must be between 0 and 1, got 1.5",
        ),
        (
            line_of(BAD_CONFIG, "popop"),
            "channel_rules.popop",
            "unknown channel 'popop' (did you mean 'popup'?); configured channels: popup, shop",
        ),
    ]
    assert [line for line, _path, _message in expected] == [7, 10, 11, 13, 15]
    text = "".join(f"bad.yaml:{line}: {path}: {message}\n" for line, path, message in expected)

    cli = Cli(tmp_path)
    check, check_json, status, no_default = cli.many(
        [
            ("--config", "bad.yaml", "check"),
            ("--config", "bad.yaml", "check", "--json"),
            ("--config", "bad.yaml", "stock", "set", "A", "1"),
            ("status",),  # ./stocksync.yaml, which this folder does not have
        ],
        expect=2,
    )
    assert (check.stdout, check.stderr) == ("", text)
    assert (status.stdout, status.stderr) == ("", text)
    assert check_json.json() == {
        "ok": False,
        "error": "config",
        "issues": [
            {"file": "bad.yaml", "line": line, "path": path, "message": message}
            for line, path, message in expected
        ],
    }
    assert no_default.stderr == "stocksync.yaml:0: config file not found\n"
