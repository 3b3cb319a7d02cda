"""Benchmarks (not tests): `python -m bench.pipeline`; results go to BENCHMARKS.md."""
