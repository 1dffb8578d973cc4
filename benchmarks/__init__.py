"""Measured scenarios, run by ``make bench`` (``python -m benchmarks [scenario ...]``).

Never part of the test run (pytest collects ``tests/`` only). Each scenario runs the real
engine against a sandbox server of its own, on a throwaway SQLite database and the embedded
Redis under ``VAR_DIR`` (``var/bench`` from the Makefile), and prints what it measured.
"""
