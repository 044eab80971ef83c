"""Benchmarks (see bench/README.md); a package so that ``python -m bench.<name>`` imports our packages."""
