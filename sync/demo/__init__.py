"""`stocksync demo`: both sandboxes and the daemon on loopback, customers buying, a live table.

runner (the day and its display), plan (what is sold when: pure), customers (the buying threads),
watch (what the shops show), lag (propagation lag from watching), ledger (what the ledger says),
report (the table and the summary), stack (the demo's loopback stack).
"""

from sync.demo.runner import run_demo

__all__ = ["run_demo"]
