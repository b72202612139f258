"""Messages rendered from Jinja2 templates: `<language>/<message>.j2`, each with a `subject`
and a `body` block (plain text). The packaged templates (notify/templates) may be overridden
file by file from `notify.templates_dir` (same layout); a language is available for a message
when either folder has its file.

Templates run sandboxed (a merchant's folder is data, not code) with strict undefined names, and
get filters that write values the way the message's language does: `date`, `datetime`, `money`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    pass_context,
)
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from notify.formats import format_date, format_datetime, format_money, match_language

PACKAGED = Path(__file__).parent / "templates"
FALLBACK_LANGUAGE = "en"

# every message type, and what it is about: an order ("channel/ref") or a campaign entry
ORDER_MESSAGES = ("backorder_created", "partly_shipped", "released_shipping", "date_moved")
ENTRY_MESSAGES = (
    "waitlist_confirmed", "allocated", "reminder", "expired", "not_allocated",
    "deposit_refunded",
)  # fmt: skip
MESSAGES = ORDER_MESSAGES + ENTRY_MESSAGES


class RenderError(Exception):
    """A template that is missing, or fails to render (its message says which and why)."""


@dataclass(frozen=True)
class Rendered:
    message: str
    language: str
    subject: str
    body: str


@pass_context
def _date(ctx: Context, value: date | datetime | None) -> str:
    return format_date(value, str(ctx.get("language", FALLBACK_LANGUAGE)))


@pass_context
def _datetime(ctx: Context, value: datetime | str | None) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return format_datetime(
        value, str(ctx.get("language", FALLBACK_LANGUAGE)), str(ctx.get("timezone", "UTC"))
    )


@pass_context
def _money(ctx: Context, amount: Decimal | str | None, currency: str | None = None) -> str:
    return format_money(amount, currency, str(ctx.get("language", FALLBACK_LANGUAGE)))


class Renderer:
    """Templates from `templates_dir` (when set) first, then the packaged ones."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        self.folders = [p for p in (templates_dir, PACKAGED) if p is not None]
        loaders: list[BaseLoader] = [FileSystemLoader(str(folder)) for folder in self.folders]
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            undefined=StrictUndefined,
            autoescape=False,  # plain text: an email body, a shop note
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters.update(date=_date, datetime=_datetime, money=_money)
        self._languages: dict[str, tuple[str, ...]] = {}

    def languages(self, message: str) -> tuple[str, ...]:
        """The languages that have a template for `message`, sorted."""
        found = self._languages.get(message)
        if found is None:
            found = tuple(
                sorted(
                    {
                        folder.name
                        for base in self.folders
                        if base.is_dir()
                        for folder in base.iterdir()
                        if (folder / f"{message}.j2").is_file()
                    }
                )
            )
            self._languages[message] = found
        return found

    def choose_language(self, message: str, wanted: Sequence[str | None]) -> str:
        """The first of `wanted` (the customer's, the channel's, the default) that has a
        template for `message` ("nl-NL" matches "nl"); English when none has."""
        available = self.languages(message)
        for candidate in wanted:
            matched = match_language(candidate, available)
            if matched is not None:
                return matched
        if FALLBACK_LANGUAGE in available or not available:
            return FALLBACK_LANGUAGE
        return available[0]

    def render(self, message: str, language: str, context: Mapping[str, Any]) -> Rendered:
        """Subject (one line) and body of `message` in `language`; RenderError when the
        template is missing or fails."""
        name = f"{language}/{message}.j2"
        try:
            template = self.env.get_template(name)
            values = template.new_context({**context, "language": language, "message": message})
            if "subject" not in template.blocks or "body" not in template.blocks:
                raise RenderError(f"{name}: needs a subject block and a body block")
            subject = "".join(template.blocks["subject"](values))
            body = "".join(template.blocks["body"](values))
        except TemplateNotFound as exc:
            raise RenderError(f"no template {name}") from exc
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)  # syntax errors know where they are
            where = f"{name}:{line}" if line else name
            raise RenderError(f"{where}: {exc.message or exc}") from exc
        return Rendered(message, language, " ".join(subject.split()), _tidy(body))


def _tidy(body: str) -> str:
    """No trailing spaces, at most one blank line in a row, one newline at the end."""
    lines = [line.rstrip() for line in body.strip("\n").splitlines()]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    return "\n".join(kept).strip() + "\n"
