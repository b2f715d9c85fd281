"""Harness pieces of loadtests/bench_ingest.py."""
