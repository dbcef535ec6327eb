"""Local state of a worker's partitions: an embedded store per partition, a bounded cache."""
