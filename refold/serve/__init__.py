"""`refold serve`: the HTTP read path over the recommendations, items and similar-items topics."""
