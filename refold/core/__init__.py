"""The bottom of refold: configuration, message schemas, the Kafka client factory, metrics
declarations, topics and errors. Every process imports these; they import nothing of refold
above them (only the pure `models` package)."""
