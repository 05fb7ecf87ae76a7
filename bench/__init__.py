"""Benchmarks: `make bench` runs bench/run.py (every scenario of the performance issue,
one table); the other scripts here time one thing each. Not part of `make test`."""
