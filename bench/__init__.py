"""Syrena's own benchmarks: `make bench` (= `.venv/bin/python -m bench [--quick]`).

Every figure is printed next to a baseline measured in the same run on the same machine
(never an absolute number from elsewhere), as a ratio with its target and PASS/MISS:

- bench.fanout: `publish(alert)` to 100,000 residents vs the same INSERT ... SELECT
  written by hand on the raw DBAPI connection (SQLite and PostgreSQL).
- bench.dispatch: messages per second through the Dispatcher and the real twilio SDK vs a
  bare keep-alive `requests` client posting the same forms, both to the fake Twilio API
  running in its own process.
- bench.memory: peak RSS of a process that fans out 1,000,000 deliveries and dispatches
  the first 100,000 of them vs a bare app process.

Method (research/perf-limits.md): medians of 3 runs, ours and the baseline interleaved,
fixtures built and freed (gc) before any clock starts, one benchmark at a time.
"""
