"""Evaluation: prequential replay of refold against baselines, reports, search, offline split."""

from refold.evaluation.runner import Dataset, Protocol, encode, evaluate, replay

__all__ = ["Dataset", "Protocol", "encode", "evaluate", "replay"]
