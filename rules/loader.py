"""Read, substitute, validate and build: the one entry point from a file (or text) to Config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rules.build import build_config
from rules.config import Config
from rules.crosscheck import check_channel_references, check_tier_references, literal_secrets
from rules.envsubst import shield_references, substitute_tree
from rules.errors import ConfigError, ConfigIssue
from rules.secret_files import FILE_SUFFIX, read_secret_files
from rules.substituted import conceal_issues
from rules.validation import validate_config
from rules.yaml_bounds import MAX_CONFIG_BYTES, check_size
from rules.yaml_lines import parse_yaml


def parse_config(text: str, filename: str, env: Mapping[str, str] | None = None) -> Config:
    """Config from YAML text; ``filename`` names it in messages and anchors relative paths.

    Raises ConfigError with every issue found. ``env`` defaults to ``os.environ``.
    """
    environment = os.environ if env is None else env
    shielded = shield_references(text)
    document = parse_yaml(shielded.text, filename, shielded.restore)
    issues: list[ConfigIssue] = list(document.issues)
    warnings = literal_secrets(document.data, document.lines, filename)
    substituted = substitute_tree(document.data, document.lines, filename, environment)
    env_issues = substituted.issues
    issues += env_issues
    secrets = read_secret_files(substituted.data, document.lines, filename)
    data, lines, file_issues = secrets.data, secrets.lines, secrets.issues
    # never shown: what ${VAR} and *_file put in (issues name the source instead)
    hidden = {**substituted.substitutions, **secrets.substitutions}
    issues += conceal_issues(file_issues, hidden)
    issues += conceal_issues(check_channel_references(data, lines, filename), hidden)
    issues += conceal_issues(check_tier_references(data, lines, filename), hidden)
    model, model_issues = validate_config(data, lines, filename, hidden)
    # a value whose ${VAR} or *_file failed is reported once, not again as an invalid value
    failed = {issue.path for issue in env_issues}
    failed |= {issue.path.removesuffix(FILE_SUFFIX) for issue in file_issues}
    issues += [issue for issue in model_issues if issue.path not in failed]
    if issues or model is None:
        # stable by line so the output reads top to bottom like the file
        raise ConfigError(sorted(issues, key=lambda issue: issue.line))
    return build_config(model, lines, filename, tuple(warnings))


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Config from a file; a file that cannot be read is a ConfigError at line 0."""
    filename = os.fspath(path)
    try:
        with Path(filename).open("rb") as handle:
            # one byte past the limit is enough to refuse a file: never read all of a huge one
            content = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError as exc:
        raise ConfigError([ConfigIssue(filename, 0, "", "config file not found")]) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([ConfigIssue(filename, 0, "", f"cannot read: {reason}")]) from exc
    check_size(content, filename)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text (byte {exc.start})"
        raise ConfigError([ConfigIssue(filename, 0, "", message)]) from exc
    # what reading in text mode did: \r\n and \r end lines as \n
    return parse_config(text.replace("\r\n", "\n").replace("\r", "\n"), filename, env)
