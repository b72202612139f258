"""``token_file: /run/secrets/token`` -> ``token: <file content, stripped>`` before validation.

Works on the raw values (after ``${VAR}`` substitution, so the path may come from the
environment). Relative paths are relative to the config file's directory. Issues never quote the
file's content, and what each file put in is kept (``rules.substituted``) so that later errors
about the value can mask it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules.errors import ConfigIssue
from rules.model import CHANNEL_KINDS, SECRET_FIELDS
from rules.paths import KeyPath, LineMap, format_path, line_for
from rules.substituted import Substitution

FILE_SUFFIX = "_file"


class SecretFileProblem(Exception):
    """Why a ``*_file`` secret could not be read (the message never holds the secret)."""


def read_secret_file(file_name: object, base_dir: Path) -> str:
    if not isinstance(file_name, str) or not file_name:
        raise SecretFileProblem("must be the path of a file holding the secret")
    try:
        secret = (base_dir / file_name).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretFileProblem(f"cannot read {file_name!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SecretFileProblem(f"cannot read {file_name!r}: not UTF-8 text") from exc
    if not secret:
        raise SecretFileProblem(f"{file_name!r} is empty")
    return secret


def _inline_section(
    section: dict[str, Any],
    kind: str,
    path: KeyPath,
    base_dir: Path,
    lines: dict[KeyPath, int],
    issues: list[ConfigIssue],
    filename: str,
    substitutions: dict[str, tuple[Substitution, ...]],
) -> dict[str, Any]:
    updated = dict(section)
    for key in SECRET_FIELDS[kind]:
        file_key = key + FILE_SUFFIX
        if file_key not in section:
            continue
        file_path = (*path, file_key)
        line = line_for(lines, file_path)
        del updated[file_key]
        try:
            if key in section:
                raise SecretFileProblem(f"set {key} or {file_key}, not both")
            updated[key] = read_secret_file(section[file_key], base_dir)
        except SecretFileProblem as problem:
            issues.append(ConfigIssue(filename, line, format_path(file_path), str(problem)))
            continue
        lines[(*path, key)] = line  # the secret was set where its file was named
        substitutions[format_path((*path, key))] = (Substitution(file_key, updated[key]),)
    return updated


@dataclass(frozen=True)
class SecretsRead:
    """The values and lines with each ``*_file`` read in, the problems, what went in where."""

    data: dict[str, Any]
    lines: dict[KeyPath, int]
    issues: list[ConfigIssue]
    substitutions: dict[str, tuple[Substitution, ...]]


def read_secret_files(data: dict[str, Any], lines: LineMap, filename: str) -> SecretsRead:
    """Copies of ``data`` and ``lines`` with every ``<secret>_file`` replaced by ``<secret>``.

    Only in the places secrets belong: each shopify/woocommerce channel and ``server``;
    elsewhere a ``*_file`` key stays and is reported as unknown by validation.
    """
    base_dir = Path(filename).absolute().parent
    new_lines = dict(lines)
    issues: list[ConfigIssue] = []
    substitutions: dict[str, tuple[Substitution, ...]] = {}
    result = dict(data)
    server = data.get("server")
    if isinstance(server, dict):
        result["server"] = _inline_section(
            server, "server", ("server",), base_dir, new_lines, issues, filename, substitutions
        )
    channels = data.get("channels")
    if isinstance(channels, dict):
        new_channels = dict(channels)
        for name, channel in channels.items():
            kind = channel.get("kind") if isinstance(channel, dict) else None
            if kind in CHANNEL_KINDS and kind in SECRET_FIELDS:
                new_channels[name] = _inline_section(
                    channel,
                    kind,
                    ("channels", name),
                    base_dir,
                    new_lines,
                    issues,
                    filename,
                    substitutions,
                )
        result["channels"] = new_channels
    return SecretsRead(result, new_lines, issues, substitutions)
