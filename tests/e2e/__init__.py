"""End-to-end tests: the installed `stocksync` console script, run as a user runs it.

The runner and `init` below are shared by the e2e modules: one place decides which executable runs,
with which environment, and how a finished call is described when an assertion fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import stocksync_executable

CALL_TIMEOUT_S = 60


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without stocksync settings that would leak into a test."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("STOCKSYNC_") and key not in ("COLUMNS", "LINES")
    }
    # wide and plain, so human output is not wrapped or coloured differently per terminal
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"$ stocksync {' '.join(self.args)}\n-> exit {self.code}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"stdout is not JSON ({exc}):\n{self}") from exc


@dataclass(frozen=True)
class Call:
    args: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]


class Cli:
    """Runs `stocksync` in a working folder, optionally with `--config FILE` put first."""

    def __init__(
        self, cwd: Path, config: Path | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.executable = stocksync_executable()
        self.cwd = cwd
        self.config = config
        self.env = base_env(env)

    def _call(self, args: Sequence[str], env: Mapping[str, str] | None, cwd: Path | None) -> Call:
        prefix = ("--config", str(self.config)) if self.config is not None else ()
        return Call((*prefix, *args), cwd or self.cwd, {**self.env, **(env or {})})

    def __call__(
        self,
        *args: str,
        expect: int | None = 0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Result:
        """One call; `expect` is the exit code it must end with (None: any)."""
        return self.many([args], expect=expect, env=env, cwd=cwd)[0]

    def many(
        self,
        calls: Sequence[Sequence[str]],
        *,
        expect: int | None = 0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> list[Result]:
        """Independent calls, one per core at a time (each spends ~0.6 s starting Python)."""
        prepared = [self._call(args, env, cwd) for args in calls]
        workers = min(len(prepared), os.cpu_count() or 1) or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(partial(_run, self.executable), prepared))
        if expect is not None:
            for result in results:
                assert result.code == expect, f"expected exit {expect}:\n{result}"
        return results


def _run(executable: str, call: Call) -> Result:
    try:
        done = subprocess.run(
            [executable, *call.args],
            cwd=call.cwd,
            env=dict(call.env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"stocksync {' '.join(call.args)} ran over {CALL_TIMEOUT_S} s: {exc}")
    return Result(call.args, done.returncode, done.stdout, done.stderr)


def init(tmp_path: Path, folder: str = "shop") -> Path:
    """`stocksync init DIR` as a user types it; returns the config it wrote."""
    data = Cli(tmp_path)("init", folder, "--json").json()
    config = tmp_path / folder / "stocksync.yaml"
    database = tmp_path / folder / "stocksync.db"
    assert data == {
        "ok": True,
        "config": f"{folder}/stocksync.yaml",
        "database": f"sqlite:///{database}",
    }
    assert config.is_file()
    assert database.is_file()
    return config


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the only line of `text` that contains `needle`."""
    found = [number for number, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(found) == 1, f"{needle!r} is on lines {found}, expected exactly one"
    return found[0]
