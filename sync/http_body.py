"""Reading a request body with a limit on the bytes actually read.

A Content-Length check alone is no limit: a chunked upload declares no length, and Starlette's
`request.body()` reads whatever comes. Here the count is of bytes received, whatever the
transfer encoding; past the limit reading stops and BodyTooLarge is raised (answer 413: the
server then closes the connection without reading the rest, sync/http_guard.py).
"""

from __future__ import annotations

from starlette.requests import Request

MAX_BODY = 5 * 1024 * 1024  # orders and receipts are small; refuse anything absurd


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, or BodyTooLarge as soon as it is known to pass `limit` bytes: at once from a
    declared Content-Length, else when the bytes read pass it. A client that goes away
    meanwhile raises Starlette's ClientDisconnect."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
