"""Hide secrets in values that are shown to people (``check --json``, logs, error messages)."""

from __future__ import annotations

MASK = "***"


def redact_url(url: str) -> str:
    """``postgresql://u:pw@host/db`` -> ``postgresql://u:***@host/db``; text without a password
    is unchanged.

    Not ``urlsplit``: it reads the host as ending at the first '/', so a password holding one
    (base64 passwords do) would be shown, and it gives up on what is not quite a URL
    (``postgresql:user:pw@host``, a bad port, an unbalanced '['), which is just where a mistake
    needs the message that must not show the password. Everything from the user name's ':' to
    the last '@' is masked: that covers what SQLAlchemy, urllib and redis read as the password.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:  # not a URL at all: `user:secret@host`, `postgresql:user:secret@host`
        scheme, rest = "", url
    userinfo, at, host_and_path = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not at or not colon:
        return url
    return f"{scheme}{separator}{user}:{MASK}@{host_and_path}"
