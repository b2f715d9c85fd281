"""Pieces of loadtests/bench_drift.py."""
