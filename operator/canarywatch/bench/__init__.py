"""Benchmarks: commands that print figures (ratios measured in one run)."""
