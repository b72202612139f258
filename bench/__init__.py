"""Benchmarks: `python -m bench.drop`, `python -m bench.push`, `python -m bench.ledger`."""
