"""refold wiring: configuration, message schemas, Kafka helpers, metrics, the CLI."""

__version__ = "0.1.0"
