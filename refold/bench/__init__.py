"""Benchmarks that compare refold side by side with the obvious alternative, in one run."""

DATASETS = ("ml-100k", "synth")  # the event logs the worker benchmarks replay (`workload`)
