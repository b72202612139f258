"""``${VAR}`` and ``${VAR:-default}`` in string values, from an explicit environment mapping.

An unset ``VAR`` with ``VAR_FILE`` set reads the value from that file (Docker secrets style).

``$${`` writes a literal ``${``. A missing variable is an issue at the value's line; the
substituted text itself never appears in an issue (it may be a secret), and what each variable
put in is kept (``rules.substituted``) so that later errors about the value can mask it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules.errors import ConfigIssue
from rules.paths import KeyPath, LineMap, format_path, line_for
from rules.secret_files import SecretFileProblem, read_secret_file
from rules.substituted import Substitution

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHIELDABLE = re.compile(r"(?<!\$)\$\{[^{}\n]*\}")


@dataclass(frozen=True)
class Shielded:
    """YAML text with each ``${...}`` swapped for a plain word, and the way back.

    In a flow mapping (``{token: ${X}}``) the braces of a reference end the mapping, so the
    DESIGN §8 style would not parse; the placeholders are letters only and keep every line.
    """

    text: str
    references: tuple[str, ...]
    prefix: str

    def restore(self, value: str) -> str:
        if self.prefix not in value:
            return value
        pattern = re.escape(self.prefix) + r"(\d+)_"
        return re.sub(pattern, lambda found: self.references[int(found.group(1))], value)


def shield_references(text: str) -> Shielded:
    prefix = "stocksyncref"
    while prefix in text:  # never mistake the file's own words for a placeholder
        prefix += "x"
    references: list[str] = []

    def swap(found: re.Match[str]) -> str:
        references.append(found.group(0))
        return f"{prefix}{len(references) - 1}_"

    return Shielded(_SHIELDABLE.sub(swap, text), tuple(references), prefix)


def lookup(name: str, env: Mapping[str, str]) -> str | None:
    """``env[name]``, else the stripped content of the file named by ``env[name + "_FILE"]``.

    The ``_FILE`` form is how Docker and Kubernetes hand over secrets without putting them in
    the environment; a relative path is relative to the working directory, like any env path.
    """
    value = env.get(name)
    if value is None and f"{name}_FILE" in env:
        return read_secret_file(env[f"{name}_FILE"], Path.cwd())
    return value


@dataclass(frozen=True)
class Substituted:
    text: str
    problems: tuple[str, ...]
    # what each variable put in (a `:-default` is the file's own text, so not here)
    substitutions: tuple[Substitution, ...] = ()


def substitute_text(text: str, env: Mapping[str, str]) -> Substituted:
    """Replace every reference in ``text``; problems name the variable, never a value."""
    problems: list[str] = []
    substitutions: list[Substitution] = []

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return "${"
        body = match.group(1)
        if body is None:
            problems.append("unclosed '${' (write '$${' for a literal '${')")
            return whole
        name, has_default, default = body.partition(":-")
        if not _NAME.fullmatch(name):
            problems.append(f"malformed reference '${{{body}}}' (expected ${{NAME}})")
            return whole
        try:
            value = lookup(name, env)
        except SecretFileProblem as problem:
            problems.append(f"{name}_FILE: {problem}")
            return whole
        if has_default and not value:  # shell `:-`: unset or empty takes the default
            return default
        if value is None:
            problems.append(f"environment variable {name} is not set")
            return whole
        substitutions.append(Substitution(f"${{{name}}}", value))
        return value

    replaced = _REFERENCE.sub(replace, text)
    return Substituted(replaced, tuple(problems), tuple(substitutions))


@dataclass(frozen=True)
class SubstitutedTree:
    """The values with references replaced, the problems, and what went in where."""

    data: Any
    issues: list[ConfigIssue]
    substitutions: dict[str, tuple[Substitution, ...]]


def substitute_tree(
    data: Any, lines: LineMap, filename: str, env: Mapping[str, str]
) -> SubstitutedTree:
    """A copy of ``data`` with references in every string value replaced (keys are left alone)."""
    issues: list[ConfigIssue] = []
    substitutions: dict[str, tuple[Substitution, ...]] = {}

    def walk(value: Any, path: KeyPath) -> Any:
        if isinstance(value, dict):
            return {key: walk(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*path, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            result = substitute_text(value, env)
            issues.extend(
                ConfigIssue(filename, line_for(lines, path), format_path(path), problem)
                for problem in result.problems
            )
            if result.substitutions:
                substitutions[format_path(path)] = result.substitutions
            return result.text
        return value

    replaced = walk(data, ())
    return SubstitutedTree(replaced, issues, substitutions)
