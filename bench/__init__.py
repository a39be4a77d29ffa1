"""Benchmarks and the measurements behind the docs' numbers; run `python -m bench.<name>` from the repo root."""
