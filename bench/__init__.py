"""Benchmarks: each module runs with `python -m bench.<name>`, prints its figures and writes
them as JSON to bench/results/<name>.json. Never timed inside tests (see DESIGN.md)."""
