"""The daemon's jobs, one module each: inbox, receipts, push, writeback, poll, sweep, reconcile.

Every job takes ids, reads fresh state, does its database work in explicit transactions (never
open across channel I/O), and returns the follow-up jobs to enqueue *after* commit.
"""
