"""Pure recommender math: fold-in, ranking, popularity, cold start, snapshots, drift (no Kafka)."""
