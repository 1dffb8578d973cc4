"""Measured scenarios, run by ``make bench`` (``python -m benchmarks [scenario ...]``).

Never part of the test run (pytest collects ``tests/`` only). Each scenario runs the real
engine against a sandbox server of its own, on a throwaway database (SQLite under ``VAR_DIR``,
``var/bench`` from the Makefile, or a database of its own on the ``DATABASE_URL`` PostgreSQL
server) and Redis (embedded, or the ``REDIS_URL`` server), prints what it measured, and
ends with one table of the headline figures beside their targets and baselines.
"""
