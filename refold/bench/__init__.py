"""Benchmarks that compare refold side by side with the obvious alternative, in one run."""
