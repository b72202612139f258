"""Can the ledger open this database URL? Read as SQLAlchemy will read it, by SQLAlchemy's own
parser, so that what passes here does not fail (with a traceback, or an error quoting the host
that holds half a password) when the engine is made. Reasons never quote the URL: it may hold a
password, and the caller decides what may be shown."""

from __future__ import annotations

SUPPORTED = "only sqlite:/// and postgresql+psycopg:// databases are supported"
_BACKENDS = ("sqlite", "postgresql")


def database_url_problem(url: str, example: str) -> str | None:
    """Why ``url`` is not a database URL the ledger can use, or None when it is."""
    # imported here: SQLAlchemy takes ~0.17 s to import, and only a config that sets
    # `database:` needs it (rules alone imports no database library)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    not_a_url = f"must be a database URL like {example!r}"
    if "://" not in url:
        return not_a_url
    rest = url.partition("://")[2]
    authority = rest.split("/", 1)[0].rpartition("@")[2]
    if "[" in authority and "]" not in authority:
        return "an IPv6 host is written in brackets, like [::1]:5432"
    try:
        parsed = make_url(url)
    except ArgumentError:
        return not_a_url
    except ValueError:  # the one int() in the parser: the port
        return "the port must be a number from 1 to 65535"
    if parsed.get_backend_name() not in _BACKENDS:
        return SUPPORTED
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return "the port must be a number from 1 to 65535"
    if parsed.host is not None and "@" in parsed.host:
        # the password ends at the first '@'; the rest would be taken for the host and quoted
        # by the driver's "cannot resolve host" error
        return "write an '@' in the user name or password as %40"
    return None
