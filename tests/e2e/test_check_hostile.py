"""`stocksync check` on hostile or mistaken configs (issue #13): exit 2, one `FILE:LINE:` line (or
one JSON issue), never a traceback, and never the secret on stdout or stderr."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e import Cli, Result

SECRET = "hunter2"


def billion_laughs(levels: int = 9) -> str:
    """Each line nine aliases of the line before: 9**9 strings from ~600 bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        aliases = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def one_issue(human: Result, as_json: Result, file: str, line: int, path: str) -> str:
    """The message both forms agree on; neither shows the secret or a traceback."""
    for result in (human, as_json):
        assert result.code == 2, result
        assert SECRET not in result.stdout + result.stderr, result
        assert "Traceback" not in result.stderr, result
    assert human.stdout == "", human
    [line_text] = human.stderr.splitlines()
    [issue] = as_json.json()["issues"]
    assert (issue["file"], issue["line"], issue["path"]) == (file, line, path), as_json
    prefix = f"{file}:{line}: {path}: " if path else f"{file}:{line}: "
    assert line_text == prefix + issue["message"], human
    assert as_json.stderr == "", as_json
    return str(issue["message"])


def check_both(cli: Cli, config: str, env: dict[str, str] | None = None) -> tuple[Result, Result]:
    human, as_json = cli.many(
        [("--config", config, "check"), ("--config", config, "check", "--json")],
        expect=None,
        env=env,
    )
    return human, as_json


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(billion_laughs(), encoding="utf-8")
    started = time.perf_counter()
    human, as_json = check_both(Cli(tmp_path), "bomb.yaml")
    # two processes, each ~0.7 s of Python start-up; the bomb itself once took > 120 s
    assert time.perf_counter() - started < 10
    message = one_issue(human, as_json, "bomb.yaml", 5, "")
    assert message.startswith("YAML aliases expand to more than 10,000 values")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            f"postgresql:user:{SECRET}@host/db",
            "must be a database URL like 'sqlite:///stocksync.db', got 'postgresql:***@host/db'",
        ),
        (
            f"user:{SECRET}@host",
            "must be a database URL like 'sqlite:///stocksync.db', got 'user:***@host'",
        ),
        (
            f"postgresql://u:{SECRET}@host:notaport/db",
            "the port must be a number from 1 to 65535, got 'postgresql://u:***@host:notaport/db'",
        ),
        (
            f"postgresql://u:{SECRET}@localhost:99999/db",
            "the port must be a number from 1 to 65535, "
            "got 'postgresql://u:***@localhost:99999/db'",
        ),
    ],
)
def test_bad_database_url_in_the_file(tmp_path: Path, url: str, message: str) -> None:
    (tmp_path / "c.yaml").write_text(
        f"channels:\n  popup: {{kind: manual}}\ndatabase: '{url}'\n", encoding="utf-8"
    )
    human, as_json = check_both(Cli(tmp_path), "c.yaml")
    assert one_issue(human, as_json, "c.yaml", 3, "database") == message


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql:user:{SECRET}@host/db",
        f"postgresql://u:{SECRET}@host:notaport/db",
        f"postgresql://u:{SECRET}@localhost:99999/db",
    ],
)
def test_bad_database_url_from_the_environment(tmp_path: Path, url: str) -> None:
    (tmp_path / "c.yaml").write_text("database: ${DATABASE_URL}\n", encoding="utf-8")
    human, as_json = check_both(Cli(tmp_path), "c.yaml", env={"DATABASE_URL": url})
    message = one_issue(human, as_json, "c.yaml", 1, "database")
    assert message.endswith(" (from ${DATABASE_URL})")
    assert "host" not in message


def test_substituted_port_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "channels:\n  popup: {kind: manual}\nserver:\n  port: ${DB_PASSWORD}\n", encoding="utf-8"
    )
    human, as_json = check_both(Cli(tmp_path), "c.yaml", env={"DB_PASSWORD": SECRET})
    message = one_issue(human, as_json, "c.yaml", 4, "server.port")
    assert message == "must be an integer (from ${DB_PASSWORD})"


@pytest.mark.postgres
def test_a_password_with_a_slash_is_masked_in_check_output(tmp_path: Path) -> None:
    """Generated passwords (base64) hold '/': the URL is still shown without it. The local
    PostgreSQL trusts every connection, so the password is never checked."""
    (tmp_path / "c.yaml").write_text("database: ${DATABASE_URL}\n", encoding="utf-8")
    url = f"postgresql+psycopg://postgres:pa/{SECRET}@127.0.0.1:5432/test"
    human, as_json = Cli(tmp_path).many(
        [("--config", "c.yaml", "check"), ("--config", "c.yaml", "check", "--json")],
        env={"DATABASE_URL": url},
    )
    for result in (human, as_json):
        assert SECRET not in result.stdout + result.stderr, result
    shown = "postgresql+psycopg://postgres:***@127.0.0.1:5432/test"
    data = as_json.json()
    assert (data["database"], data["settings"]["database"]) == (shown, shown)
    assert shown in human.stdout
