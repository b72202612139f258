"""What the integration, fault and e2e tests share.

- stack: the in-process loopback stack (sync/stack.py) with the tests' config values;
- checker: the fault suite's invariant checker;
- processes: child processes, private Redis and PostgreSQL, HTTP helpers, the process stack.
"""
