"""Reading a campaign's entries and money back from a running stack's ledger (tests)."""

from __future__ import annotations

from stock import campaign_money, campaigns
from sync.stack import LoopbackStack


def entry_of(s: LoopbackStack, email: str, campaign: str = "drop") -> campaigns.EntryRow | None:
    """The campaign's entry of this customer (None: not signed up yet)."""
    with s.ctx.read() as session:
        found = [e for e in campaigns.entries(session, campaign) if e.email == email]
    return found[0] if found else None


def money_of(s: LoopbackStack, entry_id: int) -> list[tuple[str, str, str]]:
    """The entry's money rows as (kind, amount, state), oldest first."""
    with s.ctx.read() as session:
        rows = campaign_money.of_entries(session, [entry_id]).get(entry_id, [])
    return [(r.kind, str(r.amount), r.state) for r in rows]


def ticked(s: LoopbackStack, campaign: str = "drop") -> bool:
    """Has the daemon's campaign tick run once (the one it sends at start)? Tests that run
    the tick themselves wait for it first, so it never races theirs."""
    with s.ctx.read() as session:
        state = campaigns.state(session, campaign)
    return state is not None and state.stock_seen is not None
