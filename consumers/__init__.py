"""Kafka consumers: the fold-in worker, the refitter, snapshot loading, state changelog."""
