"""`stocksync notify list|retry|preview|send`: the message outbox from the command line (issue
#17): what was sent, what failed for good and why, a failed message sent again, a message
rendered for a real order or campaign entry without sending it.

Registered on the main app by sync/cli.py; the outbox is notify/outbox.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from sync.cli import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    STATE,
    JsonFlag,
    configure_logging,
    emit,
    fail,
    handled,
    opened,
    out,
)
from sync.context import config_path

notify_app = typer.Typer(
    help="Customer messages and webhooks: the outbox, retries, previews.", no_args_is_help=True
)


def _print_messages(rows: list[dict[str, Any]]) -> None:
    if not rows:
        out.print("No messages.")
        return
    from rich.table import Table

    table = Table(title="Messages (newest first)", title_justify="left")
    for header in ("id", "state", "kind", "event", "to", "attempts", "created", "error"):
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(
            str(row["id"]), row["state"].upper() if row["state"] == "failed" else row["state"],
            row["kind"], row["event"], row["target"][:60], str(row["attempts"]),
            row["created_at"][:19], (row["last_error"] or "")[:80],
        )  # fmt: skip
    out.print(table)


@notify_app.command("list")
def notify_list(
    failed: Annotated[
        bool, typer.Option("--failed", help="Only messages that failed for good.")
    ] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List messages: pending (with when they are due), sent, or failed with their error."""
    from notify import outbox

    with handled(as_json):
        with opened() as ctx, ctx.read() as session:
            rows = [msg.as_dict() for msg in outbox.listing(session, failed_only=failed,
                                                             limit=limit)]  # fmt: skip
        emit({"ok": True, "messages": rows}, as_json, lambda: _print_messages(rows))


@notify_app.command("retry")
def notify_retry(
    message_ids: Annotated[
        list[int] | None, typer.Argument(help="Ids of failed messages (notify list --failed).")
    ] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Every message that failed for good.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Make failed messages pending again, due now, with their attempts counted afresh (after
    fixing what made them fail). A message whose template failed is rendered again."""
    from notify import notifier, outbox
    from notify.render import RenderError

    with handled(as_json):
        if not message_ids and not all_failed:
            fail("name message ids or --all-failed", EXIT_BAD_INPUT)
        if message_ids and all_failed:
            fail("name message ids or --all-failed, not both", EXIT_BAD_INPUT)
        with opened() as ctx, ctx.read() as session:
            if message_ids:
                found = {msg.id: msg for msg in outbox.get(session, message_ids)}
                problems = [
                    f"message {i}: " + ("no such message" if i not in found
                                        else f"is {found[i].state}, not failed")
                    for i in sorted(set(message_ids))
                    if i not in found or found[i].state != "failed"
                ]  # fmt: skip
                if problems:
                    fail("; ".join(problems) + "; nothing retried", EXIT_BAD_INPUT)
            try:
                ids = notifier.retry(
                    session, ctx.config.notify, datetime.now(UTC), message_ids or [],
                    all_failed=all_failed,
                )  # fmt: skip
            except RenderError as exc:
                fail(f"a template still fails: {exc}; nothing retried", EXIT_FAILURE)
        data = {"ok": True, "retried": ids}
        emit(data, as_json, lambda: out.print(
            f"{len(ids)} message(s) pending again, due now: {', '.join(map(str, ids)) or '-'}"
        ))  # fmt: skip


@notify_app.command("preview")
def notify_preview(
    template: Annotated[str, typer.Argument(help="The message, e.g. backorder_created.")],
    order: Annotated[
        str | None, typer.Option(help="CHANNEL:REF of the order (order messages).")
    ] = None,
    entry: Annotated[
        int | None, typer.Option(help="Campaign entry id (campaign messages).")
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="Render in this language (default: as it would be sent).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Render a message for a real order or campaign entry, without sending anything."""
    from notify import notifier
    from notify.context import NothingToTell
    from notify.formats import match_language
    from notify.render import ENTRY_MESSAGES, MESSAGES, ORDER_MESSAGES, Renderer, RenderError

    with handled(as_json):
        if template not in MESSAGES:
            fail(f"unknown template {template!r}; one of {', '.join(MESSAGES)}", EXIT_BAD_INPUT)
        if template in ORDER_MESSAGES and (order is None or entry is not None):
            fail(f"{template} is about an order: give --order CHANNEL:REF", EXIT_BAD_INPUT)
        if template in ENTRY_MESSAGES and (entry is None or order is not None):
            fail(f"{template} is about a campaign entry: give --entry ID", EXIT_BAD_INPUT)
        where = None
        if order is not None:
            channel, sep, ref = order.partition(":")
            if not sep or not channel or not ref:
                fail(f"--order wants CHANNEL:REF, got {order!r}", EXIT_BAD_INPUT)
            where = f"{channel}/{ref}"
        with opened() as ctx, ctx.read() as session:
            config = ctx.config.notify
            renderer = Renderer(config.templates_dir)
            chosen = None
            if language is not None:
                available = renderer.languages(template)
                chosen = match_language(language, available)
                if chosen is None:
                    fail(f"no {language!r} template for {template}; languages: "
                         f"{', '.join(available)}", EXIT_BAD_INPUT)  # fmt: skip
            try:
                prepared, chosen, subject, body = notifier.preview(
                    session, config, renderer, template, order=where, entry=entry,
                    language=chosen,
                )  # fmt: skip
            except NothingToTell as exc:
                fail(f"nothing to show: {exc}", EXIT_BAD_INPUT)
            except RenderError as exc:
                fail(f"template: {exc}", EXIT_FAILURE)
        data = {"ok": True, "template": template, "language": chosen, "to": prepared.email,
                "order": where, "entry": entry, "subject": subject, "body": body}  # fmt: skip

        def human() -> None:
            out.print(f"To: {prepared.email or '(no email address known)'}", markup=False)
            out.print(f"Language: {chosen}", markup=False)
            out.print(f"Subject: {subject}\n", markup=False)
            out.print(body, markup=False, end="")

        emit(data, as_json, human)


@notify_app.command("send")
def notify_send(as_json: JsonFlag = False) -> None:
    """Turn new audit entries into messages and send the due ones now (what the daemon does
    every `daemon.notify_interval_s`)."""
    from rules import load_config
    from sync.jobs.notify_deliver import notify_tick
    from sync.runtime import Runtime

    with handled(as_json):
        config = load_config(config_path(STATE.config_file))
        if not config.notify.enabled:
            fail("no `notify:` block in the config: nothing is sent", EXIT_BAD_INPUT)
        configure_logging(config)  # its lines go to stderr: stdout is the answer
        runtime = Runtime.build(config)
        try:
            report = notify_tick(runtime)
        finally:
            runtime.close()
        done = report.delivery
        data = {
            "ok": not done.failed, "made": report.enqueued, "sent": done.sent,
            "retrying": done.retried, "failed": [{"id": i, "error": e} for i, e in done.failed],
        }  # fmt: skip
        emit(data, as_json, lambda: out.print(
            f"made {sum(report.enqueued.values())}, sent {done.total_sent}, "
            f"to retry {done.retried}, failed {len(done.failed)}", markup=False,
        ))  # fmt: skip
        if done.failed:
            raise typer.Exit(EXIT_FAILURE)
