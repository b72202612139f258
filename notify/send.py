"""Sending one message: an email over SMTP (smtplib), a signed webhook (requests). No ledger
here: notify.delivery claims messages and records what these did.

A `SendError` says whether trying again can help (`permanent=False`: a server down, a timeout,
a 4xx from SMTP, any HTTP error status) or not (`permanent=True`: SMTP refused the recipient or
the message with a 5xx).
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import ssl
from datetime import datetime
from email.header import Header
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from types import TracebackType

import requests

from notify.outbox import Message
from rules.notify_model import SmtpConfig
from rules.redact import redact_url

SIGNATURE_HEADER = "X-Stocksync-Signature"
DELIVERY_HEADER = "X-Stocksync-Delivery"
EVENT_HEADER = "X-Stocksync-Event"


class SendError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


# ---- email ------------------------------------------------------------------------------------


def email_of(message: Message, sender: str, now: datetime) -> MIMEText:
    """The email of an outbox message (kind "email"): plain text, UTF-8.

    Built with the classic `email.mime` API: the newer EmailMessage folds a long non-ASCII
    subject into encoded words that drop the space at each fold (CPython 3.11), so a Russian
    subject would arrive with words run together; `Header` folds it correctly.
    """
    mail = MIMEText(message.body, "plain", "utf-8")
    mail["From"] = _address(sender)
    mail["To"] = message.target
    subject = message.subject or ""
    if subject.isascii():
        mail["Subject"] = subject
    else:
        mail["Subject"] = Header(subject, "utf-8")  # type: ignore[assignment]  # typeshed: str only
    mail["Date"] = format_datetime(now)
    domain = parseaddr(sender)[1].rpartition("@")[2] or None
    mail["Message-ID"] = make_msgid(idstring=f"stocksync.{message.id}", domain=domain)
    if message.language:
        mail["Content-Language"] = message.language
    mail["X-Stocksync-Message"] = str(message.id)
    return mail


def _address(value: str) -> str:
    """`Name <addr>` with the name encoded when it is not ASCII."""
    name, address = parseaddr(value)
    return formataddr((name, address), charset="utf-8") if name else address


class SmtpSender:
    """One SMTP connection for a batch of emails, opened at the first one."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        cfg = self.config
        try:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(f"SMTP {cfg.host}:{cfg.port}: cannot connect: {exc}") from exc
        try:
            smtp.ehlo()
            if cfg.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if cfg.username is not None and cfg.password is not None:
                smtp.login(cfg.username, cfg.password.get_secret_value())
        except (OSError, smtplib.SMTPException) as exc:
            smtp.close()
            # a refused login or TLS is a setting to fix, not this message's fault: retried
            raise SendError(f"SMTP {cfg.host}:{cfg.port}: {_said(exc)}") from exc
        self._smtp = smtp
        return smtp

    def send(self, message: Message, now: datetime) -> None:
        mail = email_of(message, self.config.sender, now)
        smtp = self._connection()
        try:
            smtp.send_message(mail, from_addr=parseaddr(self.config.sender)[1],
                              to_addrs=[message.target])  # fmt: skip
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _text in exc.recipients.values()]
            raise SendError(
                f"SMTP refused {message.target}: {_said(exc)}",
                permanent=bool(codes) and all(code >= 500 for code in codes),
            ) from exc
        except smtplib.SMTPResponseException as exc:
            permanent = exc.smtp_code >= 500 and not isinstance(exc, smtplib.SMTPSenderRefused)
            if isinstance(exc, smtplib.SMTPServerDisconnected):
                self._drop()
            raise SendError(f"SMTP: {_said(exc)}", permanent=permanent) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise SendError(f"SMTP: {_said(exc)}") from exc

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass  # the messages are sent; a goodbye that fails changes nothing
        finally:
            self._drop()


def _said(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return f"{exc.smtp_code} {text}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{rcpt}: {code} {text.decode('utf-8', 'replace')}"
            for rcpt, (code, text) in exc.recipients.items()
        )
    return str(exc) or type(exc).__name__


# ---- webhooks ---------------------------------------------------------------------------------


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>` (the X-Stocksync-Signature header)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(
    message: Message, secret: str, timeout_s: float, http: requests.Session | None = None
) -> None:
    """POST the message's JSON body to its URL, signed; SendError unless the answer is 2xx."""
    body = message.body.encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "stocksync-notify",
        SIGNATURE_HEADER: signature(secret, body),
        DELIVERY_HEADER: str(message.id),
        EVENT_HEADER: message.event,
    }
    poster = http or requests
    try:
        answer = poster.post(
            message.target, data=body, headers=headers, timeout=timeout_s, allow_redirects=False
        )
    except requests.RequestException as exc:
        where = redact_url(message.target)
        said = str(exc).replace(message.target, where)[:300]  # never a password of the URL
        raise SendError(f"POST {where}: {type(exc).__name__}: {said}") from exc
    if not 200 <= answer.status_code < 300:
        where = redact_url(message.target)
        raise SendError(f"POST {where}: HTTP {answer.status_code} {answer.text[:200]}")
