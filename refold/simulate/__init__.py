"""`refold simulate`: a shop with simulated customers running against the real pipeline."""
