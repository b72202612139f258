"""structlog setup: JSON off a terminal, console on one; secrets redacted by key and by value;
the libraries' stdlib log records rendered by the same processors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

SECRET_WORDS = ("token", "secret", "password", "consumer_key", "authorization", "hmac", "signature")
MASK = "***"


class Redactor:
    """A structlog processor: masks values under secret-looking keys and known secret values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # short values would mask innocent text; real secrets are long
        self.secrets = tuple(s for s in secrets if s and len(s) >= 6)

    def __call__(
        self, _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event):
            event[key] = self._clean(key, event[key])
        return event

    def _clean(self, key: str, value: Any) -> Any:
        if any(word in key.lower() for word in SECRET_WORDS):
            return MASK
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        return value


def configure(
    level: str = "INFO",
    json: bool | None = None,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and stdlib logging once per process (at daemon or worker start).

    Both write to `stream` when given (the demo's log file), else to stderr as it is at each use.
    Libraries that log through stdlib `logging` (uvicorn, apscheduler, dramatiq) come out through
    the same processors: one JSON object per line with `logger`, `level`, `timestamp`, their
    message as `event` and a traceback as `exception`, secrets redacted. They are held at
    WARNING or above (their INFO lines say a job ran, every few seconds).
    """
    out = sys.stderr if stream is None else stream
    as_json = (not out.isatty()) if json is None else json
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    redactor = Redactor(secrets)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger if stream is None else structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
    )
    handler: logging.Handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stderr as it is at each record (tests and daemonising replace it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        return  # StreamHandler.__init__ assigns it; the property answers instead


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # resolve sys.stderr at each use: it may be replaced (tests, daemonising) after configure()
    return structlog.PrintLogger(file=sys.stderr)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
