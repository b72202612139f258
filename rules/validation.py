"""Raw values -> ``ConfigModel``; pydantic's errors become ``FILE:LINE: path: message``.

A value that ``${VAR}`` or a ``*_file`` filled in is never quoted: its error says what is wrong
without it and names the source instead (``must be an integer (from ${DB_PASSWORD})``).
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from rules.errors import ConfigIssue, Rejected
from rules.model import CHANNEL_KINDS, SECRET_KEYS, ConfigModel
from rules.paths import KeyPath, LineMap, format_path, line_for
from rules.secret_files import FILE_SUFFIX
from rules.substituted import Substitutions, conceal, within
from rules.suggest import did_you_mean


def validate_config(
    data: dict[str, Any], lines: LineMap, filename: str, substitutions: Substitutions
) -> tuple[ConfigModel | None, list[ConfigIssue]]:
    """``substitutions``: what ``${VAR}`` and ``*_file`` put in where (never to be shown)."""
    try:
        return ConfigModel.model_validate(data), []
    except ValidationError as exc:
        return None, [_issue(error, lines, filename, substitutions) for error in exc.errors()]


# ---- where: pydantic's loc -> the key path in the file ----------------------------------------


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that holds the structure."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        if get_origin(tp) in (Union, types.UnionType):
            members = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tagged_members(tp: Any) -> dict[str, type[BaseModel]]:
    """The models of a union discriminated by ``kind``, by tag (empty for anything else)."""
    if get_origin(tp) not in (Union, types.UnionType):
        return {}
    members: dict[str, type[BaseModel]] = {}
    for member in get_args(tp):
        if _is_model(member) and "kind" in member.model_fields:
            for tag in get_args(member.model_fields["kind"].annotation):
                members[str(tag)] = member
    return members


def _field_type(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _steps(loc: tuple[str | int, ...]) -> Iterator[tuple[str | int, Any, bool]]:
    """Walk ``loc`` through the model types: (element, type at that point, is it a union tag)."""
    tp: Any = ConfigModel
    for element in loc:
        tp = _unwrap(tp)
        tagged = _tagged_members(tp)
        if isinstance(element, str) and element in tagged:
            yield element, tp, True
            tp = tagged[element]
            continue
        yield element, tp, False
        if _is_model(tp) and isinstance(element, str):
            tp = _field_type(tp, element)
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) in (list, tuple):
            tp = get_args(tp)[0]
        else:
            tp = None


def _known_keys(model: type[BaseModel]) -> list[str]:
    keys = [info.alias or name for name, info in model.model_fields.items()]
    return keys + [key + FILE_SUFFIX for key in keys if key in SECRET_KEYS]


# ---- what: pydantic's error -> a short message ------------------------------------------------


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown)
    return str(value)


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
}


def _refusal(error: ErrorDetails, show_value: bool) -> str:
    """A validator's own message (a ``value_error``), with or without the value it quotes."""
    refusal = error.get("ctx", {}).get("error")
    if isinstance(refusal, Rejected) and not show_value:
        return refusal.without_value
    return str(refusal) if refusal is not None else error["msg"]


def _message(error: ErrorDetails, key: str | int, parent: Any, show_value: bool = True) -> str:
    """What is wrong; ``show_value=False`` for a value that must not be quoted."""
    kind = error["type"]
    ctx = error.get("ctx", {})
    secret = key in SECRET_KEYS
    show_value = show_value and not secret
    got = f", got {_describe(error.get('input'))}" if show_value else ""
    if kind == "extra_forbidden":
        known = _known_keys(parent) if _is_model(parent) else []
        return f"unknown key {key!r}{did_you_mean(str(key), known)}"
    if kind == "missing":
        if _is_model(parent) and "kind" in parent.model_fields:
            tags = get_args(parent.model_fields["kind"].annotation)
            where = f"required for a {tags[0]} channel"
            return f"{where} (or {key}{FILE_SUFFIX})" if secret else where
        return "required"
    if kind == "union_tag_not_found":
        return f"required: one of {', '.join(CHANNEL_KINDS)}"
    if kind == "union_tag_invalid":
        tag = f" {ctx.get('tag')!r}" if show_value else ""
        return f"unknown kind{tag}, expected one of {', '.join(CHANNEL_KINDS)}"
    if kind == "value_error":
        return _refusal(error, show_value)
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}{got}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}{got}"
    return f"{error['msg']}{got}"


def _issue(
    error: ErrorDetails, lines: LineMap, filename: str, substitutions: Substitutions
) -> ConfigIssue:
    path: list[str | int] = []
    parent: Any = None
    key: str | int = ""
    for element, tp, is_tag in _steps(tuple(error["loc"])):
        if not is_tag:
            path.append(element)
            parent, key = tp, element
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        path.append("kind")  # the error is about the channel's `kind`, reported at that key
        key = "kind"
    key_path: KeyPath = tuple(path)
    where = format_path(key_path)
    message = _message(error, key, parent)
    found = within(substitutions, where)
    if found:
        without_value = _message(error, key, parent, show_value=False)
        # a message that had to leave the value out names where it came from instead
        message = conceal(without_value, found, name_sources=without_value != message)
    return ConfigIssue(filename, line_for(lines, key_path), where, message)
