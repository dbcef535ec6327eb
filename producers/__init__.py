"""Event producers: the SDK, dataset loaders and replay, the synthetic world."""
