"""Enqueue jobs from outside a daemon (the CLI), by actor name: no runtime, no actors needed."""

from __future__ import annotations

from dramatiq import Message

from sync.actor_names import QUEUE
from sync.broker import get_broker


def enqueue(broker_url: str, actor_name: str, *args: object) -> None:
    """Send one job to the shared Redis queue (the in-process broker has no one to listen).

    `actor_name` is one of sync/actor_names.py (`actor_names.RELEASE`, ...).
    """
    if broker_url == "memory":
        raise ValueError("the in-process broker cannot take jobs from another process")
    broker = get_broker(broker_url)
    try:
        broker.declare_queue(QUEUE)
        broker.enqueue(
            Message(queue_name=QUEUE, actor_name=actor_name, args=args, kwargs={}, options={})
        )
    finally:
        broker.close()
