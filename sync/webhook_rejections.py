"""Webhooks we do not store: counted by channel and a fixed reason code, logged sparingly.

Anyone can POST to /webhooks/…; a forged or malformed delivery is the sender's problem, and one
warning per delivery would let a prober fill the log. Each is counted in
stocksync_webhooks_rejected_total{channel,reason}; the log gets the first of each
(channel, reason) and then at most one per Throttle interval, with how many it held back.
Label values come from fixed sets only: the channel label from the config (sync/metrics.py),
the reason from the codes below, never from the connector's free-text reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sync.log_throttle import Throttle
from sync.logs import get_logger
from sync.metrics import Metrics

log = get_logger("stocksync.http")

BAD_SIGNATURE = "bad_signature"  # 401: missing or wrong signature (a wrong or rotated secret)
UNKNOWN_CHANNEL = "unknown_channel"  # 404: no connected channel of that name
TOO_LARGE = "too_large"  # 413: body above MAX_BODY
BAD_BODY = "bad_body"  # 400: required headers missing, a body that does not parse
DISCONNECTED = "disconnected"  # the client went away before its body was in
OTHER = "other"  # any other refusal a connector makes

_BY_STATUS = {401: BAD_SIGNATURE, 404: UNKNOWN_CHANNEL, 413: TOO_LARGE, 400: BAD_BODY}
_LONGEST_NAME = 80  # the channel name a client asked for, as logged


def reason_code(status: int) -> str:
    """The reason code of a refusal answered with `status` (sync.jobs.inbox.Ingested)."""
    return _BY_STATUS.get(status, OTHER)


@dataclass
class WebhookRejections:
    metrics: Metrics
    throttle: Throttle = field(default_factory=Throttle)

    def record(self, label: str, requested: str, code: str, status: int, detail: str) -> None:
        """Count one rejected webhook; log it unless one like it was logged lately.
        `label` is the channel's metric label, `requested` the name in the URL."""
        self.metrics.webhooks.labels(label, "rejected").inc()
        self.metrics.webhooks_rejected.labels(label, code).inc()
        held_back = self.throttle.allow((label, code))
        if held_back is None:
            return
        log.warning(
            "webhook_rejected",
            channel=requested[:_LONGEST_NAME],
            reason=code,
            status=status,
            detail=detail[:300],
            held_back=held_back,
        )
